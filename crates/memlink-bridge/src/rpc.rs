//! Request/response across machines, through Zenoh queryables.
//!
//! For each matching local request/response service the bridge watches
//! the service and the network and takes one of two roles:
//!
//! - **export**, when a live server that is not a bridge serves the
//!   service here: a bridge-marked client of the service, and a Zenoh
//!   queryable on `PREFIX/NAME` answering queries from other machines
//!   only. Each query's payload is sent as one request; each response of
//!   the answer becomes one reply, in order; a `DELETE` reply on the key
//!   says the answer ended; a failure (the server gone, a request too
//!   large for the service) is an error reply with the message, and a log
//!   line here.
//! - **import**, when no server serves the service here and a queryable of
//!   another machine's bridge matches the key: a bridge-marked server of
//!   the service. Each request becomes one Zenoh `get` (to other machines
//!   only); each reply is sent to the client as one response; the end mark
//!   ends the request. An error reply, no end mark (no machine answered,
//!   or the remote bridge went away), or a response that does not fit the
//!   local service ends the request as lost: the client gets
//!   `ErrorKind::PeerGone`, as when a local server dies, and the bridge
//!   logs why.
//!
//! No loops: a service whose server is a bridge is never exported, and an
//! import stops when no remote queryable matches any more (so a server
//! that goes away on one machine leaves the service serverless on the
//! others too, and a local server can take it). Each role runs
//! [`IN_FLIGHT`] requests at once, on its own threads, off Zenoh's.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use memlink::reqresp::{inspect_rpc, ActiveRequest, Client, RpcOptions, Server};
use memlink::ErrorKind;
use zenoh::key_expr::KeyExpr;
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, Querier, Query, QueryTarget};
use zenoh::sample::{Locality, SampleKind};
use zenoh::Wait;

use crate::Pattern;

/// Requests each role carries at once (one thread each).
pub const IN_FLIGHT: u32 = 4;

/// How long a request carried over the network may take, whole.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a worker waits for work before it looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// The request/response services a bridge watches.
#[derive(Default)]
pub(crate) struct Services {
    links: BTreeMap<String, Link>,
    /// The last failure logged per name (logged once).
    failures: BTreeMap<String, String>,
}

/// One watched service: its querier (which also tells whether another
/// machine serves it) and the role taken.
struct Link {
    querier: Arc<Querier<'static>>,
    key: KeyExpr<'static>,
    role: Role,
}

enum Role {
    Idle,
    Export(Worker),
    Import(Worker),
}

/// The threads of one role, stopped and joined when it is dropped.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(PartialEq, Eq)]
enum Want {
    Idle,
    Export,
    Import,
}

impl Services {
    /// Finds the request/response services among `names` and matching
    /// `globs`, and brings each one's role up to date. Returns the names
    /// that are request/response services (not for the pub/sub side).
    pub(crate) fn scan(
        &mut self,
        session: &zenoh::Session,
        prefix: &str,
        names: &BTreeSet<String>,
        globs: &[Pattern],
    ) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        if let Ok(objects) = memlink::list() {
            for o in objects {
                if o.kind == Some(memlink::ObjectKind::RequestResponse)
                    && o.state == memlink::State::Alive
                    && (names.contains(&o.name) || globs.iter().any(|g| g.matches(&o.name)))
                {
                    found.insert(o.name);
                }
            }
        }
        for name in names {
            if !found.contains(name) && inspect_rpc(name).is_ok() {
                found.insert(name.clone());
            }
        }
        self.links.retain(|name, _| {
            let keep = found.contains(name);
            if !keep {
                log!("rpc service {name} is gone; no longer bridged");
            }
            keep
        });
        for name in &found {
            if let Err(e) = self.update(session, prefix, name) {
                if self.failures.get(name) != Some(&e) {
                    log!("{e}");
                    self.failures.insert(name.clone(), e);
                }
            } else {
                self.failures.remove(name);
            }
        }
        found
    }

    fn update(&mut self, session: &zenoh::Session, prefix: &str, name: &str) -> Result<(), String> {
        let failed = |e: String| format!("cannot bridge rpc service {name}: {e}");
        if !self.links.contains_key(name) {
            let key = KeyExpr::try_from(format!("{prefix}/{name}"))
                .map_err(|e| failed(format!("its key is not a Zenoh key: {e}")))?
                .into_owned();
            let querier = session
                .declare_querier(key.clone())
                .allowed_destination(Locality::Remote)
                .target(QueryTarget::BestMatching)
                .consolidation(ConsolidationMode::None)
                .congestion_control(CongestionControl::Block)
                .timeout(RPC_TIMEOUT)
                .wait()
                .map_err(|e| failed(format!("cannot declare a Zenoh querier on {key}: {e}")))?;
            self.links.insert(
                name.to_owned(),
                Link {
                    querier: Arc::new(querier),
                    key,
                    role: Role::Idle,
                },
            );
        }
        let link = self.links.get_mut(name).expect("inserted above");
        let info = inspect_rpc(name).map_err(|e| failed(e.to_string()))?;
        let remote = link
            .querier
            .matching_status()
            .wait()
            .map(|m| m.matching())
            .unwrap_or(false);
        let importing = matches!(&link.role, Role::Import(w) if !w.finished());
        let want = match &info.server {
            Some(s) if !s.bridge => Want::Export,
            // Our own server (importing), or none: serve while a remote
            // server is there.
            Some(_) if importing => {
                if remote {
                    Want::Import
                } else {
                    Want::Idle
                }
            }
            None if remote => Want::Import,
            // Another bridge's server, or nothing to serve for.
            _ => Want::Idle,
        };
        let current = match &link.role {
            Role::Export(w) if !w.finished() => Want::Export,
            Role::Import(w) if !w.finished() => Want::Import,
            _ => Want::Idle,
        };
        if want == current {
            return Ok(());
        }
        let was = std::mem::replace(&mut link.role, Role::Idle);
        match was {
            Role::Export(_) => log!(
                "rpc service {name}: its server here is gone; no longer answering on {}",
                link.key
            ),
            Role::Import(_) => log!(
                "rpc service {name}: no server on the network any more; no longer serving it here"
            ),
            Role::Idle => {}
        }
        drop(was); // stops and joins its threads
        link.role = match want {
            Want::Idle => Role::Idle,
            Want::Export => {
                let w = export(session, name, &link.key).map_err(failed)?;
                log!(
                    "rpc service {name}: carrying its server here to Zenoh key {} (up to {} bytes a request)",
                    link.key,
                    info.max_request
                );
                Role::Export(w)
            }
            Want::Import => {
                let w = import(name, link.querier.clone()).map_err(failed)?;
                log!(
                    "rpc service {name}: serving it here (bridge) for its server on the network, Zenoh key {}",
                    link.key
                );
                Role::Import(w)
            }
        };
        Ok(())
    }
}

/// Starts answering queries on `key` through a bridge-marked client of
/// the local service.
fn export(session: &zenoh::Session, name: &str, key: &KeyExpr<'static>) -> Result<Worker, String> {
    let client =
        Client::connect_any(name, &RpcOptions::new().bridge()).map_err(|e| e.to_string())?;
    let queryable = session
        .declare_queryable(key.clone())
        .complete(true)
        .allowed_origin(Locality::Remote)
        .wait()
        .map_err(|e| format!("cannot declare a Zenoh queryable on {key}: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = name.to_owned();
    let thread = std::thread::Builder::new()
        .name(format!("rpc out {name}"))
        .spawn(move || {
            let workers = IN_FLIGHT.min(client.max_in_flight());
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(|| {
                        while !flag.load(Ordering::Relaxed) {
                            match queryable.recv_timeout(STOP_CHECK) {
                                Ok(Some(query)) => answer(&name, &client, &query),
                                Ok(None) => {}
                                Err(_) => return, // the queryable is closed
                            }
                        }
                    });
                }
            });
            drop(queryable);
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(Worker {
        stop,
        thread: Some(thread),
    })
}

/// Answers one query from the network through the local service.
fn answer(name: &str, client: &Client<[u8], [u8]>, query: &Query) {
    let request: Cow<'_, [u8]> = match query.payload() {
        Some(p) => p.to_bytes(),
        None => Cow::Borrowed(&[]),
    };
    let fail = |message: String| {
        if let Err(e) = query.reply_err(message).wait() {
            log!("cannot send an error reply for rpc service {name}: {e}");
        }
    };
    let mut pending = match client.send_copy_timeout(&request, RPC_TIMEOUT) {
        Ok(pending) => pending,
        Err(e) if e.kind() == ErrorKind::InvalidArgument => {
            log!(
                "refused a {}-byte request from the network for rpc service {name}: {e}",
                request.len()
            );
            return fail(e.to_string());
        }
        Err(e) => {
            log!("a request from the network for rpc service {name} failed: {e}");
            return fail(e.to_string());
        }
    };
    loop {
        match pending.recv_timeout(RPC_TIMEOUT) {
            Ok(Some(response)) => {
                if let Err(e) = query
                    .reply(query.key_expr().clone(), response.to_vec())
                    .wait()
                {
                    log!("cannot reply for rpc service {name} on Zenoh: {e}");
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                log!("a request from the network for rpc service {name} failed: {e}");
                return fail(e.to_string());
            }
        }
    }
    // The end mark: the answer is whole (an answer may have no response).
    if let Err(e) = query.reply_del(query.key_expr().clone()).wait() {
        log!("cannot end a reply for rpc service {name} on Zenoh: {e}");
    }
}

/// Starts serving the local service (bridge-marked) for the remote server.
fn import(name: &str, querier: Arc<Querier<'static>>) -> Result<Worker, String> {
    let server = Server::<[u8], [u8]>::connect_any(name, &RpcOptions::new().bridge())
        .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = name.to_owned();
    let thread = std::thread::Builder::new()
        .name(format!("rpc in {name}"))
        .spawn(move || {
            std::thread::scope(|s| {
                for _ in 0..IN_FLIGHT {
                    s.spawn(|| {
                        while !flag.load(Ordering::Relaxed) {
                            match server.recv_timeout(STOP_CHECK) {
                                Ok(request) => forward(&name, &querier, request),
                                Err(e) if e.kind() == ErrorKind::Timeout => {}
                                Err(e) => {
                                    log!("stopped serving rpc service {name}: {e}");
                                    return;
                                }
                            }
                        }
                    });
                }
            });
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(Worker {
        stop,
        thread: Some(thread),
    })
}

/// Carries one local request to the remote server and its answer back.
fn forward(name: &str, querier: &Querier<'static>, mut request: ActiveRequest<'_, [u8], [u8]>) {
    let len = request.len_bytes();
    let replies = match querier.get().payload(request.to_vec()).wait() {
        Ok(replies) => replies,
        Err(e) => {
            log!("cannot send a request for rpc service {name} on Zenoh: {e}");
            return request.abort();
        }
    };
    let mut responses = 0u64;
    while let Ok(reply) = replies.recv() {
        match reply.result() {
            Ok(sample) if sample.kind() == SampleKind::Delete => return request.end(),
            Ok(sample) => {
                let bytes = sample.payload().to_bytes();
                // Bounded: a local client that never reads must not hold
                // this worker (and the bridge's scans, which join it) for ever.
                if let Err(e) = request.send_copy_timeout(&bytes, RPC_TIMEOUT) {
                    log!(
                        "refused a {}-byte response from the network for rpc service {name}: {e}",
                        bytes.len()
                    );
                    return request.abort();
                }
                responses += 1;
            }
            Err(err) => {
                log!(
                    "a {len}-byte request for rpc service {name} failed on the remote side: {}",
                    err.payload()
                        .try_to_string()
                        .unwrap_or(Cow::Borrowed("(not text)"))
                );
                return request.abort();
            }
        }
    }
    log!(
        "a {len}-byte request for rpc service {name} was not answered whole \
         ({responses} responses, no end): no server on the network answered in time, \
         or its bridge went away"
    );
    request.abort();
}
