//! Joining a request/response service: making or opening its region,
//! checking that it is the service the caller expects, claiming a place;
//! and what both sides do for each other: waking, and telling who is alive.

use std::sync::atomic::Ordering;

use super::layout::{
    Control, Layout, PayloadType, Settings, Types, ACTIVE, FLAG_BRIDGE, GEN, MAGIC, VERSION,
};
use super::{RpcOptions, KIND};
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::messaging::{self, Bells, Format, Opened};
use crate::name::Name;
use crate::sys;

/// The lock index of the server's place; client `c` has `1 + c`.
pub(super) const SERVER_PLACE: u32 = 0;

pub(super) fn client_place(c: u32) -> u32 {
    1 + c
}

/// One participant's connection to a service: its own handle (so its own
/// claims and liveness), the control part mapped, and the doorbells of the
/// others it has rung.
pub(super) struct Rpc {
    pub(super) control: Control,
    pub(super) handle: sys::Handle,
    pub(super) name: Name,
    /// What the service carries, as its creator recorded it.
    pub(super) types: Types,
    bells: Bells,
}

impl Rpc {
    pub(super) fn connect(
        name: &str,
        options: &RpcOptions,
        request: PayloadType,
        response: PayloadType,
    ) -> Result<Rpc> {
        let Opened {
            handle,
            name,
            layout,
            payload,
        } = messaging::connect(name, options, Types { request, response })?;
        let control = Control::map(&handle, layout, true, Operation::Connect)?;
        Ok(Rpc {
            control,
            handle,
            name,
            types: payload,
            bells: Bells::default(),
        })
    }

    pub(super) fn layout(&self) -> &Layout {
        self.control.layout()
    }

    pub(super) fn error(&self, op: Operation, kind: ErrorKind) -> Error {
        Error::new(op, KIND, self.name.given(), kind)
    }

    /// The error every call reports once the server is gone.
    pub(super) fn server_gone(&self, op: Operation) -> Error {
        self.error(op, ErrorKind::PeerGone).with_detail(
            "the server is gone (it closed or died; requests it had not answered are lost)",
        )
    }

    /// Wakes the server if it sleeps (for a request, or for room).
    pub(super) fn wake_server(&self) {
        let s = self.control.server();
        // SeqCst: pairs with the server's SeqCst set of its mark and the
        // re-check after it (see `Server::arm`), against the SeqCst change
        // this call follows: either the server sees the change, or this load
        // sees the mark.
        if s.sleeping.load(Ordering::SeqCst) == 0 {
            return;
        }
        // Claims the wake-up, so two clients do not both ring.
        if s.sleeping.swap(0, Ordering::AcqRel) != 0 {
            self.bells.ring(&self.handle, SERVER_PLACE, &s.bell);
        }
    }

    /// Wakes client `c` if it sleeps (for a response, or a free channel).
    pub(super) fn wake_client(&self, c: u32) {
        let (w, bit) = messaging::bit_of(c);
        let word = self.control.sleepers(w);
        // SeqCst: as in `wake_server`, with the client's SeqCst bit set.
        if word.load(Ordering::SeqCst) & bit == 0 {
            return;
        }
        if word.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
            self.bells
                .ring(&self.handle, client_place(c), &self.control.client(c).bell);
        }
    }

    /// Wakes every sleeping client (the server came or went).
    pub(super) fn wake_all_clients(&self) {
        for c in 0..self.layout().settings.max_clients {
            self.wake_client(c);
        }
    }

    /// Whether a live process holds the server place.
    pub(super) fn server_alive(&self) -> Result<bool> {
        self.handle.is_claimed(SERVER_PLACE)
    }
}

/// The live participants: the server's pid, and each client's
/// `(index, pid)`.
pub(super) type Live = (Option<u32>, Vec<(u32, u32)>);

pub(super) fn participants(control: &Control, handle: &sys::Handle) -> Result<Live> {
    let s = control.server();
    // Acquire: pairs with the holder's Release store of ACTIVE.
    let server = if s.state.load(Ordering::Acquire) == ACTIVE && handle.is_claimed(SERVER_PLACE)? {
        Some(s.pid.load(Ordering::Relaxed))
    } else {
        None
    };
    let mut clients = Vec::new();
    for c in 0..control.layout().settings.max_clients {
        let e = control.client(c);
        if e.state.load(Ordering::Acquire) == ACTIVE && handle.is_claimed(client_place(c))? {
            clients.push((c, e.pid.load(Ordering::Relaxed)));
        }
    }
    Ok((server, clients))
}

/// Requests of client `c` in flight: sent, not yet ended.
pub(super) fn in_flight(control: &Control, c: u32) -> u32 {
    (0..control.layout().depth())
        .filter(|&k| {
            let req = control.chan_client(c, k).req.load(Ordering::Relaxed);
            control.chan_server(c, k).done.load(Ordering::Relaxed) & GEN != req
        })
        .count() as u32
}

/// The payload types of a joined service (for participants that joined
/// whatever it carries).
pub(super) fn payload_types(rpc: &Rpc) -> (PayloadType, PayloadType) {
    (rpc.types.request, rpc.types.response)
}

/// What [`inspect_rpc`] found out about a service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcInfo {
    /// The service's name.
    pub name: String,
    /// The request type, as the creator's compiler named it.
    pub request_type: String,
    /// The response type, as the creator's compiler named it.
    pub response_type: String,
    /// The largest request in bytes.
    pub max_request: u64,
    /// The largest response in bytes.
    pub max_response: u64,
    /// How many clients may be connected at once.
    pub max_clients: u32,
    /// Requests each client may have in flight.
    pub max_in_flight: u32,
    /// Responses one request may have waiting for its client.
    pub max_responses: u32,
    /// Requests in flight now (sent, not yet ended), over all clients.
    pub in_flight: u64,
    /// The live server, if any.
    pub server: Option<RpcParticipant>,
    /// The live clients.
    pub clients: Vec<RpcParticipant>,
}

/// One live participant of a request/response service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcParticipant {
    /// Its place (0 for the server; a client's index among clients).
    pub index: u32,
    /// Its process (informational: liveness comes from the kernel).
    pub pid: u32,
    /// Requests received (the server) or sent (a client) by its place.
    pub requests: u64,
    /// A client's requests in flight now (for the server: all of them).
    pub in_flight: u64,
    /// Whether it is a bridge to another machine (`memlink-bridge`): a
    /// bridge's server answers for a server on another machine.
    pub bridge: bool,
}

/// Looks at a request/response service without joining it: its settings,
/// its live server and clients, and the requests in flight.
///
/// ```
/// use memlink::reqresp::{inspect_rpc, Client, Server};
/// # let name = format!("memlink-doc-inspect-rpc-{}", std::process::id());
/// let server = Server::<u64, u64>::connect(&name)?;
/// let client = Client::<u64, u64>::connect(&name)?;
/// let pending = client.send_copy(&7)?;
/// let info = inspect_rpc(&name)?;
/// assert_eq!((info.in_flight, info.clients.len()), (1, 1));
/// assert!(info.server.is_some());
/// # drop((pending, server));
/// # Ok::<(), memlink::Error>(())
/// ```
pub fn inspect_rpc(name: &str) -> Result<RpcInfo> {
    let Opened {
        handle,
        layout,
        payload: Types { request, response },
        ..
    } = messaging::inspect::<RpcOptions>(name)?;
    let control = Control::map(&handle, layout, false, Operation::Inspect)?;
    let s = layout.settings;
    let (server, clients) = participants(&control, &handle)?;
    let total: u64 = (0..s.max_clients)
        .map(|c| u64::from(in_flight(&control, c)))
        .sum();
    let server = server.map(|pid| RpcParticipant {
        index: 0,
        pid,
        requests: control.server_counters().received.load(Ordering::Relaxed),
        in_flight: total,
        // Relaxed: written before the Release store of ACTIVE, which
        // `participants` loaded with Acquire.
        bridge: control.server().flags.load(Ordering::Relaxed) & FLAG_BRIDGE != 0,
    });
    let clients = clients
        .into_iter()
        .map(|(index, pid)| RpcParticipant {
            index,
            pid,
            requests: control.client(index).sent.load(Ordering::Relaxed),
            in_flight: u64::from(in_flight(&control, index)),
            bridge: control.client(index).flags.load(Ordering::Relaxed) & FLAG_BRIDGE != 0,
        })
        .collect();
    Ok(RpcInfo {
        name: name.to_owned(),
        request_type: request.to_string(),
        response_type: response.to_string(),
        max_request: s.max_request,
        max_response: s.max_response,
        max_clients: s.max_clients,
        max_in_flight: s.max_in_flight,
        max_responses: s.max_responses,
        in_flight: total,
        server,
        clients,
    })
}

impl Format for RpcOptions {
    const KIND: ObjectKind = KIND;
    const MAGIC: u64 = MAGIC;
    const VERSION: u32 = VERSION;
    type Settings = Settings;
    type Payload = Types;
    type Layout = Layout;

    fn any_payload(&self) -> bool {
        self.any_payload
    }

    fn mode(&self) -> u32 {
        self.mode
    }

    /// The settings a new service gets: the caller's, defaults for the rest.
    fn resolve(&self, types: &Types) -> Settings {
        let (request, response) = (&types.request, &types.response);
        Settings {
            max_clients: self.max_clients.unwrap_or(super::DEFAULT_CLIENTS),
            max_in_flight: self.max_in_flight.unwrap_or(super::DEFAULT_IN_FLIGHT),
            max_responses: self.max_responses.unwrap_or(super::DEFAULT_RESPONSES),
            _reserved: 0,
            max_request: request.max_payload(self.max_request_len, super::DEFAULT_SLICE_BYTES),
            max_response: response.max_payload(self.max_response_len, super::DEFAULT_SLICE_BYTES),
        }
    }

    /// Compares the settings the caller chose with an existing service's;
    /// the error says both values.
    fn check(&self, existing: &Settings, types: &Types) -> std::result::Result<(), String> {
        let asked = self.resolve(types);
        let chosen = [
            (
                "max_clients",
                self.max_clients.is_some(),
                u64::from(asked.max_clients),
                u64::from(existing.max_clients),
            ),
            (
                "max_in_flight",
                self.max_in_flight.is_some(),
                u64::from(asked.max_in_flight),
                u64::from(existing.max_in_flight),
            ),
            (
                "max_responses",
                self.max_responses.is_some(),
                u64::from(asked.max_responses),
                u64::from(existing.max_responses),
            ),
            (
                "largest request (bytes)",
                self.max_request_len.is_some(),
                asked.max_request,
                existing.max_request,
            ),
            (
                "largest response (bytes)",
                self.max_response_len.is_some(),
                asked.max_response,
                existing.max_response,
            ),
        ];
        let diffs: Vec<String> = chosen
            .into_iter()
            .filter(|&(_, chosen, mine, theirs)| chosen && mine != theirs)
            .map(|(what, _, mine, theirs)| format!("{what} {mine} here, {theirs} in the service"))
            .collect();
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("; "))
        }
    }
}
