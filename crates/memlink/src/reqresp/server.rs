//! The serving side: one per service, reading requests in place and
//! answering them into the asking client's channel.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::joint::{self, client_place, Rpc, SERVER_PLACE};
use super::layout::{ABORTED, ACTIVE, FREE, GEN, LAST};
use super::{Payload, RpcOptions};
use crate::error::{ErrorKind, Operation, Result};
use crate::messaging::{deadline_after, payload_type, PayloadType};
use crate::sys;
use crate::sys::layout::Bell;
use crate::wait::{self, Waitable};

/// How often a server waiting for room in a client's response ring checks
/// that the client is alive (the kernel says so through its claim; this is
/// not a timeout on the client).
const LIVENESS_CHECK: Duration = Duration::from_millis(10);

/// The server of a request/response service: takes requests from any
/// client ([`recv`](Server::recv) and its variants) and answers each one
/// through its [`ActiveRequest`], with one response or a stream of them.
///
/// **One server per service**: connecting a second one while the first is
/// alive is an [`ErrorKind::InUse`](crate::ErrorKind::InUse) error that
/// names the service (and the first server's pid). A server that dies
/// frees the place at once (the kernel drops its claim), and the next one
/// ends what its predecessor left unanswered: those clients get
/// [`ErrorKind::PeerGone`](crate::ErrorKind::PeerGone).
///
/// Requests are read in place in shared memory mapped read-only; responses
/// are written in place ([`ActiveRequest::loan`]) or copied. A server may be
/// shared between threads (`Send + Sync`): each request goes to one of them.
///
/// ```
/// use memlink::reqresp::{Client, Server};
/// # let name = format!("memlink-doc-server-{}", std::process::id());
/// let server = Server::<u32, u64>::connect(&name)?;
/// let client = Client::<u32, u64>::connect(&name)?;
/// let mut pending = client.send_copy(&21)?;
/// let request = server.try_recv()?.expect("sent above");
/// let answer = u64::from(*request) * 2;
/// request.respond(&answer)?;                      // one response, then the end
/// assert_eq!(*pending.recv()?.expect("answered"), 42);
/// assert!(pending.recv()?.is_none());             // the end
/// let second = Server::<u32, u64>::connect(&name).unwrap_err();
/// assert_eq!(second.kind(), memlink::ErrorKind::InUse);
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Server<Req: Payload + ?Sized, Resp: Payload + ?Sized> {
    epoch: u64,
    /// All clients' request partitions, read-only.
    requests: sys::Mapping,
    /// All clients' response partitions, writable.
    responses: sys::Mapping,
    doorbell: sys::Doorbell,
    /// Per client: the `sent` count last seen with nothing pending, so that
    /// idle clients cost one load per look.
    seen: Vec<AtomicU64>,
    /// Per client: the epoch of a holder found dead (by its claim), whose
    /// answers are dropped without waiting again.
    dead: Vec<AtomicU64>,
    /// The client to look at first, so that one busy client does not
    /// starve the others.
    next: AtomicU32,
    _claim: sys::Claim,
    rpc: Rpc,
    response_type: PayloadType,
    _payload: PhantomData<super::Types<Req, Resp>>,
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Server<Req, Resp> {
    /// Serves the service `name` with the default settings (making it if it
    /// does not exist; joining it, whatever its settings, if it does). The
    /// payload types must be the service's. A live server already there is
    /// an [`ErrorKind::InUse`](crate::ErrorKind::InUse) error.
    pub fn connect(name: &str) -> Result<Server<Req, Resp>> {
        Server::connect_with(name, &RpcOptions::new())
    }

    pub(super) fn connect_with(name: &str, options: &RpcOptions) -> Result<Server<Req, Resp>> {
        let rpc = Rpc::connect(name, options, payload_type::<Req>(), payload_type::<Resp>())?;
        let Some(claim) = rpc.handle.claim(SERVER_PLACE)? else {
            let pid = rpc.control.server().pid.load(Ordering::Relaxed);
            return Err(rpc
                .error(Operation::Connect, ErrorKind::InUse)
                .with_detail(format!(
                    "the service {:?} has a server already (pid {pid}); one server per service",
                    rpc.name.given()
                )));
        };
        let l = *rpc.layout();
        let c = &rpc.control;
        // The place is ours, so any earlier server is dead (or closed, in
        // which case it ended everything it took): end what it took and
        // did not end, marked ABORTED so its clients learn it died.
        for client in 0..l.settings.max_clients {
            for k in 0..l.depth() {
                let ch = c.chan_server(client, k);
                let taken = ch.taken.load(Ordering::Relaxed);
                if ch.done.load(Ordering::Relaxed) & GEN != taken {
                    // SeqCst: as every end (see `ActiveRequest::finish`).
                    ch.done.store(taken | ABORTED, Ordering::SeqCst);
                }
            }
        }
        let s = c.server();
        let epoch = s.epoch.load(Ordering::Relaxed).wrapping_add(1);
        s.epoch.store(epoch, Ordering::Relaxed);
        s.pid.store(std::process::id(), Ordering::Relaxed);
        c.server_counters().received.store(0, Ordering::Relaxed);
        s.flags.store(options.participant_flags, Ordering::Relaxed);
        s.sleeping.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire loads of clients and inspectors,
        // which then see the epoch and the ends above.
        s.state.store(ACTIVE, Ordering::Release);
        rpc.wake_all_clients();
        let op = Operation::Connect;
        let requests = rpc
            .handle
            .map(
                l.req_data,
                (l.req_partition * u64::from(l.settings.max_clients)) as usize,
                false,
            )
            .map_err(|e| e.reframe(op))?;
        let responses = rpc
            .handle
            .map(
                l.resp_data,
                (l.resp_partition * u64::from(l.settings.max_clients)) as usize,
                true,
            )
            .map_err(|e| e.reframe(op))?;
        let doorbell = sys::Doorbell::new(&rpc.handle, SERVER_PLACE)?;
        let (_, response_type) = joint::payload_types(&rpc);
        Ok(Server {
            epoch,
            requests,
            responses,
            doorbell,
            seen: (0..l.settings.max_clients)
                .map(|_| AtomicU64::new(u64::MAX))
                .collect(),
            dead: (0..l.settings.max_clients)
                .map(|_| AtomicU64::new(0))
                .collect(),
            next: AtomicU32::new(0),
            _claim: claim,
            rpc,
            response_type,
            _payload: PhantomData,
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        self.rpc.name.given()
    }

    /// How many clients are connected now.
    pub fn client_count(&self) -> Result<usize> {
        Ok(joint::participants(&self.rpc.control, &self.rpc.handle)?
            .1
            .len())
    }

    /// The largest request, in bytes.
    pub fn max_request(&self) -> u64 {
        self.rpc.layout().settings.max_request
    }

    /// The largest response, in bytes.
    pub fn max_response(&self) -> u64 {
        self.rpc.layout().settings.max_response
    }

    /// Requests in flight now (sent by clients, not yet ended), received
    /// or not.
    pub fn in_flight(&self) -> u64 {
        (0..self.rpc.layout().settings.max_clients)
            .map(|c| u64::from(joint::in_flight(&self.rpc.control, c)))
            .sum()
    }

    /// The next request, if one is waiting. Never blocks.
    pub fn try_recv(&self) -> Result<Option<ActiveRequest<'_, Req, Resp>>> {
        let count = self.rpc.layout().settings.max_clients;
        let first = self.next.load(Ordering::Relaxed) % count;
        for i in 0..count {
            let c = (first + i) % count;
            if let Some(request) = self.take_from(c) {
                self.next.store((c + 1) % count, Ordering::Relaxed);
                return Ok(Some(request));
            }
        }
        Ok(None)
    }

    /// The next request, waiting as long as it takes.
    pub fn recv(&self) -> Result<ActiveRequest<'_, Req, Resp>> {
        self.recv_until(None)
    }

    /// The next request, waiting at most `timeout`: an
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error then.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ActiveRequest<'_, Req, Resp>> {
        self.recv_until(deadline_after(timeout))
    }

    /// The next request, awaited by an async task (features `tokio` or
    /// `async-io`; see [`wait::ready`] for how it sleeps). Cancel-safe: a
    /// request is only taken in the poll that returns it.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn recv_async(&self) -> Result<ActiveRequest<'_, Req, Resp>> {
        loop {
            if let Some(request) = self.try_recv()? {
                return Ok(request);
            }
            wait::ready(self)
                .await
                .map_err(|e| e.reframe(Operation::Receive))?;
        }
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<ActiveRequest<'_, Req, Resp>> {
        loop {
            if let Some(request) = self.try_recv()? {
                return Ok(request);
            }
            if !wait::wait_until(self, deadline) {
                return match self.try_recv()? {
                    Some(request) => Ok(request),
                    None => Err(self
                        .rpc
                        .error(Operation::Receive, ErrorKind::Timeout)
                        .with_detail("no request came in time")),
                };
            }
        }
    }

    /// Takes the first pending request of client `c`. Requests whose
    /// client gave up on them are ended on the way, unseen.
    fn take_from(&self, c: u32) -> Option<ActiveRequest<'_, Req, Resp>> {
        let ctl = &self.rpc.control;
        let l = self.rpc.layout();
        // Acquire: pairs with the client's SeqCst (release) store of `sent`
        // after its `req` store, so the channels' words are seen.
        let sent = ctl.client(c).sent.load(Ordering::Acquire);
        if self.seen[c as usize].load(Ordering::Relaxed) == sent {
            return None;
        }
        for k in 0..l.depth() {
            let chc = ctl.chan_client(c, k);
            let chs = ctl.chan_server(c, k);
            // Acquire: pairs with the client's Release store of `req`, after
            // the payload, its length and epoch.
            let req = chc.req.load(Ordering::Acquire);
            let taken = chs.taken.load(Ordering::Relaxed);
            if req == taken {
                continue;
            }
            chs.served_by.store(self.epoch, Ordering::Relaxed);
            // Several threads of this server may look at once: one wins.
            // AcqRel: the winner's reads of the request come after (and the
            // served_by store before, for the client's Acquire load).
            if chs
                .taken
                .compare_exchange(taken, req, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let active = ActiveRequest {
                server: self,
                client: c,
                channel: k,
                gen: req,
                epoch: chc.req_epoch.load(Ordering::Relaxed),
                len: chc
                    .req_len
                    .load(Ordering::Relaxed)
                    .min(l.settings.max_request),
                dead: AtomicBool::new(false),
                ended: false,
                _payload: PhantomData,
            };
            // Acquire: pairs with the client's SeqCst (release) cancel.
            if chc.cancel.load(Ordering::Acquire) == req {
                drop(active); // ends it: nobody waits for the answers
                continue;
            }
            // A request an earlier holder of the place left when it died:
            // nobody waits for the answers either. Acquire: pairs with the
            // new holder's SeqCst epoch store, made before its `sent` store.
            if active.epoch != ctl.client(c).epoch.load(Ordering::Acquire) {
                drop(active);
                continue;
            }
            // Several threads of this server may count at once.
            ctl.server_counters()
                .received
                .fetch_add(1, Ordering::Relaxed);
            return Some(active);
        }
        // Nothing pending: the client's place is idle until `sent` moves.
        self.seen[c as usize].store(sent, Ordering::Relaxed);
        None
    }

    fn pending(&self) -> bool {
        let count = self.rpc.layout().settings.max_clients;
        (0..count).any(|c| {
            let ctl = &self.rpc.control;
            let sent = ctl.client(c).sent.load(Ordering::Acquire);
            self.seen[c as usize].load(Ordering::Relaxed) != sent
                && (0..self.rpc.layout().depth()).any(|k| {
                    ctl.chan_client(c, k).req.load(Ordering::Acquire)
                        != ctl.chan_server(c, k).taken.load(Ordering::Relaxed)
                })
        })
    }
}

/// A server waits for a request from any client.
impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Waitable for Server<Req, Resp> {
    fn is_ready(&self) -> bool {
        self.pending()
    }

    fn bell(&self) -> (&Bell, &sys::Doorbell) {
        (&self.rpc.control.server().bell, &self.doorbell)
    }

    /// SeqCst: pairs with the client's SeqCst `sent` store and load of this
    /// mark (`Rpc::wake_server`): either it sees the mark and rings, or the
    /// re-check sees the request.
    fn arm(&self) {
        self.rpc
            .control
            .server()
            .sleeping
            .store(1, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.rpc
            .control
            .server()
            .sleeping
            .store(0, Ordering::Relaxed);
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Drop for Server<Req, Resp> {
    fn drop(&mut self) {
        // Active requests borrow the server, so all are ended now.
        let s = self.rpc.control.server();
        // Release: pairs with the clients' Acquire loads of the state.
        s.state.store(FREE, Ordering::Release);
        // Their requests not taken yet will not be: they learn it now.
        self.rpc.wake_all_clients();
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> fmt::Debug for Server<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("service", &self.rpc.name.given())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl<Req: Payload + ?Sized> Server<Req, [u8]> {
    /// Serves the service `name` whatever its payload types, reading
    /// requests as bytes and answering with bytes (checked against the
    /// service's response type when sent): for tools such as `memlink
    /// serve`. A service that does not exist yet is made for byte payloads
    /// with `options`' settings.
    pub fn connect_any(name: &str, options: &RpcOptions) -> Result<Server<Req, [u8]>> {
        let options = RpcOptions {
            any_payload: true,
            ..options.clone()
        };
        Server::connect_with(name, &options)
    }
}

/// A request the server has taken, read in place (read-only), and the
/// means to answer it: one response ([`respond`](ActiveRequest::respond)),
/// or a stream ([`send_copy`](ActiveRequest::send_copy),
/// [`loan`](ActiveRequest::loan) then [`ResponseMut::send`], as often as
/// needed) closed by [`end`](ActiveRequest::end). Dropping it ends the
/// stream too.
///
/// Answers go to the client that asked, and only to it. Answers to a
/// client that stopped waiting (dropped its
/// [`PendingResponse`](super::PendingResponse)), closed or died are
/// dropped, and the calls still succeed: the server never waits on a client
/// that is gone. A live client that does not read makes the server wait
/// for room once `max_responses` answers wait for it.
pub struct ActiveRequest<'a, Req: Payload + ?Sized, Resp: Payload + ?Sized> {
    server: &'a Server<Req, Resp>,
    client: u32,
    channel: u32,
    gen: u64,
    /// The epoch of the client place when it sent the request.
    epoch: u64,
    len: u64,
    /// Set once the client is known to be dead: answers are dropped.
    dead: AtomicBool,
    ended: bool,
    _payload: PhantomData<super::Types<Req, Resp>>,
}

impl<'a, Req: Payload + ?Sized, Resp: Payload + ?Sized> ActiveRequest<'a, Req, Resp> {
    /// The index of the client that sent it (its place in the service).
    pub fn client_index(&self) -> u32 {
        self.client
    }

    /// The request's length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// Whether the client still waits for answers: false once it gave up
    /// on this request, closed or is known to have died (answers are then
    /// dropped).
    pub fn is_wanted(&self) -> bool {
        !self.unwanted()
    }

    fn unwanted(&self) -> bool {
        let ctl = &self.server.rpc.control;
        // Acquire: pairs with the client's SeqCst (release) cancel and
        // epoch stores; a stale view costs one answer written for nobody.
        let epoch = ctl.client(self.client).epoch.load(Ordering::Acquire);
        self.dead.load(Ordering::Relaxed)
            || epoch != self.epoch
            || epoch == self.server.dead[self.client as usize].load(Ordering::Relaxed)
            || ctl
                .chan_client(self.client, self.channel)
                .cancel
                .load(Ordering::Acquire)
                == self.gen
    }

    fn room(&self) -> bool {
        let ctl = &self.server.rpc.control;
        let head = ctl
            .chan_server(self.client, self.channel)
            .resp_head
            .load(Ordering::Relaxed);
        // Acquire: pairs with the client's SeqCst (release) tail store after
        // it read the response, before this server writes the slot again.
        let tail = ctl
            .chan_client(self.client, self.channel)
            .resp_tail
            .load(Ordering::Acquire);
        head.wrapping_sub(tail) < self.server.rpc.layout().ring()
    }

    fn loan_bytes(
        &mut self,
        bytes: u64,
        deadline: Option<Instant>,
    ) -> Result<ResponseMut<'_, 'a, Req, Resp>> {
        let max = self.server.max_response();
        if bytes > max {
            return Err(self
                .server
                .rpc
                .error(Operation::Loan, ErrorKind::InvalidArgument)
                .with_detail(format!(
                    "a response of {bytes} bytes is larger than the service's largest, {max}"
                )));
        }
        let p = self.server.response_type;
        if p.slice == 0 && bytes != p.size || p.slice == 1 && bytes % p.size.max(1) != 0 {
            return Err(self
                .server
                .rpc
                .error(Operation::Loan, ErrorKind::InvalidArgument)
                .with_detail(format!("a response of {bytes} bytes is not a whole {p}")));
        }
        if !self.room() && !self.unwanted() {
            let waiting = RoomFor { request: &*self };
            if !wait::wait_until(&waiting, deadline) {
                return Err(self
                    .server
                    .rpc
                    .error(Operation::Send, ErrorKind::Timeout)
                    .with_detail("the client did not take its earlier responses in time"));
            }
        }
        let ctl = &self.server.rpc.control;
        let head = ctl
            .chan_server(self.client, self.channel)
            .resp_head
            .load(Ordering::Relaxed);
        let offset = self
            .server
            .rpc
            .layout()
            .resp_slot(self.client, self.channel, head);
        // SAFETY: the slot lies inside client `client`'s response partition
        // (channel < depth, ring index < max_responses, stride <= partition
        // share), mapped writable for as long as the server lives. Either
        // there is room (the client is done with the slot) or nobody reads
        // this channel any more (the client gave up, closed or died).
        let at = unsafe { self.server.responses.as_ptr().add(offset as usize) };
        Ok(ResponseMut {
            request: self,
            head,
            ptr: Resp::from_raw(at, bytes as usize),
        })
    }

    /// Publishes the response written in slot `head`, unless nobody wants
    /// it; `last` says the stream ends with it (the client needs no other
    /// look for the end; `done` still follows, for the channel).
    fn publish(&self, head: u64, bytes: u64, last: bool) {
        if self.unwanted() {
            return;
        }
        let ctl = &self.server.rpc.control;
        let entry = ctl.entry(self.client, self.channel, head);
        // Relaxed: published by the head store below.
        let mark = if last { LAST } else { 0 };
        entry.gen.store(self.gen | mark, Ordering::Relaxed);
        entry.len.store(bytes, Ordering::Relaxed);
        // SeqCst: (1) releases the payload and entry to the client's Acquire
        // load of the head; (2) is ordered before the load of its sleeping
        // bit in `wake_client`, against its SeqCst bit set and re-check.
        ctl.chan_server(self.client, self.channel)
            .resp_head
            .store(head.wrapping_add(1), Ordering::SeqCst);
        self.server.rpc.wake_client(self.client);
    }

    fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let ctl = &self.server.rpc.control;
        // SeqCst: (1) releases this server's reads of the request slot (the
        // client reuses it after its Acquire load of `done`) and the
        // responses before it (head first, then done, so a client that sees
        // the end has seen them all); (2) is ordered before the load of the
        // client's sleeping bit.
        ctl.chan_server(self.client, self.channel)
            .done
            .store(self.gen, Ordering::SeqCst);
        self.server.rpc.wake_client(self.client);
    }

    /// Ends the request as lost: after the responses sent before, the
    /// client gets an [`ErrorKind::PeerGone`] error, as if this server had
    /// died with it. For `memlink-bridge`, whose remote server failed or
    /// could not be reached; not part of the stable API.
    #[doc(hidden)]
    pub fn abort(mut self) {
        self.ended = true;
        let ctl = &self.server.rpc.control;
        // SeqCst: as in `finish`; the client reads the ABORTED bit with
        // the generation (its Acquire load of `done`).
        ctl.chan_server(self.client, self.channel)
            .done
            .store(self.gen | ABORTED, Ordering::SeqCst);
        self.server.rpc.wake_client(self.client);
    }

    /// Ends the stream of responses: the client's
    /// [`recv`](super::PendingResponse::recv) returns `None` after the
    /// responses sent before. Dropping the request does the same.
    pub fn end(mut self) {
        self.finish();
    }
}

impl<'a, Req: Payload + ?Sized, Resp: Pod> ActiveRequest<'a, Req, Resp> {
    /// Loans a response, zeroed, waiting for room if `max_responses`
    /// answers already wait for the client. Fill it and
    /// [`send`](ResponseMut::send) it; the request stays active.
    pub fn loan(&mut self) -> Result<ResponseMut<'_, 'a, Req, Resp>> {
        let mut loan = self.loan_bytes(size_of::<Resp>() as u64, None)?;
        *loan = Resp::zeroed();
        Ok(loan)
    }

    /// Copies `value` into a response and sends it; the request stays
    /// active (a stream).
    pub fn send_copy(&mut self, value: &Resp) -> Result<()> {
        let mut loan = self.loan_bytes(size_of::<Resp>() as u64, None)?;
        *loan = *value;
        loan.send();
        Ok(())
    }

    /// As [`send_copy`](ActiveRequest::send_copy), waiting at most
    /// `timeout` for room.
    pub fn send_copy_timeout(&mut self, value: &Resp, timeout: Duration) -> Result<()> {
        let mut loan = self.loan_bytes(size_of::<Resp>() as u64, deadline_after(timeout))?;
        *loan = *value;
        loan.send();
        Ok(())
    }

    /// Answers with `value` and ends the request: the one-response case
    /// (the end travels with the response).
    pub fn respond(mut self, value: &Resp) -> Result<()> {
        let mut loan = self.loan_bytes(size_of::<Resp>() as u64, None)?;
        *loan = *value;
        loan.send_last();
        Ok(())
    }
}

impl<'a, Req: Payload + ?Sized, T: Pod> ActiveRequest<'a, Req, [T]> {
    /// Loans a response of `len` elements, zeroed, waiting for room.
    pub fn loan_slice(&mut self, len: usize) -> Result<ResponseMut<'_, 'a, Req, [T]>> {
        let bytes = (len as u64).saturating_mul(size_of::<T>() as u64);
        let mut loan = self.loan_bytes(bytes, None)?;
        loan.fill(T::zeroed());
        Ok(loan)
    }

    /// Copies `values` into a response and sends it; the request stays
    /// active.
    pub fn send_copy(&mut self, values: &[T]) -> Result<()> {
        self.send_slice(values, None)
    }

    /// As [`send_copy`](ActiveRequest::send_copy), waiting at most
    /// `timeout` for room.
    pub fn send_copy_timeout(&mut self, values: &[T], timeout: Duration) -> Result<()> {
        self.send_slice(values, deadline_after(timeout))
    }

    fn send_slice(&mut self, values: &[T], deadline: Option<Instant>) -> Result<()> {
        let mut loan = self.loan_bytes(std::mem::size_of_val(values) as u64, deadline)?;
        loan.copy_from_slice(values);
        loan.send();
        Ok(())
    }

    /// Answers with `values` and ends the request.
    pub fn respond(mut self, values: &[T]) -> Result<()> {
        let mut loan = self.loan_bytes(std::mem::size_of_val(values) as u64, None)?;
        loan.copy_from_slice(values);
        loan.send_last();
        Ok(())
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Deref for ActiveRequest<'_, Req, Resp> {
    type Target = Req;
    fn deref(&self) -> &Req {
        let offset = self.server.rpc.layout().req_slot(self.client, self.channel);
        // SAFETY: the slot lies inside the request data mapping (client <
        // max_clients, channel < depth, len <= max request <= stride). The
        // client does not write it again before this request is ended (it
        // waits for `done`), which happens only when this value goes. Any
        // bit pattern is a valid `Req`. A client that breaks the protocol
        // (or a new holder of a dead client's place) can only change the
        // bytes read, never their validity.
        unsafe {
            let at = self.server.requests.as_ptr().add(offset as usize);
            &*Req::from_raw(at, self.len as usize)
        }
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Drop for ActiveRequest<'_, Req, Resp> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> fmt::Debug for ActiveRequest<'_, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveRequest")
            .field("client", &self.client)
            .field("channel", &self.channel)
            .field("generation", &self.gen)
            .finish_non_exhaustive()
    }
}

/// A loaned response: shared memory the server writes in place, then
/// [`send`](ResponseMut::send)s. Dropping it unsent sends nothing.
pub struct ResponseMut<'r, 'a, Req: Payload + ?Sized, Resp: Payload + ?Sized> {
    request: &'r mut ActiveRequest<'a, Req, Resp>,
    head: u64,
    ptr: *mut Resp,
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> ResponseMut<'_, '_, Req, Resp> {
    /// Sends the response to the client that asked, without copying it
    /// (dropped if the client no longer wants it). Never waits: the room
    /// was found when it was loaned.
    pub fn send(self) {
        // SAFETY: `ptr` points at this loan's payload (see `loan_bytes`).
        let bytes = unsafe { (*self.ptr).byte_len() } as u64;
        self.request.publish(self.head, bytes, false);
    }

    /// Sends the response as the last one: the request ends with it. Only
    /// for [`ActiveRequest::respond`], which consumes the request: once it
    /// has ended, the client may reuse the channel (its request slot and
    /// response ring), so nothing may read or answer it any more.
    fn send_last(self) {
        // SAFETY: `ptr` points at this loan's payload (see `loan_bytes`).
        let bytes = unsafe { (*self.ptr).byte_len() } as u64;
        self.request.publish(self.head, bytes, true);
        self.request.finish();
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Deref for ResponseMut<'_, '_, Req, Resp> {
    type Target = Resp;
    fn deref(&self) -> &Resp {
        // SAFETY: the slot is past the client's tail (or nobody reads the
        // channel any more), so only this loan touches it; the mapping
        // outlives the borrow of the server; any bit pattern is a `Resp`.
        unsafe { &*self.ptr }
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> DerefMut for ResponseMut<'_, '_, Req, Resp> {
    fn deref_mut(&mut self) -> &mut Resp {
        // SAFETY: as in `deref`; the loan borrows its request mutably, so it
        // is the only loan of that request's head slot, and `&mut self`
        // makes this the only reference to it.
        unsafe { &mut *self.ptr }
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> fmt::Debug for ResponseMut<'_, '_, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseMut")
            .field("slot", &self.head)
            .finish_non_exhaustive()
    }
}

/// The server waits for room in a client's response ring.
struct RoomFor<'r, 'a, Req: Payload + ?Sized, Resp: Payload + ?Sized> {
    request: &'r ActiveRequest<'a, Req, Resp>,
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Waitable for RoomFor<'_, '_, Req, Resp> {
    fn is_ready(&self) -> bool {
        self.request.room() || self.request.unwanted()
    }

    fn bell(&self) -> (&Bell, &sys::Doorbell) {
        let s = self.request.server;
        (&s.rpc.control.server().bell, &s.doorbell)
    }

    /// SeqCst: pairs with the client's SeqCst tail (or cancel, or epoch)
    /// store and load of this mark (`Rpc::wake_server`).
    fn arm(&self) {
        let s = self.request.server;
        s.rpc.control.server().sleeping.store(1, Ordering::SeqCst);
    }

    fn disarm(&self) {
        let s = self.request.server;
        s.rpc.control.server().sleeping.store(0, Ordering::Relaxed);
    }

    /// The client may be dead: the kernel says so through its claim. A
    /// failure to look leaves the wait to go on.
    fn after_idle(&self) {
        let r = self.request;
        let ctl = &r.server.rpc.control;
        // The epoch first: a new holder claims the place before it bumps
        // the epoch, so "not claimed" means this epoch's holder is dead.
        let epoch = ctl.client(r.client).epoch.load(Ordering::Acquire);
        if let Ok(false) = r.server.rpc.handle.is_claimed(client_place(r.client)) {
            r.dead.store(true, Ordering::Relaxed);
            r.server.dead[r.client as usize].store(epoch, Ordering::Relaxed);
        }
    }

    fn recheck(&self) -> Duration {
        LIVENESS_CHECK
    }
}
