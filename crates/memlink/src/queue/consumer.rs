//! The consuming side: competing for messages cell by cell.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::joint::{Joined, Queue, Role};
use super::layout::{cell, ACTIVE, FREE};
use super::{Payload, QueueOptions};
use crate::error::{ErrorKind, Operation, Result};
use crate::messaging::{bit_of, deadline_after, payload_type};
use crate::sys;
use crate::sys::layout::Bell;
use crate::wait::{self, Waitable};

/// A consumer of `T` messages on a named work queue: it competes with the
/// other consumers, and each message it takes is its alone until it is
/// acknowledged (the [`Job`] dropped).
///
/// Messages are read in place, in shared memory mapped read-only. A
/// consumer may be shared between threads: they compete like separate
/// consumers (and share its place, so they live and die together).
///
/// ```
/// use std::time::Duration;
/// use memlink::queue::{Consumer, Producer};
/// # let name = format!("memlink-doc-consumer-{}", std::process::id());
/// let a = Consumer::<u64>::connect(&name)?;
/// let b = Consumer::<u64>::connect(&name)?;
/// let producer = Producer::<u64>::connect(&name)?;
/// producer.send_copy(&1)?;
/// producer.send_copy(&2)?;
/// let first = a.recv_timeout(Duration::from_secs(1))?;
/// let second = b.recv_timeout(Duration::from_secs(1))?;
/// assert_eq!((*first, *second), (1, 2));      // one each, in order taken
/// assert!(a.try_recv()?.is_none());
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Consumer<T: Payload + ?Sized> {
    index: u32,
    data: sys::Mapping,
    doorbell: sys::Doorbell,
    /// The producer place to look at first, so that one busy producer
    /// does not starve the others.
    next: AtomicU32,
    _claim: sys::Claim,
    queue: Queue,
    _payload: PhantomData<fn() -> Box<T>>,
}

impl<T: Payload + ?Sized> Consumer<T> {
    /// Connects to the queue `name` with the default settings (making it
    /// if it does not exist; joining it, whatever its settings, if it
    /// does). The payload type must be the queue's.
    pub fn connect(name: &str) -> Result<Consumer<T>> {
        Consumer::connect_with(name, &QueueOptions::new())
    }

    pub(super) fn connect_with(name: &str, options: &QueueOptions) -> Result<Consumer<T>> {
        let Joined {
            queue,
            index,
            claim,
            data,
            doorbell,
        } = Queue::join(name, options, payload_type::<T>(), Role::Consumer)?;
        let e = queue.control.consumer(index);
        e.taken.store(0, Ordering::Relaxed);
        e.done.store(0, Ordering::Relaxed);
        e.pid.store(std::process::id(), Ordering::Relaxed);
        e.flags.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire loads of reapers and inspectors.
        e.state.store(ACTIVE, Ordering::Release);
        Ok(Consumer {
            index,
            data,
            doorbell,
            next: AtomicU32::new(0),
            _claim: claim,
            queue,
            _payload: PhantomData,
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.queue.name.given()
    }

    /// How many producers are connected now. Zero means every producer is
    /// gone (closed or dead); messages they sent may still be waiting.
    pub fn producer_count(&self) -> Result<usize> {
        Ok(self.queue.participants(Role::Producer)?.len())
    }

    /// The next message, if one is waiting. Never blocks.
    pub fn try_recv(&self) -> Result<Option<Job<'_, T>>> {
        let count = self.queue.layout().settings.max_producers;
        let first = self.next.load(Ordering::Relaxed) % count;
        for k in 0..count {
            let p = (first + k) % count;
            if let Some(job) = self.take_from(p) {
                self.next.store((p + 1) % count, Ordering::Relaxed);
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// The next message, waiting as long as it takes. A sleeping receive
    /// also looks by itself every 50 ms, and then settles the messages of
    /// consumers that died (see [`OnConsumerDeath`](super::OnConsumerDeath)).
    pub fn recv(&self) -> Result<Job<'_, T>> {
        self.recv_until(None)
    }

    /// The next message, waiting at most `timeout`: an
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error then.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Job<'_, T>> {
        self.recv_until(deadline_after(timeout))
    }

    /// The next message, awaited by an async task (features `tokio` or
    /// `async-io`; see [`wait::ready`] for how it sleeps). Many tasks may
    /// await one consumer at once; each message goes to one of them.
    ///
    /// Cancel-safe: a message is only taken in the poll that returns it,
    /// so dropping the future loses nothing and leaves no waiter behind.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn recv_async(&self) -> Result<Job<'_, T>> {
        loop {
            if let Some(job) = self.try_recv()? {
                return Ok(job);
            }
            wait::ready(self)
                .await
                .map_err(|e| e.reframe(Operation::Receive))?;
        }
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<Job<'_, T>> {
        loop {
            if let Some(job) = self.try_recv()? {
                return Ok(job);
            }
            if !wait::wait_until(self, deadline) {
                return match self.try_recv()? {
                    Some(job) => Ok(job),
                    None => Err(self
                        .queue
                        .error(Operation::Receive, ErrorKind::Timeout)
                        .with_detail("no message came in time")),
                };
            }
        }
    }

    /// Walks producer `p`'s cells from its tail hint to the first one not
    /// sent yet, calling `f` with each READY one (sequence number, word)
    /// until `f` says stop; moves the tail past finished cells on the way.
    fn scan<R>(&self, p: u32, mut f: impl FnMut(u64, u64) -> Option<R>) -> Option<R> {
        let c = &self.queue.control;
        let tail = c.tail(p);
        // Acquire: the cells behind the tail were seen finished by whoever
        // moved it; nothing needs more.
        let mut seq = tail.load(Ordering::Acquire);
        // A producer has at most `capacity` unfinished messages, and the
        // tail lags its oldest by fewer (every take moves it), so this
        // bound only matters for cells someone wrote over: the scan ends,
        // and the next one starts further on.
        let limit = seq.saturating_add(4 * self.queue.layout().capacity());
        let mut finished_so_far = true;
        while seq < limit {
            // Acquire: pairs with the producer's SeqCst (release) store of
            // READY, and with acknowledgements.
            let w = c.cell(p, seq).load(Ordering::Acquire);
            let order = cell::order(w, seq);
            if order < 0 {
                return None; // not sent yet, nor anything after it
            }
            let finished = order > 0 || cell::state(w) == cell::FREE;
            if order == 0 && cell::state(w) == cell::READY {
                if let Some(r) = f(seq, w) {
                    return Some(r);
                }
            }
            finished_so_far &= finished;
            if finished_so_far {
                // Only past finished cells, so every waiting or taken
                // message stays at or after the tail. Relaxed failure: a
                // mover got there first. Release: see the load above.
                let _ = tail.compare_exchange(seq, seq + 1, Ordering::Release, Ordering::Relaxed);
            }
            seq += 1;
        }
        None
    }

    /// Takes the oldest waiting message of producer `p`, if it has one.
    fn take_from(&self, p: u32) -> Option<Job<'_, T>> {
        let c = &self.queue.control;
        let (seq, word) = self.scan(p, |seq, w| {
            // AcqRel: acquires the payload the producer (or, for a message
            // given back, the first sender) released; releases nothing
            // anyone reads but the word. Failure: someone took it first.
            c.cell(p, seq)
                .compare_exchange(
                    w,
                    cell::taken(w, self.index),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
                .then_some((seq, w))
        })?;
        let layout = self.queue.layout();
        let e = c.consumer(self.index);
        e.taken
            .store(e.taken.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // Relaxed: written before the READY store the CAS acquired, and not
        // changed while the cell is not FREE.
        let bytes = c
            .len(p, seq)
            .load(Ordering::Relaxed)
            .min(layout.settings.max_payload);
        let offset = layout.partition(p) + (seq % layout.capacity()) * layout.stride;
        // SAFETY: `offset + bytes` lies inside producer p's partition of the
        // data mapping (slot < capacity, bytes <= max payload <= stride).
        let at = unsafe { self.data.as_ptr().add(offset as usize) };
        Some(Job {
            consumer: self,
            producer: p,
            seq,
            word: cell::taken(word, self.index),
            ptr: T::from_raw(at, bytes as usize),
        })
    }

    /// Acknowledges a job: its cell is the producer's again.
    fn finish(&self, p: u32, seq: u64, word: u64) {
        let c = &self.queue.control;
        // SeqCst: (1) releases this consumer's reads of the slot before the
        // producer's reuse (its Acquire load of FREE); (2) is ordered before
        // the load of the waiting producers' bits in `wake_producer`.
        c.cell(p, seq)
            .store(cell::with_state(word, cell::FREE), Ordering::SeqCst);
        let e = c.consumer(self.index);
        e.done
            .store(e.done.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.queue.wake_producer(p);
    }
}

/// A consumer waits for a message from any producer.
impl<T: Payload + ?Sized> Waitable for Consumer<T> {
    fn is_ready(&self) -> bool {
        let count = self.queue.layout().settings.max_producers;
        (0..count).any(|p| self.scan(p, |_, _| Some(())).is_some())
    }

    fn bell(&self) -> (&Bell, &sys::Doorbell) {
        (
            &self.queue.control.consumer(self.index).bell,
            &self.doorbell,
        )
    }

    /// SeqCst: pairs with the producer's SeqCst cell store and load of
    /// these bits (`Queue::wake_a_consumer`): either it sees the bit and
    /// rings, or the re-check sees its message.
    fn arm(&self) {
        let (w, bit) = bit_of(self.index);
        self.queue
            .control
            .sleepers(w)
            .fetch_or(bit, Ordering::SeqCst);
    }

    fn disarm(&self) {
        let (w, bit) = bit_of(self.index);
        self.queue
            .control
            .sleepers(w)
            .fetch_and(!bit, Ordering::Relaxed);
    }

    /// Idle: the messages of consumers that died may be what is missing.
    /// A failure to look leaves them to the next survivor.
    fn after_idle(&self) {
        let _ = self.queue.reap_dead_consumers(Some(self.index));
    }
}

impl Consumer<[u8]> {
    /// Connects to the queue `name` whatever its payload type, taking
    /// every message as its bytes: for tools (such as `memlink pop`). A
    /// queue that does not exist yet is made for byte payloads with
    /// `options`' settings.
    ///
    /// ```
    /// use memlink::queue::{Consumer, Producer, QueueOptions};
    /// # let name = format!("memlink-doc-queue-any-{}", std::process::id());
    /// let producer = Producer::<u32>::connect(&name)?;
    /// let bytes = Consumer::connect_any(&name, &QueueOptions::new())?;
    /// producer.send_copy(&0x0403_0201)?;
    /// assert_eq!(&*bytes.try_recv()?.unwrap(), &[1, 2, 3, 4]);
    /// # Ok::<(), memlink::Error>(())
    /// ```
    pub fn connect_any(name: &str, options: &QueueOptions) -> Result<Consumer<[u8]>> {
        let options = QueueOptions {
            any_payload: true,
            ..options.clone()
        };
        Consumer::connect_with(name, &options)
    }
}

impl<T: Payload + ?Sized> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Jobs borrow the consumer, so none is held now.
        let c = &self.queue.control;
        let (w, bit) = bit_of(self.index);
        c.sleepers(w).fetch_and(!bit, Ordering::Relaxed);
        c.consumer(self.index).state.store(FREE, Ordering::Release);
    }
}

impl<T: Payload + ?Sized> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue.name.given())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A message taken from the queue, read in place (read-only). It is this
/// consumer's alone until it is dropped or [`done`](Job::done), which
/// acknowledges it and gives its slot back to the producer.
pub struct Job<'a, T: Payload + ?Sized> {
    consumer: &'a Consumer<T>,
    producer: u32,
    seq: u64,
    word: u64,
    ptr: *const T,
}

// SAFETY: a job is a shared borrow of a slot that nobody writes while it is
// held (its cell is TAKEN by this consumer; see `Deref`) plus a borrow of
// its `Sync` consumer; acknowledging it from another thread is atomic
// stores and a ring through the queue's `Sync` state.
unsafe impl<T: Payload + ?Sized + Sync> Send for Job<'_, T> {}
// SAFETY: `&Job` gives only `&T` (read-only, see `Deref`).
unsafe impl<T: Payload + ?Sized + Sync> Sync for Job<'_, T> {}

impl<T: Payload + ?Sized> Job<'_, T> {
    /// Acknowledges the message (as dropping it does).
    pub fn done(self) {}

    /// The place of the producer that sent it.
    pub fn producer_index(&self) -> u32 {
        self.producer
    }

    /// Its number in its producer place's sequence.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// Whether another consumer took it before and died holding it.
    pub fn redelivered(&self) -> bool {
        self.word & cell::REDELIVERED != 0
    }
}

impl<T: Payload + ?Sized> Deref for Job<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the cell is TAKEN by this consumer, so the producer does
        // not reuse the slot until the job is dropped; the read-only mapping
        // lives as long as the consumer this borrows; any bit pattern is a
        // valid `T`.
        unsafe { &*self.ptr }
    }
}

impl<T: Payload + ?Sized> Drop for Job<'_, T> {
    fn drop(&mut self) {
        self.consumer.finish(self.producer, self.seq, self.word);
    }
}

impl<T: Payload + ?Sized + fmt::Debug> fmt::Debug for Job<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
