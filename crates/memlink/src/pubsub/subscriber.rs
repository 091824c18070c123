//! The subscribing side: a cursor per publisher, samples borrowed in place.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::layout::{entry_order, entry_slot, ACTIVE, FLAG_BRIDGE, MAX_HEAD};
use super::service::{Bells, Joined, Role, Service};
use super::{bit_of, payload_type, Payload, ServiceOptions};
use crate::error::{ErrorKind, Operation, Result};
use crate::sys;
use crate::sys::layout::Bell;
use crate::wait::{self, Waitable};

/// A subscriber of `T` samples on a named service.
///
/// It receives every publisher's samples in the order each publisher sent
/// them, reading them in place in shared memory that is mapped read-only.
/// `Send` and `Sync`: threads (and async tasks) may share one subscriber;
/// each sample goes to one of them.
///
/// ```
/// use std::time::Duration;
/// use memlink::pubsub::{Publisher, Subscriber};
/// # let name = format!("memlink-doc-sub-{}", std::process::id());
/// let subscriber = Subscriber::<u64>::connect(&name)?;
/// let publisher = Publisher::<u64>::connect(&name)?;
/// publisher.send_copy(&42)?;
/// let sample = subscriber.recv_timeout(Duration::from_secs(1))?;
/// assert_eq!(*sample, 42);
/// assert_eq!(subscriber.missed(), 0);
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Subscriber<T: Payload + ?Sized> {
    index: u32,
    data: sys::Mapping,
    doorbell: sys::Doorbell,
    publisher_bells: Bells,
    /// What a receive reads and moves. A lock, uncontended unless threads
    /// share the subscriber: two atomic operations per receive (measured:
    /// no change in the polling round trip).
    reader: Mutex<Reader>,
    /// Samples borrowed now (dropped samples give theirs back without the
    /// lock).
    held: AtomicU32,
    _claim: sys::Claim,
    service: Service,
    _payload: PhantomData<fn() -> Box<T>>,
}

/// A subscriber's place in each publisher's sequence.
struct Reader {
    cursors: Vec<u64>,
    /// The publisher place to look at first, so that one busy publisher
    /// does not starve the others.
    next: u32,
    missed: u64,
}

impl<T: Payload + ?Sized> Subscriber<T> {
    /// Connects to the service `name` with the default settings (making it
    /// if it does not exist; joining it, whatever its settings, if it
    /// does). The payload type must be the service's.
    pub fn connect(name: &str) -> Result<Subscriber<T>> {
        Subscriber::connect_with(name, &ServiceOptions::new())
    }

    pub(super) fn connect_with(name: &str, options: &ServiceOptions) -> Result<Subscriber<T>> {
        let Joined {
            service,
            index,
            claim,
            data,
            doorbell,
        } = Service::join(name, options, payload_type::<T>(), Role::Subscriber)?;
        // The place may hold what a dead subscriber left; it is ours now.
        service.clear_subscriber(index);
        let layout = *service.layout();
        let s = layout.settings;
        let c = &service.control;
        let capacity = layout.capacity();
        let start_from = |head: u64| head - head.min(u64::from(s.history)).min(capacity);
        let mut cursors = (0..s.max_publishers)
            .map(|p| service.head(p).map(start_from))
            .collect::<Result<Vec<u64>>>()?;
        for (p, &cursor) in cursors.iter().enumerate() {
            c.cursor(index, p as u32).store(cursor, Ordering::Relaxed);
        }
        let e = c.subscriber(index);
        e.received.store(0, Ordering::Relaxed);
        e.missed.store(0, Ordering::Relaxed);
        e.pid.store(std::process::id(), Ordering::Relaxed);
        // SeqCst: pairs with a blocking publisher's fence and SeqCst state
        // load when it recomputes the lowest cursor (see the head load
        // below); the cursors above are released with it.
        e.state.store(ACTIVE, Ordering::SeqCst);
        // A publisher whose lowest cursor was computed without us goes by
        // it for a while: it keeps `history` samples before the head it
        // had then, which the head read now is at least (see
        // `Publisher::refresh_min_cursor`). Start there.
        for (p, cursor) in cursors.iter_mut().enumerate() {
            let head = c.publisher(p as u32).head.load(Ordering::SeqCst);
            let from_now = start_from(head.min(MAX_HEAD));
            if from_now > *cursor {
                *cursor = from_now;
                c.cursor(index, p as u32).store(*cursor, Ordering::SeqCst);
            }
        }
        Ok(Subscriber {
            index,
            data,
            doorbell,
            publisher_bells: Bells::default(),
            reader: Mutex::new(Reader {
                cursors,
                next: 0,
                missed: 0,
            }),
            held: AtomicU32::new(0),
            _claim: claim,
            service,
            _payload: PhantomData,
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        self.service.name.given()
    }

    /// Samples lost so far because a publisher overwrote them before this
    /// subscriber took them ([`Overflow::Overwrite`](super::Overflow)).
    pub fn missed(&self) -> u64 {
        self.reader().missed
    }

    /// The reader state; a thread that panicked holding it left it
    /// consistent (every update is a plain store), so poison is ignored.
    fn reader(&self) -> MutexGuard<'_, Reader> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many publishers are connected now. Zero means every publisher is
    /// gone (closed or dead); samples they sent may still be waiting.
    pub fn publisher_count(&self) -> Result<usize> {
        Ok(self.service.participants(Role::Publisher)?.len())
    }

    /// The next sample, if one is waiting. Never blocks.
    pub fn try_recv(&self) -> Result<Option<Sample<'_, T>>> {
        let count = self.service.layout().settings.max_publishers;
        let mut reader = self.reader();
        let first = reader.next;
        for k in 0..count {
            let p = (first + k) % count;
            if let Some(sample) = self.take_from(&mut reader, p)? {
                reader.next = (p + 1) % count;
                return Ok(Some(sample));
            }
        }
        Ok(None)
    }

    /// The next sample, waiting as long as it takes. A sleeping receive
    /// also looks by itself every 50 ms, so a sample whose publisher died
    /// before it could ring is taken all the same.
    pub fn recv(&self) -> Result<Sample<'_, T>> {
        self.recv_until(None)
    }

    /// The next sample, waiting at most `timeout`: an
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error then.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Sample<'_, T>> {
        self.recv_until(super::deadline_after(timeout))
    }

    /// The next sample, awaited by an async task (features `tokio` or
    /// `async-io`; see [`wait::ready`] for how it sleeps and what it
    /// needs). Many tasks may await one subscriber at once; each sample
    /// goes to one of them.
    ///
    /// Cancel-safe: a sample is only taken in the poll that returns it, so
    /// dropping the future (a `select!` that took another branch, a
    /// timeout) loses nothing and leaves no waiter behind.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use memlink::pubsub::{Publisher, Subscriber};
    /// # let name = format!("memlink-doc-recv-async-{}", std::process::id());
    /// let subscriber = Subscriber::<u64>::connect(&name)?;
    /// Publisher::<u64>::connect(&name)?.send_copy(&9)?;
    /// assert_eq!(*subscriber.recv_async().await?, 9);
    /// # Ok::<(), memlink::Error>(())
    /// # }).unwrap();
    /// ```
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn recv_async(&self) -> Result<Sample<'_, T>> {
        loop {
            if let Some(sample) = self.try_recv()? {
                return Ok(sample);
            }
            wait::ready(self)
                .await
                .map_err(|e| e.reframe(Operation::Receive))?;
        }
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<Sample<'_, T>> {
        loop {
            if let Some(sample) = self.try_recv()? {
                return Ok(sample);
            }
            if !wait::wait_until(self, deadline) {
                return match self.try_recv()? {
                    Some(sample) => Ok(sample),
                    None => Err(self
                        .service
                        .error(Operation::Receive, ErrorKind::Timeout)
                        .with_detail("no sample came in time")),
                };
            }
        }
    }

    /// Takes publisher `p`'s next sample, if it has one.
    fn take_from(&self, reader: &mut Reader, p: u32) -> Result<Option<Sample<'_, T>>> {
        let c = &self.service.control;
        let layout = self.service.layout();
        let capacity = layout.capacity();
        let start = reader.cursors[p as usize];
        let mut seq = start;
        let taken = loop {
            // Acquire: pairs with the publisher's SeqCst (release) store of
            // the entry; the payload and length are visible after it.
            let e = c.ring(p, seq).load(Ordering::Acquire);
            let order = entry_order(e, seq);
            if order < 0 {
                break None; // nothing new from p
            }
            if order > 0 {
                // Overwritten: skip to the oldest sample still in the ring.
                // A head past MAX_HEAD is corruption; going no further keeps
                // the arithmetic in range.
                let head = c.publisher(p).head.load(Ordering::Acquire).min(MAX_HEAD);
                // A publisher stores its head before the entry that
                // overwrites `seq` (seq + k * capacity), so the head is past
                // `seq` then. An entry "newer" than the head is not theirs:
                // nothing new from p (stepping towards it could take 2^47
                // steps).
                if seq >= head {
                    break None;
                }
                let oldest = head.saturating_sub(capacity).max(seq + 1);
                reader.missed = reader.missed.saturating_add(oldest - seq);
                seq = oldest;
                continue;
            }
            let limit = layout.settings.max_borrowed;
            if self.held.load(Ordering::Relaxed) >= limit {
                // Keep the skip past overwritten samples, or the next call
                // would count them as missed again.
                if seq != start {
                    reader.cursors[p as usize] = seq;
                    self.store_cursor(p, seq);
                    self.publish_missed(reader);
                }
                return Err(self
                    .service
                    .error(Operation::Receive, ErrorKind::LimitReached)
                    .with_detail(format!(
                        "this subscriber holds {limit} samples already (max_borrowed); drop one"
                    )));
            }
            let slot = entry_slot(e);
            if slot >= layout.slots {
                // Not something a memlink publisher writes; skip it.
                reader.missed = reader.missed.saturating_add(1);
                seq += 1;
                continue;
            }
            let (w, bit) = bit_of(self.index);
            // SeqCst, both: pairs with the publisher's SeqCst entry store and
            // holder load (see `Publisher::publish`): if the entry is still
            // ours after the bit is set, the publisher will see the bit.
            let before = c.holders(p, slot, w).fetch_or(bit, Ordering::SeqCst);
            if before & bit != 0 {
                // We hold this slot already, for another entry: no
                // publisher names a slot twice, and holding it twice would
                // free it when either sample is dropped. Skip this one.
                reader.missed = reader.missed.saturating_add(1);
                seq += 1;
                continue;
            }
            if c.ring(p, seq).load(Ordering::SeqCst) != e {
                // Overwritten meanwhile; Release pairs as in `Sample::drop`.
                c.holders(p, slot, w).fetch_and(!bit, Ordering::Release);
                continue;
            }
            break Some((slot, c.len(p, slot).load(Ordering::Relaxed)));
        };
        let Some((slot, bytes)) = taken else {
            if seq != start {
                reader.cursors[p as usize] = seq;
                self.store_cursor(p, seq);
                self.publish_missed(reader);
            }
            return Ok(None);
        };
        reader.cursors[p as usize] = seq + 1;
        self.store_cursor(p, seq + 1);
        // Relaxed: the count is this process's alone; the reader lock
        // orders the takes, and drops only lower it.
        self.held.fetch_add(1, Ordering::Relaxed);
        let e = c.subscriber(self.index);
        // Written under the reader lock only: a plain increment.
        e.received
            .store(e.received.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.publish_missed(reader);
        let stride = layout.stride;
        let bytes = bytes.min(layout.settings.max_payload);
        let offset = layout.partition(p) + slot * stride;
        // SAFETY: `offset + bytes` lies inside publisher p's partition of
        // the data mapping (slot < slots, bytes <= max payload <= stride).
        let at = unsafe { self.data.as_ptr().add(offset as usize) };
        Ok(Some(Sample {
            subscriber: self,
            publisher: p,
            slot,
            seq,
            ptr: T::from_raw(at, bytes as usize),
        }))
    }

    /// Shows the missed count to inspectors (`memlink info`).
    fn publish_missed(&self, reader: &Reader) {
        let e = self.service.control.subscriber(self.index);
        e.missed.store(reader.missed, Ordering::Relaxed);
    }

    /// Publishes this subscriber's progress on `p`, and under the block
    /// policy rings publishers that wait for room.
    fn store_cursor(&self, p: u32, cursor: u64) {
        let c = &self.service.control;
        if self.service.layout().settings.overflow != 1 {
            // Read only by `inspect_service` when overwriting: Relaxed.
            c.cursor(self.index, p).store(cursor, Ordering::Relaxed);
            return;
        }
        // SeqCst: pairs with a waiting publisher's SeqCst bit set and cursor
        // load (see `Publisher::wait_for_space`).
        c.cursor(self.index, p).store(cursor, Ordering::SeqCst);
        let bit = 1u64 << p;
        if c.space_sleepers().load(Ordering::SeqCst) & bit == 0 {
            return;
        }
        // Claims the wake-up, as `Publisher::wake_sleepers` does: one ring
        // per sleep, not one per subscriber and cursor move, and none for
        // ever after a publisher that died asleep (the waiter sets its bit
        // again before each re-check, so a claimed bit is never needed).
        // AcqRel: ordered after the cursor store above, like the load.
        if c.space_sleepers().fetch_and(!bit, Ordering::AcqRel) & bit == 0 {
            return;
        }
        self.publisher_bells.ring(&self.service, Role::Publisher, p);
    }
}

/// A subscriber waits for a sample from any publisher.
impl<T: Payload + ?Sized> Waitable for Subscriber<T> {
    /// Whether some publisher has a sample at this subscriber's cursor (or
    /// has overwritten it: the receive then skips ahead), or the receive
    /// would fail because too many samples are held.
    fn is_ready(&self) -> bool {
        let c = &self.service.control;
        if self.held.load(Ordering::Relaxed) >= self.service.layout().settings.max_borrowed {
            return true;
        }
        let reader = self.reader();
        reader.cursors.iter().enumerate().any(|(p, &seq)| {
            let p = p as u32;
            // Acquire: as in `take_from`.
            match entry_order(c.ring(p, seq).load(Ordering::Acquire), seq) {
                0 => true,
                // Overwritten: news unless the head says it is not theirs
                // (what `take_from` skips).
                order if order > 0 => seq < c.publisher(p).head.load(Ordering::Acquire),
                _ => false,
            }
        })
    }

    fn bell(&self) -> (&Bell, &sys::Doorbell) {
        (
            &self.service.control.subscriber(self.index).bell,
            &self.doorbell,
        )
    }

    /// SeqCst: pairs with the publisher's SeqCst ring store and load of
    /// these bits: either it sees the bit and rings, or the re-check sees
    /// its sample.
    fn arm(&self) {
        let (w, bit) = bit_of(self.index);
        self.service
            .control
            .sleepers(w)
            .fetch_or(bit, Ordering::SeqCst);
    }

    fn disarm(&self) {
        let (w, bit) = bit_of(self.index);
        self.service
            .control
            .sleepers(w)
            .fetch_and(!bit, Ordering::Relaxed);
    }
}

impl Subscriber<[u8]> {
    /// Connects to the service `name` whatever its payload type, receiving
    /// every sample as its bytes: for tools that show any service (such as
    /// `memlink sub`). A service that does not exist yet is made for byte
    /// payloads with `options`' settings.
    ///
    /// ```
    /// use memlink::pubsub::{Publisher, ServiceOptions, Subscriber};
    /// # let name = format!("memlink-doc-any-{}", std::process::id());
    /// let publisher = Publisher::<u32>::connect(&name)?;
    /// let bytes = Subscriber::connect_any(&name, &ServiceOptions::new())?;
    /// publisher.send_copy(&0x0403_0201)?;
    /// assert_eq!(&*bytes.try_recv()?.unwrap(), &[1, 2, 3, 4]);
    /// # Ok::<(), memlink::Error>(())
    /// ```
    pub fn connect_any(name: &str, options: &ServiceOptions) -> Result<Subscriber<[u8]>> {
        let options = ServiceOptions {
            any_payload: true,
            ..options.clone()
        };
        Subscriber::connect_with(name, &options)
    }
}

impl<T: Payload + ?Sized> Drop for Subscriber<T> {
    fn drop(&mut self) {
        // Samples borrow the subscriber, so none is held now. Leaving
        // frees this place for the flow control of blocking publishers.
        let c = &self.service.control;
        c.subscriber(self.index)
            .state
            .store(super::layout::FREE, Ordering::SeqCst);
        let waiting = c.space_sleepers().load(Ordering::SeqCst);
        if waiting != 0 {
            for p in 0..self.service.layout().settings.max_publishers {
                if waiting & (1 << p) != 0 {
                    let cursor = self.reader().cursors[p as usize];
                    self.store_cursor(p, cursor);
                }
            }
        }
    }
}

impl<T: Payload + ?Sized> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("service", &self.service.name.given())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A received sample, read in place (read-only) until it is dropped, which
/// gives its slot back.
pub struct Sample<'a, T: Payload + ?Sized> {
    subscriber: &'a Subscriber<T>,
    publisher: u32,
    slot: u64,
    seq: u64,
    ptr: *const T,
}

// SAFETY: a sample is a shared borrow of a slot that nobody writes while
// it is held (see `Deref`) plus a borrow of its `Sync` subscriber; dropping
// it on another thread only clears an atomic bit and lowers an atomic count.
unsafe impl<T: Payload + ?Sized + Sync> Send for Sample<'_, T> {}
// SAFETY: `&Sample` gives only `&T` (read-only, see `Deref`).
unsafe impl<T: Payload + ?Sized + Sync> Sync for Sample<'_, T> {}

impl<T: Payload + ?Sized> Sample<'_, T> {
    /// The place of the publisher that sent it.
    pub fn publisher_index(&self) -> u32 {
        self.publisher
    }

    /// Whether a bridge to another machine sent it (a publisher that
    /// joined with `ServiceOptions::bridge`): it came from the network, so
    /// a bridge does not send it back out. For `memlink-bridge`.
    #[doc(hidden)]
    pub fn from_bridge(&self) -> bool {
        let c = &self.subscriber.service.control;
        // Relaxed: the publisher stored its flags before it sent anything,
        // and this sample's ring entry, loaded with Acquire in `take_from`,
        // was stored after them (SeqCst).
        c.publisher(self.publisher).flags.load(Ordering::Relaxed) & FLAG_BRIDGE != 0
    }

    /// Its number in its publisher's sequence (0 for the first sample that
    /// publisher place ever sent).
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// Where it lies in this process's memory (in the service's mapping).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.cast()
    }
}

impl<T: Payload + ?Sized> Deref for Sample<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this subscriber's holder bit on the slot keeps the
        // publisher from reusing it until the sample is dropped, so nobody
        // writes it meanwhile; the read-only mapping lives as long as the
        // subscriber this borrows; any bit pattern is a valid `T`.
        unsafe { &*self.ptr }
    }
}

impl<T: Payload + ?Sized> Drop for Sample<'_, T> {
    fn drop(&mut self) {
        let s = self.subscriber;
        let (w, bit) = bit_of(s.index);
        // Release: our reads of the payload happen before the publisher's
        // reuse of the slot (its SeqCst load of the holders sees this).
        s.service
            .control
            .holders(self.publisher, self.slot, w)
            .fetch_and(!bit, Ordering::Release);
        // Relaxed: see `take_from`.
        s.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T: Payload + ?Sized + fmt::Debug> fmt::Debug for Sample<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
