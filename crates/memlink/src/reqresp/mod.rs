//! Request/response over named shared memory: one [`Server`] per service,
//! any number of [`Client`]s, each request answered with one response or a
//! stream of them, only to the client that asked.
//!
//! A *service* is one memlink object named like a region (`memlink ls`
//! shows it as `rpc`). Server and clients connect in any order; the first
//! one makes it. Sending a request needs a live server.
//!
//! ```
//! use std::time::Duration;
//! use memlink::reqresp::{Client, RpcOptions, Server};
//! # let name = format!("memlink-doc-rpc-{}", std::process::id());
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Add { a: u64, b: u64 }
//!
//! let options = RpcOptions::new().max_clients(4).max_in_flight(2);
//! let server = options.server::<Add, u64>(&name)?;      // one per service
//! let client = options.client::<Add, u64>(&name)?;      // one of many
//!
//! let mut pending = client.send_copy(&Add { a: 2, b: 3 })?;
//! let request = server.recv_timeout(Duration::from_secs(1))?;
//! let sum = request.a + request.b;                      // read in place
//! request.respond(&sum)?;                               // answer and end
//! assert_eq!(*pending.recv_timeout(Duration::from_secs(1))?.unwrap(), 5);
//! assert!(pending.recv()?.is_none());                   // the end
//! # Ok::<(), memlink::Error>(())
//! ```
//!
//! # Semantics
//!
//! - **One server per service**: a second server while the first lives is
//!   an [`ErrorKind::InUse`](crate::ErrorKind::InUse) error naming the
//!   service. (Several servers sharing the load is what
//!   [work queues](crate::queue) are for.)
//! - **Many requests in flight** per client (`max_in_flight`, default 8):
//!   each has its own *channel*, so answers are routed to their
//!   [`PendingResponse`] whatever the order the server answers in. With
//!   all channels busy, sending waits ([`Client::send_copy`]), fails with
//!   [`ErrorKind::LimitReached`](crate::ErrorKind::LimitReached)
//!   ([`Client::try_send_copy`]) or awaits ([`Client::send_async`]).
//! - **Streams**: an [`ActiveRequest`] sends any number of responses, then
//!   ends ([`ActiveRequest::end`], or dropping it); up to `max_responses`
//!   (default 4) wait for the client, then the server waits for room. The
//!   client receives them in order, then `None`.
//! - **A server that dies** (or closes) with requests in flight: their
//!   clients get [`ErrorKind::PeerGone`](crate::ErrorKind::PeerGone)
//!   ("the server is gone"), at once if it closed, within about 50 ms if it
//!   was killed (a waiting client asks the kernel whether the server's
//!   claim is held each time its sleep runs out). Responses it sent before
//!   dying are still delivered first.
//! - **A client that dies** (or gives a request up by dropping its
//!   `PendingResponse`): the server's answers to it are dropped (the
//!   server's calls succeed; [`ActiveRequest::is_wanted`] tells), a
//!   server waiting for room on its channel stops waiting (within 10 ms of
//!   a death), and its channels are free for the next holder of its place
//!   once the server has ended what it took.
//!
//! # How it works
//!
//! Each client place has `max_in_flight` channels; a channel is a request
//! slot written by the client and a ring of `max_responses` response slots
//! written by the server, with words that each have one writer:
//!
//! | word | writer | meaning |
//! |---|---|---|
//! | `req` | client | generation of the latest request sent on the channel |
//! | `cancel` | client | a generation it no longer wants answers to |
//! | `resp_tail` | client | responses it is done with |
//! | `taken`, `served_by` | server | generation taken, and by which server |
//! | `resp_head` | server | responses pushed |
//! | `done` | server | generation ended (`ABORTED` bit: by a new server, for a dead one) |
//!
//! A client reuses a channel only once `done` has caught up with `req`:
//! the server reads the request slot and writes answers only before it
//! ends the request. Each new holder of a client place bumps its epoch,
//! each new server the server epoch, so answers for a dead client's
//! requests and requests taken by a dead server are told apart from live
//! ones. Waiting is the crate's one sleep protocol; `docs/protocol.md`
//! has the crash table.
//!
//! Messaging works on Linux and Windows; on macOS and FreeBSD every call
//! is an [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error.

mod client;
mod joint;
mod layout;
mod server;

pub use crate::messaging::Payload;
pub use client::{Client, PendingResponse, RequestMut, Response};
pub use joint::{inspect_rpc, RpcInfo, RpcParticipant};
pub(crate) use layout::MAGIC;
pub use server::{ActiveRequest, ResponseMut, Server};

use crate::error::ObjectKind;

/// What a participant's marker field stands for: the payload types it
/// handles, without owning any.
type Types<Req, Resp> = (fn(&Req), fn(&Resp));

const KIND: ObjectKind = ObjectKind::RequestResponse;
const DEFAULT_CLIENTS: u32 = 16;
const DEFAULT_IN_FLIGHT: u32 = 8;
const DEFAULT_RESPONSES: u32 = 4;
const DEFAULT_SLICE_BYTES: u64 = 4096;

/// The settings of a request/response service, for the participant that
/// makes it, and the expectations of one that joins it.
///
/// A setting chosen here must match the service's when it exists already
/// (an [`ErrorKind::Incompatible`](crate::ErrorKind::Incompatible) error
/// says both values); settings left alone take the service's.
#[derive(Debug, Clone, Default)]
pub struct RpcOptions {
    max_clients: Option<u32>,
    max_in_flight: Option<u32>,
    max_responses: Option<u32>,
    max_request_len: Option<u64>,
    max_response_len: Option<u64>,
    mode: u32,
    /// Flags of the participants joining with these options.
    participant_flags: u32,
    /// Join whatever payload types the service has (tools); a new service
    /// is made for `[u8]` both ways.
    any_payload: bool,
}

impl RpcOptions {
    /// The defaults: 16 clients, 8 requests in flight per client, 4
    /// responses waiting per request, slices of up to 4 KiB, private to the
    /// creating user (mode `0o600`).
    pub fn new() -> RpcOptions {
        RpcOptions {
            mode: 0o600,
            ..RpcOptions::default()
        }
    }

    /// How many clients may be connected at once (1 to 1024).
    pub fn max_clients(mut self, n: u32) -> Self {
        self.max_clients = Some(n);
        self
    }

    /// How many requests each client may have in flight (1 to 64).
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.max_in_flight = Some(n);
        self
    }

    /// How many responses to one request may wait for their client before
    /// the server waits for room (1 to 65536).
    pub fn max_responses(mut self, n: u32) -> Self {
        self.max_responses = Some(n);
        self
    }

    /// For slice requests: the most elements one request may have.
    pub fn max_request_len(mut self, n: u64) -> Self {
        self.max_request_len = Some(n);
        self
    }

    /// For slice responses: the most elements one response may have.
    pub fn max_response_len(mut self, n: u64) -> Self {
        self.max_response_len = Some(n);
        self
    }

    /// Who may join a new service, as Unix permission bits (default
    /// `0o600`); on Windows the doorbells are made with default security.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Marks the participants that join with these options as a bridge to
    /// another machine (`RpcParticipant::bridge`). For `memlink-bridge`;
    /// not part of the stable API.
    #[doc(hidden)]
    pub fn bridge(mut self) -> Self {
        self.participant_flags |= layout::FLAG_BRIDGE;
        self
    }

    /// Serves the service `name` (making it if it does not exist).
    pub fn server<Req: Payload + ?Sized, Resp: Payload + ?Sized>(
        &self,
        name: &str,
    ) -> crate::Result<Server<Req, Resp>> {
        Server::connect_with(name, self)
    }

    /// Connects a client to the service `name` (making it if it does not
    /// exist).
    pub fn client<Req: Payload + ?Sized, Resp: Payload + ?Sized>(
        &self,
        name: &str,
    ) -> crate::Result<Client<Req, Resp>> {
        Client::connect_with(name, self)
    }
}
