//! The bytes of a request/response service: one region, laid out from its
//! settings.
//!
//! ```text
//! 0        Header: magic (written last), layout version, settings,
//!          request and response payload types
//! 512      the server's line: doorbell, state, pid, epoch, sleeping mark
//! 576      the server's counters
//! 640      sleeping clients: one bit each (W = ceil(clients / 64) words)
//! ...      client entries, one per place: a line the client writes (doorbell,
//!          state, pid, epoch, requests sent), then per channel (one per
//!          request in flight) a line the client writes (request generation,
//!          its epoch and length, the generation it gave up on, the response
//!          tail), a line the server writes (generation taken, by which server,
//!          generation ended, response head) and the response ring's entries
//!          (generation, length), written by the server
//! page     request data: per client a page-aligned partition of one slot per
//!          channel (written by the client, read by the server)
//! page     response data: per client a page-aligned partition of
//!          `max_responses` slots per channel (written by the server, read by
//!          the client)
//! ```
//!
//! Every word has one writer: the client of the place, or the server.

use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::messaging::ObjectLayout;
pub(super) use crate::messaging::PayloadType;
use crate::sys::layout::Bell;

/// "mlrpc" and a version byte, in the first word once the service is ready.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"mlrpc\x01\x00\x00");
/// The layout version; another version is an `Incompatible` error.
pub(super) const VERSION: u32 = 1;
const HEADER_SIZE: u64 = 512;
const LINE: u64 = 64;
const PAGE: u64 = 4096;

pub(super) const MAX_CLIENTS: u32 = 1024;
pub(super) const MAX_IN_FLIGHT: u32 = 64;
pub(super) const MAX_RESPONSES: u32 = 1 << 16;

/// A participant entry is in use (written by the place's holder only).
pub(super) const ACTIVE: u32 = 1;
/// A participant entry is free.
pub(super) const FREE: u32 = 0;

/// In a channel's `done` word: the request was ended because the server
/// that took it died (a new server found it so), not by an answer.
pub(super) const ABORTED: u64 = 1 << 63;
/// The generation part of a `done` word (or of a ring entry's).
pub(super) const GEN: u64 = ABORTED - 1;
/// In a ring entry's `gen` word: the stream ends with this response.
pub(super) const LAST: u64 = 1 << 63;

/// Participant flag: the place is held by a bridge to another machine
/// (`memlink-bridge`): a bridge's server answers for a remote one, so no
/// bridge carries it to the network again.
pub(super) const FLAG_BRIDGE: u32 = 1;

/// The settings a service is made with; stored in its header.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(super) max_clients: u32,
    /// Channels per client: requests it may have in flight at once.
    pub(super) max_in_flight: u32,
    /// Responses one request may have waiting for its client: the length
    /// of each channel's response ring.
    pub(super) max_responses: u32,
    pub(super) _reserved: u32,
    /// The largest request, in bytes.
    pub(super) max_request: u64,
    /// The largest response, in bytes.
    pub(super) max_response: u64,
}

/// What a service carries: its request and response types, recorded in
/// its header.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Types {
    pub(super) request: PayloadType,
    pub(super) response: PayloadType,
}

impl std::fmt::Display for Types {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requests of {}, responses of {}",
            self.request, self.response
        )
    }
}

/// The first bytes of a service.
type Header = crate::messaging::Header<Settings, Types>;
const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_SIZE);

/// The server's line, written by the holder of the server place (its
/// `sleeping` mark is cleared by the clients that ring it).
#[repr(C)]
pub(super) struct ServerEntry {
    /// Rung by clients when the server sleeps (for a request, or for room
    /// in a response ring).
    pub(super) bell: Bell,
    pub(super) state: AtomicU32,
    pub(super) pid: AtomicU32,
    /// Bumped by each new server: which server took a request.
    pub(super) epoch: AtomicU64,
    /// Non-zero while the server sleeps; a client that sees it claims it
    /// (swaps it to 0) and rings.
    pub(super) sleeping: AtomicU32,
    pub(super) flags: AtomicU32,
}

/// The server's counters, on a line of their own: clients read the
/// server's line on every request, so the server writes there only when
/// it changes state.
#[repr(C)]
pub(super) struct ServerCounters {
    /// Requests taken.
    pub(super) received: AtomicU64,
}

/// The first line of a client entry, written by the place's holder.
#[repr(C)]
pub(super) struct ClientEntry {
    /// Rung by the server when the holder sleeps (for a response, or for a
    /// channel to become free).
    pub(super) bell: Bell,
    pub(super) state: AtomicU32,
    pub(super) pid: AtomicU32,
    /// Bumped by each new holder of the place: answers to requests of an
    /// earlier holder are dropped.
    pub(super) epoch: AtomicU64,
    /// Requests sent by this place (all holders): the server scans the
    /// place's channels when it moves.
    pub(super) sent: AtomicU64,
    pub(super) flags: AtomicU32,
}

/// A channel's line written by its client.
#[repr(C)]
pub(super) struct ChannelClient {
    /// The generation of the latest request sent on the channel (0: none).
    pub(super) req: AtomicU64,
    /// The epoch of the client that sent it.
    pub(super) req_epoch: AtomicU64,
    /// Its length in bytes.
    pub(super) req_len: AtomicU64,
    /// A generation whose answers the client no longer wants.
    pub(super) cancel: AtomicU64,
    /// Responses the client is done with (all generations).
    pub(super) resp_tail: AtomicU64,
}

/// A channel's line written by the server.
#[repr(C)]
pub(super) struct ChannelServer {
    /// The generation of the latest request taken.
    pub(super) taken: AtomicU64,
    /// The epoch of the server that took it.
    pub(super) served_by: AtomicU64,
    /// The generation of the latest request ended (with [`ABORTED`] when
    /// its server died).
    pub(super) done: AtomicU64,
    /// Responses pushed into the ring (all generations).
    pub(super) resp_head: AtomicU64,
}

/// One entry of a channel's response ring, written by the server before
/// it moves the head past it.
#[repr(C)]
pub(super) struct RingEntry {
    /// The generation of the request it answers, with [`LAST`] when it is
    /// the last response (the end comes with it).
    pub(super) gen: AtomicU64,
    pub(super) len: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<ServerEntry>() as u64 <= LINE);
const _: () = assert!(std::mem::size_of::<ClientEntry>() as u64 <= LINE);
const _: () = assert!(std::mem::size_of::<ChannelClient>() as u64 <= LINE);
const _: () = assert!(std::mem::size_of::<ChannelServer>() as u64 <= LINE);

/// Where everything is, derived from the settings and the payloads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(super) settings: Settings,
    server: u64,
    sleepers: u64,
    clients: u64,
    client_size: u64,
    channel_size: u64,
    pub(super) req_stride: u64,
    pub(super) resp_stride: u64,
    /// Where the request data starts, and each client's part of it.
    pub(super) req_data: u64,
    pub(super) req_partition: u64,
    /// Where the response data starts, and each client's part of it.
    pub(super) resp_data: u64,
    pub(super) resp_partition: u64,
    pub(super) total: u64,
}

fn round_up(n: u64, to: u64) -> Option<u64> {
    n.checked_add(to - 1).map(|n| n / to * to)
}

impl ObjectLayout for Layout {
    type Settings = Settings;
    type Payload = Types;

    /// Lays a service out; `Err` names the setting that cannot work.
    fn lay_out(
        settings: Settings,
        types: &Types,
        name: &str,
        operation: Operation,
    ) -> Result<Layout> {
        let (request, response) = (&types.request, &types.response);
        let invalid = |why: String| {
            Error::new(operation, super::KIND, name, ErrorKind::InvalidArgument).with_detail(why)
        };
        let s = settings;
        if s.max_clients == 0 || s.max_clients > MAX_CLIENTS {
            return Err(invalid(format!(
                "max_clients is {}; it must be 1 to {MAX_CLIENTS}",
                s.max_clients
            )));
        }
        if s.max_in_flight == 0 || s.max_in_flight > MAX_IN_FLIGHT {
            return Err(invalid(format!(
                "max_in_flight is {}; it must be 1 to {MAX_IN_FLIGHT}",
                s.max_in_flight
            )));
        }
        if s.max_responses == 0 || s.max_responses > MAX_RESPONSES {
            return Err(invalid(format!(
                "max_responses is {}; it must be 1 to {MAX_RESPONSES}",
                s.max_responses
            )));
        }
        for (what, payload, max) in [
            ("request", request, s.max_request),
            ("response", response, s.max_response),
        ] {
            if payload.slice == 1 && payload.size == 0 {
                return Err(invalid(format!(
                    "{what}s are slices of a zero-sized type, which cannot be carried \
                     (a message's length is its byte length)"
                )));
            }
            if max == 0 && payload.slice == 1 {
                return Err(invalid(format!(
                    "the largest {what} slice must be at least 1 element"
                )));
            }
            if max < payload.size {
                return Err(invalid(format!(
                    "the largest {what} is {max} bytes, less than one {}-byte value",
                    payload.size
                )));
            }
            if u64::from(payload.align) > PAGE {
                return Err(invalid(format!(
                    "the {what} alignment {} is more than a page",
                    payload.align
                )));
            }
        }
        let too_big = || invalid("the service would not fit in 64-bit sizes".into());
        let depth = u64::from(s.max_in_flight);
        let ring = u64::from(s.max_responses);
        let words = u64::from(s.max_clients).div_ceil(64);
        let server = HEADER_SIZE;
        let sleepers = server + 2 * LINE;
        let clients = sleepers + round_up(words * 8, LINE).unwrap();
        let channel_size = 2 * LINE + round_up(ring * 16, LINE).unwrap();
        let client_size = LINE + depth * channel_size;
        let control_end = clients + client_size * u64::from(s.max_clients);
        let req_stride = round_up(s.max_request.max(1), u64::from(request.align).max(LINE))
            .ok_or_else(too_big)?;
        let resp_stride = round_up(s.max_response.max(1), u64::from(response.align).max(LINE))
            .ok_or_else(too_big)?;
        let req_data = round_up(control_end, PAGE).ok_or_else(too_big)?;
        let req_partition = req_stride
            .checked_mul(depth)
            .and_then(|n| round_up(n, PAGE))
            .ok_or_else(too_big)?;
        let resp_data = req_partition
            .checked_mul(u64::from(s.max_clients))
            .and_then(|n| n.checked_add(req_data))
            .ok_or_else(too_big)?;
        let resp_partition = resp_stride
            .checked_mul(depth * ring)
            .and_then(|n| round_up(n, PAGE))
            .ok_or_else(too_big)?;
        let total = resp_partition
            .checked_mul(u64::from(s.max_clients))
            .and_then(|n| n.checked_add(resp_data))
            .ok_or_else(too_big)?;
        Ok(Layout {
            settings,
            server,
            sleepers,
            clients,
            client_size,
            channel_size,
            req_stride,
            resp_stride,
            req_data,
            req_partition,
            resp_data,
            resp_partition,
            total,
        })
    }

    fn total(&self) -> u64 {
        self.total
    }

    /// The control part's length: everything before the request data.
    fn control_len(&self) -> u64 {
        self.req_data
    }
}

impl Layout {
    pub(super) fn depth(&self) -> u32 {
        self.settings.max_in_flight
    }

    pub(super) fn ring(&self) -> u64 {
        u64::from(self.settings.max_responses)
    }

    /// Offset of request slot `k` of client `c` within the request data.
    pub(super) fn req_slot(&self, c: u32, k: u32) -> u64 {
        self.req_partition * u64::from(c) + self.req_stride * u64::from(k)
    }

    /// Offset of response slot `n` (of the ring) of channel `k` of client
    /// `c` within the response data.
    pub(super) fn resp_slot(&self, c: u32, k: u32, n: u64) -> u64 {
        self.resp_partition * u64::from(c)
            + self.resp_stride * (u64::from(k) * self.ring() + n % self.ring())
    }
}

/// The control part of a service, mapped.
pub(super) type Control = crate::messaging::Control<Layout>;

impl Control {
    pub(super) fn server(&self) -> &ServerEntry {
        self.at(self.layout().server)
    }

    pub(super) fn server_counters(&self) -> &ServerCounters {
        self.at(self.layout().server + LINE)
    }

    /// Word `w` of the sleeping-client bits.
    pub(super) fn sleepers(&self, w: u64) -> &AtomicU64 {
        self.at(self.layout().sleepers + 8 * w)
    }

    fn client_at(&self, c: u32) -> u64 {
        self.layout().clients + self.layout().client_size * u64::from(c)
    }

    pub(super) fn client(&self, c: u32) -> &ClientEntry {
        self.at(self.client_at(c))
    }

    fn channel_at(&self, c: u32, k: u32) -> u64 {
        self.client_at(c) + LINE + self.layout().channel_size * u64::from(k)
    }

    pub(super) fn chan_client(&self, c: u32, k: u32) -> &ChannelClient {
        self.at(self.channel_at(c, k))
    }

    pub(super) fn chan_server(&self, c: u32, k: u32) -> &ChannelServer {
        self.at(self.channel_at(c, k) + LINE)
    }

    /// The ring entry response number `n` of channel `k` of client `c` uses.
    pub(super) fn entry(&self, c: u32, k: u32, n: u64) -> &RingEntry {
        self.at(self.channel_at(c, k) + 2 * LINE + 16 * (n % self.layout().ring()))
    }
}
