//! The publishing side: loans from the publisher's own partition, sends
//! into its own ring.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::layout::{entry, entry_order, entry_slot, ACTIVE, FREE};
use super::service::{Bells, Joined, Role, Service};
use super::{bit_of, for_each_bit, payload_type, Payload, ServiceOptions};
use crate::error::{ErrorKind, Operation, Result};
use crate::messaging::valid_bits;
use crate::sys;
use crate::sys::layout::Bell;
use crate::wait::{self, Waitable};

/// How often a publisher waiting for space checks that the subscribers
/// it waits for are alive. Not a timeout on anyone: a dead subscriber is
/// only dropped once the kernel says so.
const LIVENESS_CHECK: Duration = Duration::from_millis(10);

/// A publisher of `T` samples on a named service.
///
/// Samples are loaned from the service's shared memory
/// ([`loan`](Publisher::loan), [`loan_uninit`](Publisher::loan_uninit),
/// [`loan_slice`](Publisher::loan_slice)), filled in place and sent without
/// a copy; [`send_copy`](Publisher::send_copy) does all three at once.
/// `Send` and `Sync`: threads (and async tasks) may share one publisher;
/// their samples go into its one sequence, each whole.
///
/// ```
/// use memlink::pubsub::{Publisher, Subscriber};
/// # let name = format!("memlink-doc-bytes-{}", std::process::id());
/// let publisher = Publisher::<[u8]>::connect(&name)?;   // slices of up to 4 KiB
/// let subscriber = Subscriber::<[u8]>::connect(&name)?;
/// let mut sample = publisher.loan_slice(5)?;
/// sample.copy_from_slice(b"hello");
/// sample.send()?;
/// assert_eq!(&*subscriber.try_recv()?.unwrap(), b"hello");
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Publisher<T: Payload + ?Sized> {
    /// This publisher's place.
    index: u32,
    data: sys::Mapping,
    doorbell: sys::Doorbell,
    /// Doorbells of subscriber places, opened when first rung.
    subscriber_bells: Bells,
    /// A lock, uncontended unless threads share the publisher: two atomic
    /// operations per send.
    pool: Mutex<Pool>,
    _claim: sys::Claim,
    service: Service,
    _payload: PhantomData<fn(&T)>,
}

/// The publisher's own view of its slots; nobody else needs it.
struct Pool {
    /// The next sequence number.
    head: u64,
    /// Slots free to loan.
    free: Vec<u64>,
    /// Slots of the samples in the ring, oldest first.
    window: VecDeque<u64>,
    /// Slots that left the ring but may still be held by subscribers.
    retired: VecDeque<u64>,
    /// The lowest cursor of the live subscribers, as last seen (block
    /// policy only).
    min_cursor: u64,
    /// Samples loaned and not yet sent or dropped.
    loans: u32,
}

impl<T: Payload + ?Sized> Publisher<T> {
    /// Connects to the service `name` with the default settings (making it
    /// if it does not exist; joining it, whatever its settings, if it
    /// does). The payload type must be the service's.
    pub fn connect(name: &str) -> Result<Publisher<T>> {
        Publisher::connect_with(name, &ServiceOptions::new())
    }

    pub(super) fn connect_with(name: &str, options: &ServiceOptions) -> Result<Publisher<T>> {
        let Joined {
            service,
            index,
            claim,
            data,
            doorbell,
        } = Service::join(name, options, payload_type::<T>(), Role::Publisher)?;
        let pool = Pool::recover(&service, index)?;
        let entry = service.control.publisher(index);
        entry.pid.store(std::process::id(), Ordering::Relaxed);
        // Counted per participant, as subscribers count theirs: the place's
        // previous holder's sends are not this one's.
        entry.sent.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire loads of readers of the entry.
        entry.state.store(ACTIVE, Ordering::Release);
        Ok(Publisher {
            index,
            data,
            doorbell,
            subscriber_bells: Bells::default(),
            pool: Mutex::new(pool),
            _claim: claim,
            service,
            _payload: PhantomData,
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        self.service.name.given()
    }

    /// How many subscribers are connected now.
    pub fn subscriber_count(&self) -> Result<usize> {
        Ok(self.service.participants(Role::Subscriber)?.len())
    }

    /// The pool; a thread that panicked holding it left it consistent
    /// enough (at worst a slot is lost), so poison is ignored.
    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The largest payload of one sample, in bytes.
    pub fn max_payload(&self) -> u64 {
        self.service.layout().settings.max_payload
    }

    fn loan_bytes(&self, bytes: u64) -> Result<SampleMut<'_, T>> {
        let max = self.max_payload();
        if bytes > max {
            return Err(self
                .service
                .error(Operation::Loan, ErrorKind::InvalidArgument)
                .with_detail(format!(
                    "a sample of {bytes} bytes is larger than the service's largest, {max}"
                )));
        }
        let slot = self.free_slot()?;
        let offset = slot * self.service.layout().stride;
        // SAFETY: the slot lies inside this publisher's partition (slot <
        // slots, stride * slots <= partition size), which is mapped
        // writable for as long as `self` lives.
        let at = unsafe { self.data.as_ptr().add(offset as usize) };
        Ok(SampleMut {
            publisher: self,
            slot,
            ptr: T::from_raw(at, bytes as usize),
            sent: false,
        })
    }

    /// A slot nobody holds: from the free list, else the oldest retired one
    /// whose holders have all let go, else after reaping dead subscribers.
    /// Counts the loan.
    fn free_slot(&self) -> Result<u64> {
        let mut pool = self.pool();
        let limit = self.service.layout().settings.max_loans;
        if pool.loans >= limit {
            return Err(self
                .service
                .error(Operation::Loan, ErrorKind::LimitReached)
                .with_detail(format!(
                    "this publisher has {limit} samples loaned already (max_loans)"
                )));
        }
        if let Some(slot) = pool.free.pop() {
            pool.loans += 1;
            return Ok(slot);
        }
        for attempt in 0..2 {
            if let Some(slot) = pool.take_unheld(&self.service, self.index) {
                pool.loans += 1;
                return Ok(slot);
            }
            if attempt == 0 {
                self.service.reap_dead_subscribers()?;
            }
        }
        Err(self
            .service
            .error(Operation::Loan, ErrorKind::LimitReached)
            .with_detail("every slot is held by subscribers or loaned"))
    }

    fn give_back(&self, slot: u64) {
        let mut pool = self.pool();
        pool.free.push(slot);
        pool.loans -= 1;
    }

    /// Publishes `slot` holding `bytes` bytes, waiting for room until
    /// `deadline` under the block policy (the slot is given back if none
    /// comes).
    fn publish(&self, slot: u64, bytes: u64, deadline: Option<Instant>) -> Result<()> {
        while !self.try_publish(slot, bytes) {
            if !wait::wait_until(self, deadline) {
                self.give_back(slot);
                return Err(self.no_room());
            }
        }
        Ok(())
    }

    /// As [`publish`](Self::publish), waiting as an async task; the
    /// caller gives the slot back if this fails or is dropped.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    async fn publish_async(&self, slot: u64, bytes: u64) -> Result<()> {
        while !self.try_publish(slot, bytes) {
            wait::ready(self)
                .await
                .map_err(|e| e.reframe(Operation::Send))?;
        }
        Ok(())
    }

    fn no_room(&self) -> crate::Error {
        self.service
            .error(Operation::Send, ErrorKind::Timeout)
            .with_detail("subscribers did not take the oldest sample in time")
    }

    /// Publishes `slot` holding `bytes` bytes if there is room (always,
    /// unless the service blocks on slow subscribers): one store makes it
    /// visible. False when there is no room; the slot stays loaned.
    fn try_publish(&self, slot: u64, bytes: u64) -> bool {
        let c = &self.service.control;
        let p = self.index;
        let mut pool = self.pool();
        let seq = pool.head;
        if self.service.layout().settings.overflow == 1 && !self.has_room(&mut pool, seq) {
            return false;
        }
        // Relaxed: published by the SeqCst store of the entry below, which
        // the subscriber loads with Acquire.
        c.len(p, slot).store(bytes, Ordering::Relaxed);
        // SeqCst: (1) releases the payload to subscribers (pairs with their
        // Acquire load of the entry); (2) is ordered before the holder loads
        // that decide the reuse of the slot this entry replaces, against
        // the subscribers' SeqCst holder RMW + entry re-load (so either the
        // subscriber sees the new entry and backs off, or the publisher sees
        // its bit); (3) is ordered before the sleeper load below, against
        // the subscriber's SeqCst sleeper RMW + entry re-check.
        c.ring(p, seq).store(entry(seq, slot), Ordering::SeqCst);
        // Release: for joiners, which start from the head; it may lag the
        // ring by one sample, which readers of the ring tolerate.
        c.publisher(p).head.store(seq + 1, Ordering::Release);
        let e = c.publisher(p);
        // Written under the pool lock only: a plain increment.
        e.sent
            .store(e.sent.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        pool.head = seq + 1;
        pool.window.push_back(slot);
        if pool.window.len() as u64 > self.service.layout().capacity() {
            let old = pool.window.pop_front().expect("longer than the capacity");
            pool.retired.push_back(old);
        }
        pool.loans -= 1;
        drop(pool);
        self.wake_sleepers();
        true
    }

    /// Rings the subscribers that sleep. Costs a load per 64 subscriber
    /// places when nobody sleeps.
    fn wake_sleepers(&self) {
        let c = &self.service.control;
        let layout = self.service.layout();
        let places = u64::from(layout.settings.max_subscribers);
        for w in 0..layout.words {
            // Only bits of places that exist.
            let valid = valid_bits(places, w);
            // SeqCst: see `publish` (3).
            let bits = c.sleepers(w).load(Ordering::SeqCst) & valid;
            if bits == 0 {
                continue;
            }
            // Claims the wake-ups, so concurrent publishers do not all ring.
            let bits = c.sleepers(w).fetch_and(!bits, Ordering::AcqRel) & bits;
            for_each_bit(w, bits, |i| self.ring_subscriber(i));
        }
    }

    fn ring_subscriber(&self, i: u32) {
        self.subscriber_bells
            .ring(&self.service, Role::Subscriber, i);
    }

    /// Block policy: whether every live subscriber has taken sample
    /// `seq - capacity`, the one sending `seq` overwrites.
    fn has_room(&self, pool: &mut Pool, seq: u64) -> bool {
        let layout = self.service.layout();
        let capacity = layout.capacity();
        // The lowest cursor seen last time stands for the subscribers seen
        // then; one that joined since starts up to `history` samples before
        // the head it read, which is at least that lowest cursor. So the
        // remembered value leaves room for `history` fewer sends.
        let history = u64::from(layout.settings.history).min(capacity);
        seq + history < pool.min_cursor + capacity
            || seq < self.refresh_min_cursor(pool, seq) + capacity
    }

    /// The lowest cursor on this publisher among live subscribers (or
    /// `seq` when there are none), remembered for the next sends.
    fn refresh_min_cursor(&self, pool: &mut Pool, seq: u64) -> u64 {
        let c = &self.service.control;
        let mut min = seq;
        // SeqCst fence: orders this place's earlier head stores before the
        // state loads below, against a joining subscriber's SeqCst store of
        // ACTIVE and SeqCst load of the head: either this scan sees it
        // ACTIVE, or its head load sees `seq` (and it starts late enough).
        std::sync::atomic::fence(Ordering::SeqCst);
        for i in 0..self.service.layout().settings.max_subscribers {
            // SeqCst: acquires the cursors the subscriber stored before its
            // ACTIVE; and is in the single order with its SeqCst store of
            // FREE and load of the space sleepers when it leaves, against
            // this publisher's SeqCst bit set before the re-check.
            if c.subscriber(i).state.load(Ordering::SeqCst) == ACTIVE {
                // SeqCst: see `wait_for_space`. Acquire at least: the
                // subscriber read the entry before it moved its cursor past
                // it, so overwriting that entry now is safe.
                min = min.min(c.cursor(i, self.index).load(Ordering::SeqCst));
            }
        }
        pool.min_cursor = min;
        min
    }
}

impl<T: Pod> Publisher<T> {
    /// Loans a sample, zeroed. Fill it and [`send`](SampleMut::send) it.
    pub fn loan(&self) -> Result<SampleMut<'_, T>> {
        let mut sample = self.loan_uninit()?;
        *sample = T::zeroed();
        Ok(sample)
    }

    /// Loans a sample holding whatever its slot held before (some earlier
    /// sample's bytes: any bit pattern is a valid `T`). Cheaper than
    /// [`loan`](Publisher::loan) for large types that are written whole.
    pub fn loan_uninit(&self) -> Result<SampleMut<'_, T>> {
        self.loan_bytes(std::mem::size_of::<T>() as u64)
    }

    /// Copies `value` into a sample and sends it.
    pub fn send_copy(&self, value: &T) -> Result<()> {
        let mut sample = self.loan_uninit()?;
        *sample = *value;
        sample.send()
    }

    /// Copies `value` into a sample and sends it as an async task: see
    /// [`SampleMut::send_async`].
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use memlink::pubsub::{Overflow, ServiceOptions};
    /// # let name = format!("memlink-doc-send-async-{}", std::process::id());
    /// let options = ServiceOptions::new().overflow(Overflow::Block).capacity(1);
    /// let subscriber = options.subscriber::<u64>(&name)?;
    /// let publisher = options.publisher::<u64>(&name)?;
    /// publisher.send_copy_async(&1).await?;            // room for one
    /// let (sent, received) = tokio::join!(publisher.send_copy_async(&2), async {
    ///     let first = *subscriber.recv_async().await?;  // makes room
    ///     Ok::<u64, memlink::Error>(first)
    /// });
    /// sent?;
    /// assert_eq!(received?, 1);
    /// # Ok::<(), memlink::Error>(())
    /// # }).unwrap();
    /// ```
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn send_copy_async(&self, value: &T) -> Result<()> {
        let mut sample = self.loan_uninit()?;
        *sample = *value;
        sample.send_async().await
    }
}

impl<T: Pod> Publisher<[T]> {
    /// Loans a sample of `len` elements, zeroed.
    pub fn loan_slice(&self, len: usize) -> Result<SampleMut<'_, [T]>> {
        let mut sample = self.loan_slice_uninit(len)?;
        sample.fill(T::zeroed());
        Ok(sample)
    }

    /// Loans a sample of `len` elements holding whatever its slot held.
    pub fn loan_slice_uninit(&self, len: usize) -> Result<SampleMut<'_, [T]>> {
        let bytes = (len as u64).saturating_mul(std::mem::size_of::<T>() as u64);
        self.loan_bytes(bytes)
    }

    /// Copies `values` into a sample and sends it.
    pub fn send_copy(&self, values: &[T]) -> Result<()> {
        let mut sample = self.loan_slice_uninit(values.len())?;
        sample.copy_from_slice(values);
        sample.send()
    }
}

impl Publisher<[u8]> {
    /// Connects to the service `name` whatever its payload type, sending
    /// samples as bytes: for tools that relay any service (such as
    /// `memlink-bridge`). The caller is the one who keeps samples
    /// meaningful for the service's type: for a service of values, each
    /// sample should be one value's bytes ([`ServiceInfo`] says its size).
    /// A service that does not exist yet is made for byte payloads with
    /// `options`' settings.
    ///
    /// [`ServiceInfo`]: super::ServiceInfo
    ///
    /// ```
    /// use memlink::pubsub::{Publisher, ServiceOptions, Subscriber};
    /// # let name = format!("memlink-doc-pub-any-{}", std::process::id());
    /// let subscriber = Subscriber::<u32>::connect(&name)?;
    /// let bytes = Publisher::connect_any(&name, &ServiceOptions::new())?;
    /// bytes.send_copy(&[1, 2, 3, 4])?;
    /// assert_eq!(*subscriber.try_recv()?.unwrap(), 0x0403_0201);
    /// # Ok::<(), memlink::Error>(())
    /// ```
    pub fn connect_any(name: &str, options: &ServiceOptions) -> Result<Publisher<[u8]>> {
        let options = ServiceOptions {
            any_payload: true,
            ..options.clone()
        };
        Publisher::connect_with(name, &options)
    }
}

impl<T: Payload + ?Sized> Drop for Publisher<T> {
    fn drop(&mut self) {
        // Samples in the ring stay readable: subscribers still take them.
        let e = self.service.control.publisher(self.index);
        e.state.store(FREE, Ordering::Release);
    }
}

impl<T: Payload + ?Sized> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("service", &self.service.name.given())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Rebuilds the local view of publisher place `p`'s slots from the
    /// ring, after whoever held the place before (maybe a dead process).
    fn recover(service: &Service, p: u32) -> Result<Pool> {
        let c = &service.control;
        let layout = service.layout();
        let capacity = layout.capacity();
        let mut head = service.head(p)?;
        // The head lags the ring by one when the previous holder died
        // between its two stores; that sample is published all the same.
        if entry_order(c.ring(p, head).load(Ordering::Acquire), head) == 0 {
            head += 1;
            c.publisher(p).head.store(head, Ordering::Release);
        }
        let mut in_window = vec![false; layout.slots as usize];
        let mut window = VecDeque::new();
        // Newest first: a slot that two entries name (no publisher writes
        // that, a stray write can) stays in the window for its later one,
        // so it is not reused while that entry can still be read. The
        // window may then be shorter than the ring, which only retires
        // slots later than needed.
        for seq in (head.saturating_sub(capacity)..head).rev() {
            let e = c.ring(p, seq).load(Ordering::Acquire);
            let slot = entry_slot(e);
            if entry_order(e, seq) == 0 && slot < layout.slots && !in_window[slot as usize] {
                in_window[slot as usize] = true;
                window.push_front(slot);
            }
        }
        // Everything else may be held by subscribers: check before reuse.
        let retired = (0..layout.slots)
            .filter(|&s| !in_window[s as usize])
            .collect();
        Ok(Pool {
            head,
            free: Vec::new(),
            window,
            retired,
            min_cursor: 0,
            loans: 0,
        })
    }

    /// Takes the oldest retired slot that no subscriber holds.
    fn take_unheld(&mut self, service: &Service, p: u32) -> Option<u64> {
        let c = &service.control;
        let words = service.layout().words;
        let unheld = |slot: u64| {
            // SeqCst: see `Publisher::publish` (2).
            (0..words).all(|w| c.holders(p, slot, w).load(Ordering::SeqCst) == 0)
        };
        // Nearly always the oldest: subscribers let go in order.
        if self.retired.front().is_some_and(|&slot| unheld(slot)) {
            return self.retired.pop_front();
        }
        let position = self.retired.iter().position(|&slot| unheld(slot))?;
        self.retired.remove(position)
    }
}

/// A loaned sample: shared memory the publisher writes in place, then
/// [`send`](SampleMut::send)s. Dropping it unsent gives the slot back.
pub struct SampleMut<'a, T: Payload + ?Sized> {
    publisher: &'a Publisher<T>,
    slot: u64,
    ptr: *mut T,
    sent: bool,
}

// SAFETY: a loan is exclusive access to a slot of the publisher's own
// partition (nobody else reads or writes it until it is sent) plus a
// borrow of its `Sync` publisher; sending or dropping it from another
// thread goes through the publisher's lock.
unsafe impl<T: Payload + ?Sized + Send> Send for SampleMut<'_, T> {}
// SAFETY: `&SampleMut` gives only `&T`.
unsafe impl<T: Payload + ?Sized + Sync> Sync for SampleMut<'_, T> {}

impl<T: Payload + ?Sized> SampleMut<'_, T> {
    /// Publishes the sample to every subscriber, without copying it. Under
    /// [`Overflow::Block`](super::Overflow::Block) this waits (as long as
    /// it takes) until the slowest live subscriber has room.
    pub fn send(self) -> Result<()> {
        self.send_until(None)
    }

    /// As [`send`](SampleMut::send), but gives up after `timeout` when the
    /// service blocks on a slow subscriber: an
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error, and the
    /// sample is not sent.
    pub fn send_timeout(self, timeout: Duration) -> Result<()> {
        self.send_until(super::deadline_after(timeout))
    }

    /// As [`send`](SampleMut::send), awaited by an async task (features
    /// `tokio` or `async-io`; see [`wait::ready`](crate::wait::ready)):
    /// under [`Overflow::Block`](super::Overflow::Block) the task sleeps
    /// until the slowest live subscriber has room. Cancel-safe: dropping
    /// the future before it is done gives the slot back, unsent.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn send_async(mut self) -> Result<()> {
        self.sent = true;
        let guard = Unsent(&self);
        // SAFETY: `ptr` points at this loan's payload (see `loan_bytes`).
        let bytes = unsafe { (*guard.0.ptr).byte_len() } as u64;
        guard.0.publisher.publish_async(guard.0.slot, bytes).await?;
        std::mem::forget(guard);
        Ok(())
    }

    fn send_until(mut self, deadline: Option<Instant>) -> Result<()> {
        self.sent = true;
        // SAFETY: `ptr` points at this loan's payload (see `loan_bytes`).
        let bytes = unsafe { (*self.ptr).byte_len() } as u64;
        self.publisher.publish(self.slot, bytes, deadline)
    }
}

/// Gives an async send's slot back if the send is dropped (cancelled) or
/// fails before it is published.
#[cfg(any(feature = "tokio", feature = "async-io"))]
struct Unsent<'s, 'a, T: Payload + ?Sized>(&'s SampleMut<'a, T>);

#[cfg(any(feature = "tokio", feature = "async-io"))]
impl<T: Payload + ?Sized> Drop for Unsent<'_, '_, T> {
    fn drop(&mut self) {
        self.0.publisher.give_back(self.0.slot);
    }
}

impl<T: Payload + ?Sized> Deref for SampleMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the loaned slot is this publisher's, outside the ring and
        // held by no subscriber, so nothing else reads or writes it until it
        // is sent; the mapping outlives the borrow of the publisher, and the
        // bytes are initialised shared memory, a valid `T` for any pattern.
        unsafe { &*self.ptr }
    }
}

impl<T: Payload + ?Sized> DerefMut for SampleMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.ptr }
    }
}

impl<T: Payload + ?Sized> Drop for SampleMut<'_, T> {
    fn drop(&mut self) {
        if !self.sent {
            self.publisher.give_back(self.slot);
        }
    }
}

impl<T: Payload + ?Sized> fmt::Debug for SampleMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SampleMut")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// A publisher waits for room to send: under
/// [`Overflow::Block`](super::Overflow::Block), until every live
/// subscriber has taken the sample the next send overwrites; otherwise it
/// is always ready.
impl<T: Payload + ?Sized> Waitable for Publisher<T> {
    fn is_ready(&self) -> bool {
        if self.service.layout().settings.overflow != 1 {
            return true;
        }
        let mut pool = self.pool();
        let seq = pool.head;
        self.has_room(&mut pool, seq)
    }

    fn bell(&self) -> (&Bell, &sys::Doorbell) {
        (
            &self.service.control.publisher(self.index).bell,
            &self.doorbell,
        )
    }

    /// SeqCst: pairs with the subscriber's SeqCst cursor store and load of
    /// these bits: either it sees the bit and rings, or the re-check sees
    /// its progress.
    fn arm(&self) {
        let (_, bit) = bit_of(self.index);
        let c = &self.service.control;
        c.space_sleepers().fetch_or(bit, Ordering::SeqCst);
    }

    fn disarm(&self) {
        let (_, bit) = bit_of(self.index);
        let c = &self.service.control;
        c.space_sleepers().fetch_and(!bit, Ordering::Relaxed);
    }

    /// A laggard that makes no progress may be dead; the kernel says so
    /// through its claim. A failure to look leaves the wait to its deadline.
    fn after_idle(&self) {
        let _ = self.service.reap_dead_subscribers();
    }

    fn recheck(&self) -> Duration {
        LIVENESS_CHECK
    }
}
