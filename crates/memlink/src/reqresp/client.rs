//! The asking side: requests written in the client's own channels, answers
//! read in place from them.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::joint::{self, client_place, Rpc};
use super::layout::{ABORTED, ACTIVE, FREE, GEN, LAST};
use super::{Payload, RpcOptions};
use crate::error::{Error, ErrorKind, Operation, Result};
use crate::messaging::{self, bit_of, deadline_after, payload_type, PayloadType};
use crate::sys;
use crate::sys::layout::Bell;
use crate::wait::{self, Waitable};

/// A client of a request/response service: sends requests (loaned in
/// place or copied) and gets a [`PendingResponse`] for each, to wait on,
/// poll or await. Any number of clients may use a service (up to its
/// `max_clients`); each may have `max_in_flight` requests in flight, after
/// which sending waits for one of them to end (backpressure).
///
/// Sending needs a server: with none, sending is an
/// [`ErrorKind::PeerGone`](crate::ErrorKind::PeerGone) error. A client may
/// be shared between threads (`Send + Sync`).
///
/// ```
/// use std::time::Duration;
/// use memlink::reqresp::{Client, Server};
/// # let name = format!("memlink-doc-client-{}", std::process::id());
/// let server = Server::<[u8], [u8]>::connect(&name)?;
/// let client = Client::<[u8], [u8]>::connect(&name)?;
/// let mut pending = client.send_copy(b"ping")?;
/// let mut request = server.recv_timeout(Duration::from_secs(1))?;
/// request.send_copy(b"po")?;                       // a stream of two
/// request.send_copy(b"ng")?;
/// request.end();
/// let mut answer = Vec::new();
/// while let Some(part) = pending.recv_timeout(Duration::from_secs(1))? {
///     answer.extend_from_slice(&part);
/// }
/// assert_eq!(answer, b"pong");
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Client<Req: Payload + ?Sized, Resp: Payload + ?Sized> {
    index: u32,
    /// This client's request partition, writable.
    requests: sys::Mapping,
    /// This client's response partition, read-only.
    responses: sys::Mapping,
    doorbell: sys::Doorbell,
    /// Per channel: whether a request is loaned or pending on it here.
    busy: Vec<AtomicBool>,
    /// The epoch of a server found dead (by its claim) while waiting.
    dead_epoch: AtomicU64,
    _claim: sys::Claim,
    rpc: Rpc,
    request_type: PayloadType,
    _payload: PhantomData<super::Types<Req, Resp>>,
}

/// How long a send may wait for a free channel.
#[derive(Clone, Copy)]
enum Patience {
    None,
    Until(Option<Instant>),
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Client<Req, Resp> {
    /// Connects to the service `name` with the default settings (making it
    /// if it does not exist; joining it, whatever its settings, if it
    /// does). The payload types must be the service's.
    pub fn connect(name: &str) -> Result<Client<Req, Resp>> {
        Client::connect_with(name, &RpcOptions::new())
    }

    pub(super) fn connect_with(name: &str, options: &RpcOptions) -> Result<Client<Req, Resp>> {
        let rpc = Rpc::connect(name, options, payload_type::<Req>(), payload_type::<Resp>())?;
        let l = *rpc.layout();
        let count = l.settings.max_clients;
        let Some((index, claim)) = messaging::claim_first(&rpc.handle, client_place(0), count)?
        else {
            return Err(rpc
                .error(Operation::Connect, ErrorKind::LimitReached)
                .with_detail(format!(
                    "all {count} client places are taken (a setting of the service: max_clients)"
                )));
        };
        let e = rpc.control.client(index);
        // A new epoch: answers to the requests of an earlier (dead) holder
        // of the place are dropped, not written into our channels.
        // SeqCst: pairs with a server's SeqCst mark while it waits for room
        // in this place's channels (`wake_server` below).
        e.epoch.store(
            e.epoch.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::SeqCst,
        );
        // A holder killed between a request's `req` store and its `sent`
        // store left a request the server never looks at (it scans a place
        // only when `sent` moves), and that channel would stay busy for
        // ever: move `sent` once so the server finds it, and ends it unseen
        // (its epoch is not ours). Acquire: pairs with the Release stores
        // of `req` (a dead holder's) and `taken` (the server's CAS).
        let orphaned = (0..l.depth()).any(|k| {
            let req = rpc
                .control
                .chan_client(index, k)
                .req
                .load(Ordering::Acquire);
            req != rpc
                .control
                .chan_server(index, k)
                .taken
                .load(Ordering::Acquire)
        });
        if orphaned {
            // SeqCst: as every `sent` store (see `publish`).
            e.sent.fetch_add(1, Ordering::SeqCst);
        }
        e.pid.store(std::process::id(), Ordering::Relaxed);
        e.flags.store(options.participant_flags, Ordering::Relaxed);
        let (w, bit) = bit_of(index);
        rpc.control.sleepers(w).fetch_and(!bit, Ordering::Relaxed);
        // Release: pairs with the Acquire loads of inspectors.
        e.state.store(ACTIVE, Ordering::Release);
        rpc.wake_server();
        let op = Operation::Connect;
        let requests = rpc
            .handle
            .map(
                l.req_data + l.req_partition * u64::from(index),
                l.req_partition as usize,
                true,
            )
            .map_err(|e| e.reframe(op))?;
        let responses = rpc
            .handle
            .map(
                l.resp_data + l.resp_partition * u64::from(index),
                l.resp_partition as usize,
                false,
            )
            .map_err(|e| e.reframe(op))?;
        let doorbell = sys::Doorbell::new(&rpc.handle, client_place(index))?;
        let (request_type, _) = joint::payload_types(&rpc);
        Ok(Client {
            index,
            requests,
            responses,
            doorbell,
            busy: (0..l.depth()).map(|_| AtomicBool::new(false)).collect(),
            dead_epoch: AtomicU64::new(0),
            _claim: claim,
            rpc,
            request_type,
            _payload: PhantomData,
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        self.rpc.name.given()
    }

    /// This client's place among the service's clients.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Whether a live server serves the service now (it asks the kernel).
    pub fn has_server(&self) -> Result<bool> {
        let s = self.rpc.control.server();
        Ok(s.state.load(Ordering::Acquire) == ACTIVE && self.rpc.server_alive()?)
    }

    /// The largest request, in bytes.
    pub fn max_request(&self) -> u64 {
        self.rpc.layout().settings.max_request
    }

    /// The largest response, in bytes.
    pub fn max_response(&self) -> u64 {
        self.rpc.layout().settings.max_response
    }

    /// How many requests this client may have in flight.
    pub fn max_in_flight(&self) -> u32 {
        self.rpc.layout().depth()
    }

    /// Whether the server is known to be gone: none connected, or the one
    /// there found dead while waiting.
    fn server_gone(&self) -> bool {
        let s = self.rpc.control.server();
        // Acquire: pairs with the server's Release store of its state, after
        // its epoch.
        s.state.load(Ordering::Acquire) != ACTIVE
            || s.epoch.load(Ordering::Relaxed) == self.dead_epoch.load(Ordering::Relaxed)
    }

    /// Asks the kernel whether the server is alive; notes it dead if not.
    fn check_server(&self) {
        let epoch = self.rpc.control.server().epoch.load(Ordering::Acquire);
        // The epoch is read first: a new server claims the place before it
        // bumps the epoch, so "not claimed" means `epoch` is the dead one's.
        if let Ok(false) = self.rpc.server_alive() {
            self.dead_epoch.store(epoch, Ordering::Relaxed);
        }
    }

    /// Whether channel `k` can take a new request: nothing of ours on it,
    /// and the server has ended its last request (so it reads the slot no
    /// more and writes no more answers into it).
    fn channel_free(&self, k: u32) -> bool {
        let c = &self.rpc.control;
        // Acquire: pairs with the server's SeqCst (release) store of `done`,
        // after its reads of the request slot.
        !self.busy[k as usize].load(Ordering::Relaxed)
            && c.chan_server(self.index, k).done.load(Ordering::Acquire) & GEN
                == c.chan_client(self.index, k).req.load(Ordering::Relaxed)
    }

    /// Takes a free channel, if there is one.
    fn take_channel(&self) -> Option<u32> {
        (0..self.rpc.layout().depth()).find(|&k| {
            // Acquire: pairs with the Release store that gave it back.
            if self.busy[k as usize]
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
            let c = &self.rpc.control;
            let free = c.chan_server(self.index, k).done.load(Ordering::Acquire) & GEN
                == c.chan_client(self.index, k).req.load(Ordering::Relaxed);
            if !free {
                self.busy[k as usize].store(false, Ordering::Release);
            }
            free
        })
    }

    fn loan_bytes(&self, bytes: u64, patience: Patience) -> Result<RequestMut<'_, Req, Resp>> {
        let op = Operation::Loan;
        let max = self.max_request();
        if bytes > max {
            return Err(self
                .rpc
                .error(op, ErrorKind::InvalidArgument)
                .with_detail(format!(
                    "a request of {bytes} bytes is larger than the service's largest, {max}"
                )));
        }
        let p = self.request_type;
        if p.slice == 0 && bytes != p.size || p.slice == 1 && bytes % p.size.max(1) != 0 {
            return Err(self
                .rpc
                .error(op, ErrorKind::InvalidArgument)
                .with_detail(format!("a request of {bytes} bytes is not a whole {p}")));
        }
        let k = loop {
            if self.server_gone() {
                return Err(self.rpc.server_gone(Operation::Send));
            }
            if let Some(k) = self.take_channel() {
                break k;
            }
            match patience {
                Patience::None => {
                    return Err(self
                        .rpc
                        .error(Operation::Send, ErrorKind::LimitReached)
                        .with_detail(format!(
                            "full: this client has {} requests in flight (max_in_flight)",
                            self.max_in_flight()
                        )))
                }
                Patience::Until(deadline) => {
                    if !wait::wait_until(self, deadline) && self.take_channel_or_gone() {
                        return Err(self
                            .rpc
                            .error(Operation::Send, ErrorKind::Timeout)
                            .with_detail("no request in flight ended in time"));
                    }
                }
            }
        };
        let offset = self.rpc.layout().req_slot(0, k);
        // SAFETY: slot `k` lies inside this client's request partition
        // (k < depth, stride * depth <= partition), mapped writable for as
        // long as the client lives; the server reads it no more (its last
        // request ended), and `busy[k]` makes this loan its only writer here.
        let at = unsafe { self.requests.as_ptr().add(offset as usize) };
        Ok(RequestMut {
            client: self,
            channel: k,
            ptr: Req::from_raw(at, bytes as usize),
            sent: false,
        })
    }

    /// After a wait ran out: true when there is still no free channel and
    /// the server is not known gone (the wait really timed out).
    fn take_channel_or_gone(&self) -> bool {
        !self.server_gone() && !(0..self.rpc.layout().depth()).any(|k| self.channel_free(k))
    }

    /// Sends the request loaned on channel `k`, `bytes` long.
    fn publish(&self, k: u32, bytes: u64) -> PendingResponse<'_, Req, Resp> {
        let c = &self.rpc.control;
        let chc = c.chan_client(self.index, k);
        let chs = c.chan_server(self.index, k);
        let e = c.client(self.index);
        // Relaxed: all published by the `req` store below.
        chc.req_len.store(bytes, Ordering::Relaxed);
        chc.req_epoch
            .store(e.epoch.load(Ordering::Relaxed), Ordering::Relaxed);
        // Answers of earlier requests on the channel are all in (it ended),
        // and not wanted: start after them. Acquire: pairs with the
        // server's SeqCst head stores.
        chc.resp_tail
            .store(chs.resp_head.load(Ordering::Acquire), Ordering::Relaxed);
        let gen = (chc.req.load(Ordering::Relaxed) + 1) & GEN;
        // Release: pairs with the server's Acquire load of `req`.
        chc.req.store(gen, Ordering::Release);
        // SeqCst: (1) releases the request to the server's Acquire load of
        // `sent`; (2) is ordered before the load of its mark in
        // `wake_server`, against the server's SeqCst mark and re-check.
        // An atomic add: threads sharing this client send at once, and a
        // lost increment could hide a request from a server that saw the
        // other one's.
        e.sent.fetch_add(1, Ordering::SeqCst);
        self.rpc.wake_server();
        PendingResponse {
            client: self,
            channel: k,
            gen,
            ended: false,
        }
    }
}

impl<Req: Pod, Resp: Payload + ?Sized> Client<Req, Resp> {
    /// Loans a request, zeroed, waiting for a free channel if
    /// `max_in_flight` requests are in flight. Fill it and
    /// [`send`](RequestMut::send) it.
    pub fn loan(&self) -> Result<RequestMut<'_, Req, Resp>> {
        let mut loan = self.loan_bytes(size_of::<Req>() as u64, Patience::Until(None))?;
        *loan = Req::zeroed();
        Ok(loan)
    }

    /// As [`loan`](Client::loan), without waiting: all channels busy is an
    /// [`ErrorKind::LimitReached`](crate::ErrorKind::LimitReached) error.
    pub fn try_loan(&self) -> Result<RequestMut<'_, Req, Resp>> {
        let mut loan = self.loan_bytes(size_of::<Req>() as u64, Patience::None)?;
        *loan = Req::zeroed();
        Ok(loan)
    }

    /// Copies `value` into a request and sends it, waiting for a free
    /// channel if need be.
    pub fn send_copy(&self, value: &Req) -> Result<PendingResponse<'_, Req, Resp>> {
        self.copy_with(value, Patience::Until(None))
    }

    /// As [`send_copy`](Client::send_copy), waiting at most `timeout`.
    pub fn send_copy_timeout(
        &self,
        value: &Req,
        timeout: Duration,
    ) -> Result<PendingResponse<'_, Req, Resp>> {
        self.copy_with(value, Patience::Until(deadline_after(timeout)))
    }

    /// As [`send_copy`](Client::send_copy), without waiting (all channels
    /// busy is an [`ErrorKind::LimitReached`](crate::ErrorKind::LimitReached)
    /// error, and nothing is sent).
    pub fn try_send_copy(&self, value: &Req) -> Result<PendingResponse<'_, Req, Resp>> {
        self.copy_with(value, Patience::None)
    }

    /// As [`send_copy`](Client::send_copy), awaited by an async task under
    /// backpressure (features `tokio` or `async-io`). Cancel-safe: nothing
    /// is sent unless the future completes.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn send_async(&self, value: &Req) -> Result<PendingResponse<'_, Req, Resp>> {
        loop {
            match self.copy_with(value, Patience::None) {
                Err(e) if e.kind() == ErrorKind::LimitReached => {}
                other => return other,
            }
            wait::ready(self)
                .await
                .map_err(|e| e.reframe(Operation::Send))?;
        }
    }

    fn copy_with(&self, value: &Req, patience: Patience) -> Result<PendingResponse<'_, Req, Resp>> {
        let mut loan = self.loan_bytes(size_of::<Req>() as u64, patience)?;
        *loan = *value;
        loan.send()
    }
}

impl<T: Pod, Resp: Payload + ?Sized> Client<[T], Resp> {
    /// Loans a request of `len` elements, zeroed, waiting for a free
    /// channel.
    pub fn loan_slice(&self, len: usize) -> Result<RequestMut<'_, [T], Resp>> {
        let bytes = (len as u64).saturating_mul(size_of::<T>() as u64);
        let mut loan = self.loan_bytes(bytes, Patience::Until(None))?;
        loan.fill(T::zeroed());
        Ok(loan)
    }

    /// Copies `values` into a request and sends it, waiting for a free
    /// channel.
    pub fn send_copy(&self, values: &[T]) -> Result<PendingResponse<'_, [T], Resp>> {
        self.slice_with(values, Patience::Until(None))
    }

    /// As [`send_copy`](Client::send_copy), waiting at most `timeout`.
    pub fn send_copy_timeout(
        &self,
        values: &[T],
        timeout: Duration,
    ) -> Result<PendingResponse<'_, [T], Resp>> {
        self.slice_with(values, Patience::Until(deadline_after(timeout)))
    }

    /// As [`send_copy`](Client::send_copy), without waiting.
    pub fn try_send_copy(&self, values: &[T]) -> Result<PendingResponse<'_, [T], Resp>> {
        self.slice_with(values, Patience::None)
    }

    /// As [`send_copy`](Client::send_copy), awaited by an async task
    /// under backpressure.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn send_async(&self, values: &[T]) -> Result<PendingResponse<'_, [T], Resp>> {
        loop {
            match self.slice_with(values, Patience::None) {
                Err(e) if e.kind() == ErrorKind::LimitReached => {}
                other => return other,
            }
            wait::ready(self)
                .await
                .map_err(|e| e.reframe(Operation::Send))?;
        }
    }

    fn slice_with(
        &self,
        values: &[T],
        patience: Patience,
    ) -> Result<PendingResponse<'_, [T], Resp>> {
        let mut loan = self.loan_bytes(std::mem::size_of_val(values) as u64, patience)?;
        loan.copy_from_slice(values);
        loan.send()
    }
}

impl Client<[u8], [u8]> {
    /// Connects to the service `name` whatever its payload types, sending
    /// requests as bytes (checked against the service's request type) and
    /// reading responses as bytes: for tools such as `memlink call`. A
    /// service that does not exist yet is made for byte payloads with
    /// `options`' settings.
    pub fn connect_any(name: &str, options: &RpcOptions) -> Result<Client<[u8], [u8]>> {
        let options = RpcOptions {
            any_payload: true,
            ..options.clone()
        };
        Client::connect_with(name, &options)
    }
}

/// A client waits for a free channel (room to send).
impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Waitable for Client<Req, Resp> {
    fn is_ready(&self) -> bool {
        self.server_gone() || (0..self.rpc.layout().depth()).any(|k| self.channel_free(k))
    }

    fn bell(&self) -> (&Bell, &sys::Doorbell) {
        (&self.rpc.control.client(self.index).bell, &self.doorbell)
    }

    /// SeqCst: pairs with the server's SeqCst `done` store and load of
    /// these bits (`Rpc::wake_client`).
    fn arm(&self) {
        let (w, bit) = bit_of(self.index);
        self.rpc.control.sleepers(w).fetch_or(bit, Ordering::SeqCst);
    }

    fn disarm(&self) {
        let (w, bit) = bit_of(self.index);
        self.rpc
            .control
            .sleepers(w)
            .fetch_and(!bit, Ordering::Relaxed);
    }

    fn after_idle(&self) {
        self.check_server();
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Drop for Client<Req, Resp> {
    fn drop(&mut self) {
        // Pending responses borrow the client, so all are dropped (their
        // requests given up on) now.
        let c = &self.rpc.control;
        let (w, bit) = bit_of(self.index);
        c.sleepers(w).fetch_and(!bit, Ordering::Relaxed);
        c.client(self.index).state.store(FREE, Ordering::Release);
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> fmt::Debug for Client<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.rpc.name.given())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A loaned request: shared memory the client writes in place, then
/// [`send`](RequestMut::send)s. Dropping it unsent sends nothing.
pub struct RequestMut<'a, Req: Payload + ?Sized, Resp: Payload + ?Sized> {
    client: &'a Client<Req, Resp>,
    channel: u32,
    ptr: *mut Req,
    sent: bool,
}

impl<'a, Req: Payload + ?Sized, Resp: Payload + ?Sized> RequestMut<'a, Req, Resp> {
    /// Sends the request, without copying it; the answers come through the
    /// returned [`PendingResponse`]. Never waits: the channel was found
    /// when it was loaned. A server that went away meanwhile is an
    /// [`ErrorKind::PeerGone`](crate::ErrorKind::PeerGone) error.
    pub fn send(mut self) -> Result<PendingResponse<'a, Req, Resp>> {
        if self.client.server_gone() {
            return Err(self.client.rpc.server_gone(Operation::Send));
        }
        self.sent = true;
        // SAFETY: `ptr` points at this loan's payload (see `loan_bytes`).
        let bytes = unsafe { (*self.ptr).byte_len() } as u64;
        Ok(self.client.publish(self.channel, bytes))
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Deref for RequestMut<'_, Req, Resp> {
    type Target = Req;
    fn deref(&self) -> &Req {
        // SAFETY: the channel is this loan's alone (`busy`) and the server
        // reads its slot no more; the mapping outlives the borrow of the
        // client; any bit pattern is a `Req`.
        unsafe { &*self.ptr }
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> DerefMut for RequestMut<'_, Req, Resp> {
    fn deref_mut(&mut self) -> &mut Req {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.ptr }
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Drop for RequestMut<'_, Req, Resp> {
    fn drop(&mut self) {
        if !self.sent {
            // Release: see `Client::take_channel`.
            self.client.busy[self.channel as usize].store(false, Ordering::Release);
        }
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> fmt::Debug for RequestMut<'_, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMut")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// The answers to one request, as the client sees them: zero or more
/// responses, then the end ([`recv`](PendingResponse::recv) returns
/// `None`). A server that goes away before the end (it closed, or died,
/// even with the request half answered) is an
/// [`ErrorKind::PeerGone`](crate::ErrorKind::PeerGone) error, found within
/// about 50 ms of its death.
///
/// Dropping it before the end gives the request up: the server's further
/// answers are dropped, and the channel is free again once the server ends
/// the request.
pub struct PendingResponse<'a, Req: Payload + ?Sized, Resp: Payload + ?Sized> {
    client: &'a Client<Req, Resp>,
    channel: u32,
    gen: u64,
    ended: bool,
}

/// What a look at a pending response found.
enum Polled {
    /// A response, number `n` of the channel, `len` bytes long, and
    /// whether it is the last.
    Response(u64, u64, bool),
    Ended,
    Nothing,
}

impl<'a, Req: Payload + ?Sized, Resp: Payload + ?Sized> PendingResponse<'a, Req, Resp> {
    /// Whether the stream has ended (every response was received).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The next response, if one is there: `Ok(None)` when none is yet, or
    /// when the stream has ended ([`is_ended`](PendingResponse::is_ended)
    /// tells them apart). Never blocks.
    pub fn try_recv(&mut self) -> Result<Option<Response<'_, 'a, Req, Resp>>> {
        match self.poll()? {
            Polled::Response(n, len, last) => Ok(Some(self.response(n, len, last))),
            Polled::Ended => {
                self.end();
                Ok(None)
            }
            Polled::Nothing => Ok(None),
        }
    }

    /// The next response, waiting as long as it takes; `Ok(None)` once the
    /// stream has ended.
    pub fn recv(&mut self) -> Result<Option<Response<'_, 'a, Req, Resp>>> {
        self.recv_until(None)
    }

    /// The next response, waiting at most `timeout` (an
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error then);
    /// `Ok(None)` once the stream has ended.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Response<'_, 'a, Req, Resp>>> {
        self.recv_until(deadline_after(timeout))
    }

    /// The next response, awaited by an async task (features `tokio` or
    /// `async-io`); `Ok(None)` once the stream has ended. Cancel-safe: a
    /// response is only taken in the poll that returns it.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn recv_async(&mut self) -> Result<Option<Response<'_, 'a, Req, Resp>>> {
        let (n, len, last) = loop {
            if self.ended {
                return Ok(None);
            }
            match self.poll()? {
                Polled::Response(n, len, last) => break (n, len, last),
                Polled::Ended => {
                    self.end();
                    return Ok(None);
                }
                Polled::Nothing => wait::ready(&*self)
                    .await
                    .map_err(|e| e.reframe(Operation::Receive))?,
            }
        };
        Ok(Some(self.response(n, len, last)))
    }

    fn recv_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Response<'_, 'a, Req, Resp>>> {
        let (n, len, last) = loop {
            if self.ended {
                return Ok(None);
            }
            match self.poll()? {
                Polled::Response(n, len, last) => break (n, len, last),
                Polled::Ended => {
                    self.end();
                    return Ok(None);
                }
                Polled::Nothing => {
                    if !wait::wait_until(&*self, deadline) {
                        if let Polled::Nothing = self.poll()? {
                            return Err(self
                                .client
                                .rpc
                                .error(Operation::Receive, ErrorKind::Timeout)
                                .with_detail("no response came in time"));
                        }
                    }
                }
            }
        };
        Ok(Some(self.response(n, len, last)))
    }

    /// The stream has ended: the channel is free for the next request at
    /// once (this value looks at it no more).
    fn end(&mut self) {
        self.ended = true;
        // SeqCst: (1) releases to the Acquire CAS of the next taker; (2) is
        // ordered before the load of this client's sleeping bit in
        // `wake_client`, against a waiting sender's SeqCst bit set and
        // re-check of the channels.
        self.client.busy[self.channel as usize].store(false, Ordering::SeqCst);
        // A sender of this client may wait for a free channel.
        self.client.rpc.wake_client(self.client.index);
    }

    fn response(&mut self, n: u64, len: u64, last: bool) -> Response<'_, 'a, Req, Resp> {
        let l = self.client.rpc.layout();
        let offset = l.resp_slot(0, self.channel, n);
        let len = len.min(l.settings.max_response);
        // SAFETY: the slot lies inside this client's response partition
        // (channel < depth, ring index < max_responses), mapped read-only for
        // as long as the client lives; the server does not write it again
        // before the tail moves past it (the Response's drop).
        let at = unsafe { self.client.responses.as_ptr().add(offset as usize) };
        Response {
            ptr: Resp::from_raw(at, len as usize),
            n,
            last,
            pending: self,
        }
    }

    fn poll(&self) -> Result<Polled> {
        if self.ended {
            return Ok(Polled::Ended);
        }
        let c = &self.client.rpc.control;
        let (i, k) = (self.client.index, self.channel);
        let chc = c.chan_client(i, k);
        let chs = c.chan_server(i, k);
        loop {
            // Relaxed: this client's own word.
            let tail = chc.resp_tail.load(Ordering::Relaxed);
            // Acquire: pairs with the server's SeqCst (release) head store,
            // after the payload and the entry.
            let head = chs.resp_head.load(Ordering::Acquire);
            // The server never runs more than a ring ahead (it waits for
            // room): a head further on was written over by someone.
            let ring = self.client.rpc.layout().ring();
            if head.wrapping_sub(tail) > ring {
                return Err(self
                    .client
                    .rpc
                    .error(Operation::Receive, ErrorKind::Incompatible)
                    .with_detail(format!(
                        "channel {k}'s responses run {} ahead of the client, past the ring \
                         of {ring}: the service is corrupted",
                        head.wrapping_sub(tail)
                    )));
            }
            if tail != head {
                let entry = c.entry(i, k, tail);
                let gen = entry.gen.load(Ordering::Relaxed);
                if gen & GEN != self.gen {
                    // Not ours (an answer to an earlier request that was
                    // given up on): skip it.
                    chc.resp_tail.store(tail.wrapping_add(1), Ordering::Release);
                    continue;
                }
                let len = entry.len.load(Ordering::Relaxed);
                return Ok(Polled::Response(tail, len, gen & LAST != 0));
            }
            // Acquire: pairs with the server's SeqCst (release) `done`
            // store, made after its last head store.
            let done = c.chan_server(i, k).done.load(Ordering::Acquire);
            if done & GEN == self.gen {
                if chs.resp_head.load(Ordering::Acquire) != tail {
                    continue; // responses came just before the end
                }
                if done & ABORTED != 0 {
                    return Err(self.gone());
                }
                return Ok(Polled::Ended);
            }
            if self.server_lost() {
                return Err(self.gone());
            }
            return Ok(Polled::Nothing);
        }
    }

    /// Whether the server this request depends on is gone: none is there,
    /// the one there was found dead, or the request was taken by an
    /// earlier one.
    fn server_lost(&self) -> bool {
        if self.client.server_gone() {
            return true;
        }
        let c = &self.client.rpc.control;
        let chs = c.chan_server(self.client.index, self.channel);
        // Acquire: pairs with the server's AcqRel take, after its
        // `served_by` store.
        chs.taken.load(Ordering::Acquire) == self.gen
            && chs.served_by.load(Ordering::Relaxed) != c.server().epoch.load(Ordering::Relaxed)
    }

    fn gone(&self) -> Error {
        self.client.rpc.server_gone(Operation::Receive)
    }
}

/// A pending response waits for an answer, the end, or the server's loss.
impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Waitable for PendingResponse<'_, Req, Resp> {
    fn is_ready(&self) -> bool {
        if self.ended {
            return true;
        }
        let c = &self.client.rpc.control;
        let (i, k) = (self.client.index, self.channel);
        let chs = c.chan_server(i, k);
        c.chan_client(i, k).resp_tail.load(Ordering::Relaxed)
            != chs.resp_head.load(Ordering::Acquire)
            || chs.done.load(Ordering::Acquire) & GEN == self.gen
            || self.server_lost()
    }

    fn bell(&self) -> (&Bell, &sys::Doorbell) {
        self.client.bell()
    }

    /// As the client's: pairs with the server's SeqCst head and `done`
    /// stores and load of the client's bit (`Rpc::wake_client`).
    fn arm(&self) {
        self.client.arm();
    }

    fn disarm(&self) {
        self.client.disarm();
    }

    /// The server may have died: the kernel says so through its claim.
    fn after_idle(&self) {
        self.client.check_server();
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Drop for PendingResponse<'_, Req, Resp> {
    fn drop(&mut self) {
        let client = self.client;
        if self.ended {
            return; // the channel was given back at the end
        }
        let chc = client.rpc.control.chan_client(client.index, self.channel);
        // SeqCst: (1) releases to the server's Acquire load; (2) is ordered
        // before the load of its mark (it may wait for room on this
        // channel).
        chc.cancel.store(self.gen, Ordering::SeqCst);
        client.rpc.wake_server();
        // Release: pairs with the Acquire CAS of the next taker.
        client.busy[self.channel as usize].store(false, Ordering::Release);
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> fmt::Debug for PendingResponse<'_, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingResponse")
            .field("channel", &self.channel)
            .field("generation", &self.gen)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// A response, read in place (read-only). Its slot goes back to the server
/// when it is dropped.
pub struct Response<'p, 'a, Req: Payload + ?Sized, Resp: Payload + ?Sized> {
    pending: &'p mut PendingResponse<'a, Req, Resp>,
    n: u64,
    /// The stream ends with it.
    last: bool,
    ptr: *const Resp,
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Deref for Response<'_, '_, Req, Resp> {
    type Target = Resp;
    fn deref(&self) -> &Resp {
        // SAFETY: the slot is between the client's tail and the server's
        // head, so the server does not write it until this value is
        // dropped; the read-only mapping lives as long as the client; any
        // bit pattern is a valid `Resp`.
        unsafe { &*self.ptr }
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized> Drop for Response<'_, '_, Req, Resp> {
    fn drop(&mut self) {
        let client = self.pending.client;
        let chc = client
            .rpc
            .control
            .chan_client(client.index, self.pending.channel);
        // SeqCst: (1) releases this client's reads of the slot before the
        // server reuses it (its Acquire load of the tail); (2) is ordered
        // before the load of its mark (it may wait for room).
        chc.resp_tail
            .store(self.n.wrapping_add(1), Ordering::SeqCst);
        client.rpc.wake_server();
        if self.last {
            self.pending.end();
        }
    }
}

impl<Req: Payload + ?Sized, Resp: Payload + ?Sized + fmt::Debug> fmt::Debug
    for Response<'_, '_, Req, Resp>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::super::RpcOptions;
    use crate::ErrorKind;

    /// A holder killed between a request's `req` store and its `sent`
    /// store (simulated: the stores `publish` makes, then the close the
    /// kernel makes of a kill) must not leave its channel busy for the next
    /// holder of the place.
    #[test]
    fn a_request_orphaned_between_req_and_sent_does_not_block_the_place() {
        let name = format!("memlink-test-rpc-orphan-{}", std::process::id());
        let opts = RpcOptions::new().max_clients(1).max_in_flight(1);
        let server = opts.server::<u64, u64>(&name).unwrap();
        {
            let a = opts.client::<u64, u64>(&name).unwrap();
            let mut p = a.send_copy(&1).unwrap();
            server.try_recv().unwrap().unwrap().respond(&2).unwrap();
            assert_eq!(*p.recv().unwrap().unwrap(), 2);
            assert!(p.recv().unwrap().is_none());
            drop(p);
            assert!(server.try_recv().unwrap().is_none(), "the place is idle");
            let c = &a.rpc.control;
            let chc = c.chan_client(a.index, 0);
            chc.req_len.store(8, Ordering::Relaxed);
            let epoch = c.client(a.index).epoch.load(Ordering::Relaxed);
            chc.req_epoch.store(epoch, Ordering::Relaxed);
            chc.req
                .store(chc.req.load(Ordering::Relaxed) + 1, Ordering::Release);
        }
        let b = opts.client::<u64, u64>(&name).unwrap();
        assert_eq!(b.index(), 0, "the same place");
        // The orphan is ended unseen: nobody waits for its answer.
        let idle = server.recv_timeout(Duration::from_millis(100)).unwrap_err();
        assert_eq!(idle.kind(), ErrorKind::Timeout);
        let mut p = b.send_copy_timeout(&3, Duration::from_secs(5)).unwrap();
        let request = server.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(*request, 3);
        request.respond(&4).unwrap();
        assert_eq!(*p.recv().unwrap().unwrap(), 4);
    }

    /// Garbage in a channel's response head (any process that can write
    /// the region can put it there) is an error for the client and no
    /// panic for the server.
    #[test]
    fn a_corrupted_response_head_is_an_error_not_a_panic_or_a_spin() {
        let name = format!("memlink-test-rpc-head-{}", std::process::id());
        let opts = RpcOptions::new().max_clients(1).max_in_flight(1);
        let server = opts.server::<u64, u64>(&name).unwrap();
        let a = opts.client::<u64, u64>(&name).unwrap();
        let head = &a.rpc.control.chan_server(a.index, 0).resp_head;
        head.store(u64::MAX, Ordering::Relaxed);
        let mut p = a.send_copy(&1).unwrap();
        let request = server.try_recv().unwrap().unwrap();
        request.respond(&2).unwrap(); // wraps, no overflow panic
        head.store(1 << 40, Ordering::Relaxed);
        let err = p.try_recv().err().map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::Incompatible));
    }
}
