//! A bridge from memlink publish/subscribe services to Zenoh, so that
//! services reach other machines.
//!
//! A [`Bridge`] joins each chosen local service twice, as a subscriber and
//! as a publisher, both marked as a bridge (`memlink ls` shows the service
//! as "bridged", `memlink info` the two participants as "(bridge)"):
//!
//! - what local publishers send, its subscriber puts on the Zenoh key
//!   `PREFIX/NAME` (to remote subscribers only);
//! - what other machines' bridges put there, its publisher sends into the
//!   local service: loaned from shared memory and filled, so local
//!   subscribers read it in place as any other sample.
//!
//! No loops: a sample that a bridge's publisher sent came from the network,
//! and every bridge's subscriber passes it over ([`Sample::from_bridge`]).
//! So with bridges on two machines carrying the same service, each
//! subscriber receives each sample once, and the samples of each publisher
//! in the order it sent them (Zenoh over TCP keeps them in order).
//!
//! The bridge joins services that exist: one named on its command line is
//! picked up once a local participant has made it, and a glob is matched
//! against the machine's objects every scan interval. It learns the
//! service's payload from the service itself, so it carries services of
//! any type as bytes; a sample from the network that does not fit the
//! local service (larger than its largest, or not a whole number of its
//! values) is refused with a log line, never written past a slot.
//!
//! A remote bridge appearing or going away is logged (through Zenoh
//! liveliness tokens); it is never fatal. A bridge killed and started again
//! resumes: the kernel released its places when it died, and Zenoh
//! reconnects to the endpoints it is given.
//!
//! Request/response services are carried too, through Zenoh queryables:
//! see [`rpc`].
//!
//! [`Sample::from_bridge`]: memlink::pubsub::Sample

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memlink::pubsub::{inspect_service, Publisher, ServiceInfo, ServiceOptions, Subscriber};
use memlink::ErrorKind;
use zenoh::key_expr::KeyExpr;
use zenoh::qos::CongestionControl;
use zenoh::sample::{Locality, SampleKind};
use zenoh::Wait;

/// What the bridge's errors are: the message says what failed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The Zenoh mode of the bridge's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Talk to other peers directly.
    Peer,
    /// Talk through a Zenoh router.
    Client,
}

/// How a [`Bridge`] is set up.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Service names or globs over names (`*` any run of characters, `?`
    /// one character).
    pub services: Vec<String>,
    /// The Zenoh key prefix: service `NAME` goes on `PREFIX/NAME`.
    pub prefix: String,
    /// Zenoh endpoints to connect to (`tcp/HOST:PORT`).
    pub connect: Vec<String>,
    /// Zenoh endpoints to listen on.
    pub listen: Vec<String>,
    /// A Zenoh JSON5 configuration file, applied first.
    pub config_file: Option<PathBuf>,
    /// The Zenoh mode (the configuration's, else peer).
    pub mode: Option<Mode>,
    /// How often to look for services that newly match.
    pub scan_interval: Duration,
}

impl BridgeConfig {
    /// A configuration for `services` with the defaults: prefix `memlink`,
    /// no endpoints, peer mode, a scan every 500 ms.
    pub fn new(services: Vec<String>) -> BridgeConfig {
        BridgeConfig {
            services,
            prefix: "memlink".to_owned(),
            connect: Vec::new(),
            listen: Vec::new(),
            config_file: None,
            mode: None,
            scan_interval: Duration::from_millis(500),
        }
    }

    /// The Zenoh configuration this asks for.
    fn zenoh(&self) -> Result<zenoh::Config, Error> {
        let mut config = match &self.config_file {
            Some(path) => zenoh::Config::from_file(path).map_err(|e| {
                format!(
                    "cannot read the Zenoh configuration {}: {e}",
                    path.display()
                )
            })?,
            None => {
                let mut c = zenoh::Config::default();
                // No multicast unless a configuration file asks for it:
                // peers are the endpoints given.
                set(&mut c, "scouting/multicast/enabled", "false")?;
                c
            }
        };
        if let Some(mode) = self.mode {
            let mode = match mode {
                Mode::Peer => "\"peer\"",
                Mode::Client => "\"client\"",
            };
            set(&mut config, "mode", mode)?;
        }
        let list = |endpoints: &[String]| {
            let quoted: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
            format!("[{}]", quoted.join(","))
        };
        if !self.connect.is_empty() {
            set(&mut config, "connect/endpoints", &list(&self.connect))?;
        }
        if !self.listen.is_empty() {
            set(&mut config, "listen/endpoints", &list(&self.listen))?;
        }
        Ok(config)
    }
}

fn set(config: &mut zenoh::Config, key: &str, value: &str) -> Result<(), Error> {
    config
        .insert_json5(key, value)
        .map_err(|e| format!("bad Zenoh setting {key} = {value}: {e}").into())
}

/// Writes a log line to standard error, with the time (seconds since the
/// epoch, to the millisecond).
pub fn log(message: std::fmt::Arguments<'_>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "memlink-bridge [{}.{:03}] {message}",
        now.as_secs(),
        now.subsec_millis()
    );
}

macro_rules! log {
    ($($arg:tt)*) => { $crate::log(format_args!($($arg)*)) };
}

pub mod rpc;

/// A glob over service names: `*` any run of characters, `?` one.
#[derive(Debug, Clone)]
struct Pattern(Vec<char>);

impl Pattern {
    fn is_glob(text: &str) -> bool {
        text.contains(['*', '?'])
    }

    fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let p = &self.0;
        // Iterative wildcard matching with one backtrack point.
        let (mut i, mut j) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while j < name.len() {
            if i < p.len() && (p[i] == '?' || p[i] == name[j]) {
                i += 1;
                j += 1;
            } else if i < p.len() && p[i] == '*' {
                star = Some((i, j));
                i += 1;
            } else if let Some((si, sj)) = star {
                i = si + 1;
                j = sj + 1;
                star = Some((si, sj + 1));
            } else {
                return false;
            }
        }
        p[i..].iter().all(|&c| c == '*')
    }
}

/// Counters of one bridged service.
#[derive(Debug, Default)]
pub struct Counters {
    /// Local samples put on Zenoh.
    pub sent: AtomicU64,
    /// Samples from Zenoh published locally.
    pub received: AtomicU64,
    /// Samples from Zenoh refused (too large, the wrong size, no slot).
    pub refused: AtomicU64,
}

/// One service being carried.
struct Bridged {
    counters: Arc<Counters>,
    _remote: zenoh::pubsub::Subscriber<()>,
    out: Option<JoinHandle<()>>,
}

/// A running bridge: a Zenoh session and the services it carries.
pub struct Bridge {
    /// Dropped first: its threads use the session.
    rpc: rpc::Services,
    session: zenoh::Session,
    config: BridgeConfig,
    /// Names given whole.
    names: BTreeSet<String>,
    globs: Vec<Pattern>,
    bridged: BTreeMap<String, Bridged>,
    /// The last failure logged per name, so a retry that fails the same way
    /// is not logged again.
    failures: BTreeMap<String, String>,
    stop: Arc<AtomicBool>,
    _token: zenoh::liveliness::LivelinessToken,
    _peers: zenoh::pubsub::Subscriber<()>,
}

impl Bridge {
    /// Opens the Zenoh session and announces this bridge; services are
    /// joined by [`scan`](Bridge::scan) (which [`run`](Bridge::run) calls).
    pub fn start(config: BridgeConfig) -> Result<Bridge, Error> {
        if config.services.is_empty() {
            return Err("no service to bridge: give --service NAME or a glob".into());
        }
        let prefix = config.prefix.trim_end_matches('/').to_owned();
        KeyExpr::try_from(prefix.clone())
            .map_err(|e| format!("the prefix {prefix:?} is not a Zenoh key: {e}"))?;
        let config = BridgeConfig { prefix, ..config };
        let mut names = BTreeSet::new();
        let mut globs = Vec::new();
        for s in &config.services {
            if Pattern::is_glob(s) {
                globs.push(Pattern(s.chars().collect()));
            } else {
                names.insert(s.clone());
            }
        }
        let session = zenoh::open(config.zenoh()?)
            .wait()
            .map_err(|e| format!("cannot open the Zenoh session: {e}"))?;
        let zid = session.zid().to_string();
        let peers_key = format!("memlink-bridge/{}", config.prefix);
        let token = session
            .liveliness()
            .declare_token(format!("{peers_key}/{zid}"))
            .wait()
            .map_err(|e| format!("cannot announce the bridge on Zenoh: {e}"))?;
        let me = zid.clone();
        let peers = session
            .liveliness()
            .declare_subscriber(format!("{peers_key}/*"))
            .history(true)
            .callback(move |sample| {
                let key = sample.key_expr().as_str();
                let who = key.rsplit('/').next().unwrap_or(key);
                if who == me {
                    return;
                }
                match sample.kind() {
                    SampleKind::Put => log!("remote bridge {who} is up"),
                    SampleKind::Delete => {
                        log!("remote bridge {who} went away; carrying on without it")
                    }
                }
            })
            .wait()
            .map_err(|e| format!("cannot watch for other bridges on Zenoh: {e}"))?;
        log!(
            "Zenoh session {zid} open; listening on {:?}, connecting to {:?}; key prefix {}",
            config.listen,
            config.connect,
            config.prefix
        );
        Ok(Bridge {
            rpc: rpc::Services::default(),
            session,
            config,
            names,
            globs,
            bridged: BTreeMap::new(),
            failures: BTreeMap::new(),
            stop: Arc::new(AtomicBool::new(false)),
            _token: token,
            _peers: peers,
        })
    }

    /// The Zenoh session (for tools and tests).
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }

    /// Scans for services newly matching, then again every scan interval,
    /// for ever.
    pub fn run(mut self) {
        loop {
            self.scan();
            // A polling interval, not synchronisation: new services are
            // found by looking.
            std::thread::sleep(self.config.scan_interval);
        }
    }

    /// The counters of the services bridged so far.
    pub fn counters(&self) -> Vec<(String, Arc<Counters>)> {
        self.bridged
            .iter()
            .map(|(name, b)| (name.clone(), b.counters.clone()))
            .collect()
    }

    /// Joins every service that matches and is not bridged yet.
    pub fn scan(&mut self) {
        let mut candidates: BTreeSet<String> = self
            .names
            .iter()
            .filter(|n| !self.bridged.contains_key(*n))
            .cloned()
            .collect();
        if !self.globs.is_empty() {
            match memlink::list() {
                Ok(objects) => {
                    for o in objects {
                        let kind_fits = matches!(
                            o.kind,
                            Some(memlink::ObjectKind::Service) | Some(memlink::ObjectKind::Region)
                        );
                        if kind_fits
                            && o.state == memlink::State::Alive
                            && !self.bridged.contains_key(&o.name)
                            && self.globs.iter().any(|g| g.matches(&o.name))
                        {
                            candidates.insert(o.name);
                        }
                    }
                }
                Err(e) => self.failed("(listing)", format!("cannot list objects: {e}")),
            }
        }
        let rpc = self
            .rpc
            .scan(&self.session, &self.config.prefix, &self.names, &self.globs);
        candidates.retain(|n| !rpc.contains(n));
        for name in candidates {
            let named = self.names.contains(&name);
            match self.join(&name) {
                Ok(bridged) => {
                    self.failures.remove(&name);
                    self.bridged.insert(name, bridged);
                }
                // A name given whole that nobody has made yet: wait for it.
                Err(JoinError::Absent) if named => self.failed(
                    &name,
                    format!("service {name} does not exist yet; bridging it once it does"),
                ),
                // A glob matched an object that is not a service: not ours.
                Err(JoinError::Absent) => {}
                Err(JoinError::Failed(e)) => self.failed(&name, e),
            }
        }
    }

    fn failed(&mut self, name: &str, message: String) {
        if self.failures.get(name) != Some(&message) {
            log!("{message}");
            self.failures.insert(name.to_owned(), message);
        }
    }

    /// Joins service `name` as a bridge and starts carrying it.
    fn join(&self, name: &str) -> Result<Bridged, JoinError> {
        let info = match inspect_service(name) {
            Ok(info) => info,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Incompatible) => {
                return Err(JoinError::Absent)
            }
            Err(e) => return Err(JoinError::Failed(format!("cannot bridge {name}: {e}"))),
        };
        let failed = |e: String| JoinError::Failed(format!("cannot bridge {name}: {e}"));
        let key = format!("{}/{name}", self.config.prefix);
        let key = KeyExpr::try_from(key)
            .map_err(|e| failed(format!("its key is not a Zenoh key: {e}")))?
            .into_owned();
        let options = ServiceOptions::new().bridge();
        let subscriber =
            Subscriber::connect_any(name, &options).map_err(|e| failed(e.to_string()))?;
        let publisher =
            Publisher::connect_any(name, &options).map_err(|e| failed(e.to_string()))?;
        let counters = Arc::new(Counters::default());
        let to_remote = self
            .session
            .declare_publisher(key.clone())
            .congestion_control(CongestionControl::Block)
            .allowed_destination(Locality::Remote)
            .wait()
            .map_err(|e| failed(format!("cannot declare a Zenoh publisher on {key}: {e}")))?;
        let inbound = Inbound {
            publisher,
            fit: Fit::of(&info),
            counters: counters.clone(),
            name: name.to_owned(),
        };
        let remote = self
            .session
            .declare_subscriber(key.clone())
            .allowed_origin(Locality::Remote)
            .callback(move |sample| inbound.publish(sample.payload()))
            .wait()
            .map_err(|e| failed(format!("cannot declare a Zenoh subscriber on {key}: {e}")))?;
        let stop = self.stop.clone();
        let out_counters = counters.clone();
        let out_name = name.to_owned();
        let out = std::thread::Builder::new()
            .name(format!("out {name}"))
            .spawn(move || forward_out(&out_name, subscriber, to_remote, &out_counters, &stop))
            .map_err(|e| failed(format!("cannot start a thread: {e}")))?;
        log!(
            "bridging service {name} ({}) <-> Zenoh key {key}",
            describe(&info)
        );
        Ok(Bridged {
            counters,
            _remote: remote,
            out: Some(out),
        })
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for b in self.bridged.values_mut() {
            if let Some(out) = b.out.take() {
                let _ = out.join();
            }
        }
    }
}

enum JoinError {
    /// No service by that name (or not a service).
    Absent,
    Failed(String),
}

fn describe(info: &ServiceInfo) -> String {
    if info.slices {
        format!(
            "slices of {}, at most {} bytes",
            info.payload_type, info.max_payload
        )
    } else {
        format!("{}, {} bytes", info.payload_type, info.payload_size)
    }
}

/// The samples a service can take.
#[derive(Debug, Clone, Copy)]
struct Fit {
    max: u64,
    /// The size of one value (of one element, for slices).
    size: u64,
    slices: bool,
}

impl Fit {
    fn of(info: &ServiceInfo) -> Fit {
        Fit {
            max: info.max_payload,
            size: info.payload_size,
            slices: info.slices,
        }
    }

    /// Why a sample of `len` bytes cannot go into the service, if it cannot.
    fn refuse(&self, len: u64) -> Option<String> {
        if len > self.max {
            Some(format!(
                "it is larger than the service's largest, {} bytes",
                self.max
            ))
        } else if !self.slices && len != self.size {
            Some(format!("the service carries values of {} bytes", self.size))
        } else if self.slices && self.size > 1 && len % self.size != 0 {
            Some(format!(
                "it is not a whole number of the service's {}-byte elements",
                self.size
            ))
        } else {
            None
        }
    }
}

/// How long a sample from the network may wait for room in a service whose
/// slow subscribers block publishers before it is dropped (the Zenoh link
/// waits meanwhile, which is its own backpressure).
const ROOM_WAIT: Duration = Duration::from_secs(5);

/// The network-to-local half of one service.
struct Inbound {
    publisher: Publisher<[u8]>,
    fit: Fit,
    counters: Arc<Counters>,
    name: String,
}

impl Inbound {
    /// Publishes a sample from the network into the local service: loaned
    /// in shared memory, filled, sent.
    fn publish(&self, payload: &zenoh::bytes::ZBytes) {
        let len = payload.len();
        if let Some(why) = self.fit.refuse(len as u64) {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            log!(
                "refused a {len}-byte sample from the network for service {}: {why}",
                self.name
            );
            return;
        }
        let mut sample = match self.publisher.loan_slice_uninit(len) {
            Ok(sample) => sample,
            Err(e) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                log!("dropped a sample from the network: {e}");
                return;
            }
        };
        let mut at = 0;
        for part in payload.slices() {
            // The parts add up to `len`, the loan's length.
            sample[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        match sample.send_timeout(ROOM_WAIT) {
            Ok(()) => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                log!("dropped a sample from the network: {e}");
            }
        }
    }
}

/// How long the local-to-network half waits for a sample before it looks
/// at the stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// The local-to-network half of one service: every sample that a local,
/// non-bridge publisher sent is put on Zenoh.
fn forward_out(
    name: &str,
    subscriber: Subscriber<[u8]>,
    to_remote: zenoh::pubsub::Publisher<'static>,
    counters: &Counters,
    stop: &AtomicBool,
) {
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let sample = match subscriber.recv_timeout(STOP_CHECK) {
            Ok(sample) => sample,
            Err(e) if e.kind() == ErrorKind::Timeout => continue,
            Err(e) => {
                log!("stopped carrying {name} to the network: {e}");
                return;
            }
        };
        if sample.from_bridge() {
            continue;
        }
        match to_remote.put(&*sample).wait() {
            Ok(()) => {
                failing = false;
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if !failing => {
                failing = true;
                log!("cannot put a sample of {name} on Zenoh: {e}");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names() {
        let p = |s: &str| Pattern(s.chars().collect());
        assert!(p("sensors.*").matches("sensors.left"));
        assert!(p("sensors.*").matches("sensors."));
        assert!(!p("sensors.*").matches("sensors"));
        assert!(!p("sensors.*").matches("other.left"));
        assert!(p("*").matches(""));
        assert!(p("a?c").matches("abc"));
        assert!(!p("a?c").matches("ac"));
        assert!(p("*-cam-*").matches("front-cam-1"));
        assert!(!p("*-cam-*").matches("front-cam"));
        assert!(p("a*b*c").matches("aXbYbZc"));
    }

    #[test]
    fn samples_that_do_not_fit_are_refused_with_a_reason() {
        let bytes = Fit {
            max: 64,
            size: 1,
            slices: true,
        };
        assert!(bytes.refuse(64).is_none());
        assert!(bytes.refuse(0).is_none());
        assert!(bytes.refuse(65).unwrap().contains("largest, 64 bytes"));
        let value = Fit {
            max: 8,
            size: 8,
            slices: false,
        };
        assert!(value.refuse(8).is_none());
        assert!(value.refuse(4).unwrap().contains("values of 8 bytes"));
        let floats = Fit {
            max: 400,
            size: 4,
            slices: true,
        };
        assert!(floats.refuse(6).unwrap().contains("4-byte elements"));
        assert!(floats.refuse(8).is_none());
    }
}
