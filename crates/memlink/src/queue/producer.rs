//! The producing side: one writer of its own cells and partition.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::joint::{Joined, Queue, Role};
use super::layout::{cell, ACTIVE, FREE};
use super::{Payload, QueueOptions};
use crate::error::{ErrorKind, Operation, Result};
use crate::messaging::{deadline_after, payload_type};
use crate::sys;
use crate::sys::layout::Bell;
use crate::wait::{self, Waitable};

/// How often a producer waiting for room checks that the consumer holding
/// its oldest message is alive (not a timeout on anyone: a consumer is
/// only taken for dead once the kernel says so).
const LIVENESS_CHECK: Duration = Duration::from_millis(10);

/// A producer of `T` messages on a named work queue.
///
/// Messages are loaned in place in shared memory ([`loan`](Producer::loan)
/// and its variants), filled and [`send`](Loan::send)t without a copy;
/// [`send_copy`](Producer::send_copy) does it all at once. A producer has
/// one loan out at a time; it may be shared between threads, but
/// concurrent loans are refused (give each thread its own producer).
///
/// ```
/// use memlink::queue::{Consumer, Producer, QueueOptions};
/// # let name = format!("memlink-doc-producer-{}", std::process::id());
/// let producer = QueueOptions::new().capacity(2).producer::<u32>(&name)?;
/// let consumer = Consumer::<u32>::connect(&name)?;
/// producer.send_copy(&1)?;
/// producer.send_copy(&2)?;
/// let full = producer.try_send_copy(&3).unwrap_err();
/// assert_eq!(full.kind(), memlink::ErrorKind::LimitReached);
/// consumer.try_recv()?.unwrap().done();
/// producer.try_send_copy(&3)?;                 // room again
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Producer<T: Payload + ?Sized> {
    index: u32,
    data: sys::Mapping,
    doorbell: sys::Doorbell,
    /// Whether a loan is out: the cells' single writer is whoever has it.
    loaned: AtomicBool,
    _claim: sys::Claim,
    queue: Queue,
    _payload: PhantomData<fn(&T)>,
}

/// How long a loan may wait for room.
#[derive(Clone, Copy)]
enum Patience {
    None,
    Until(Option<Instant>),
}

impl<T: Payload + ?Sized> Producer<T> {
    /// Connects to the queue `name` with the default settings (making it
    /// if it does not exist; joining it, whatever its settings, if it
    /// does). The payload type must be the queue's.
    pub fn connect(name: &str) -> Result<Producer<T>> {
        Producer::connect_with(name, &QueueOptions::new())
    }

    pub(super) fn connect_with(name: &str, options: &QueueOptions) -> Result<Producer<T>> {
        let Joined {
            queue,
            index,
            claim,
            data,
            doorbell,
        } = Queue::join(name, options, payload_type::<T>(), Role::Producer)?;
        let c = &queue.control;
        let entry = c.producer(index);
        // A previous holder killed between its cell store and its head
        // store sent that message: count it.
        let head = entry.head.load(Ordering::Acquire);
        if cell::order(c.cell(index, head).load(Ordering::Acquire), head) == 0 {
            entry.head.store(head + 1, Ordering::Release);
        }
        entry.pid.store(std::process::id(), Ordering::Relaxed);
        entry.sent.store(0, Ordering::Relaxed);
        entry.flags.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire loads of readers of the entry.
        entry.state.store(ACTIVE, Ordering::Release);
        Ok(Producer {
            index,
            data,
            doorbell,
            loaned: AtomicBool::new(false),
            _claim: claim,
            queue,
            _payload: PhantomData,
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.queue.name.given()
    }

    /// How many consumers are connected now.
    pub fn consumer_count(&self) -> Result<usize> {
        Ok(self.queue.participants(Role::Consumer)?.len())
    }

    /// The largest payload of one message, in bytes.
    pub fn max_payload(&self) -> u64 {
        self.queue.layout().settings.max_payload
    }

    /// Whether a message could be sent now without waiting.
    pub fn has_room(&self) -> bool {
        self.room_for(self.head())
    }

    fn head(&self) -> u64 {
        // Relaxed: this place's own word, written only by this producer.
        self.queue
            .control
            .producer(self.index)
            .head
            .load(Ordering::Relaxed)
    }

    /// Whether `seq`'s cell is finished with (its previous message
    /// acknowledged or lost).
    fn room_for(&self, seq: u64) -> bool {
        // Acquire: pairs with the consumer's SeqCst (release) store that
        // acknowledged the cell's previous message, so its reads of the
        // slot are done before this producer writes it.
        let w = self
            .queue
            .control
            .cell(self.index, seq)
            .load(Ordering::Acquire);
        cell::state(w) == cell::FREE
    }

    fn loan_bytes(&self, bytes: u64, patience: Patience) -> Result<Loan<'_, T>> {
        let seq = self.begin_loan(bytes)?;
        if let Err(e) = self.wait_for_room(seq, patience) {
            // Release: see `begin_loan`.
            self.loaned.store(false, Ordering::Release);
            return Err(e);
        }
        Ok(self.loan_at(seq, bytes))
    }

    /// As [`loan_bytes`](Self::loan_bytes), waiting for room as an async
    /// task. Cancel-safe: dropped while it waits, it leaves no loan out.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    async fn loan_bytes_async(&self, bytes: u64) -> Result<Loan<'_, T>> {
        let seq = self.begin_loan(bytes)?;
        // Not handed out (nor its slot touched) until the cell is free; its
        // drop ends the loan if the wait fails or the future is dropped.
        let loan = self.loan_at(seq, bytes);
        while !self.room_for(seq) {
            wait::ready(self)
                .await
                .map_err(|e| e.reframe(Operation::Send))?;
        }
        Ok(loan)
    }

    /// Checks a loan of `bytes` bytes and takes this producer's one loan:
    /// the sequence number of the cell it is for.
    fn begin_loan(&self, bytes: u64) -> Result<u64> {
        let max = self.max_payload();
        if bytes > max {
            return Err(self
                .queue
                .error(Operation::Loan, ErrorKind::InvalidArgument)
                .with_detail(format!(
                    "a message of {bytes} bytes is larger than the queue's largest, {max}"
                )));
        }
        // Acquire: pairs with the Release store ending the previous loan
        // (maybe on another thread), whose writes to the cells come first.
        if self.loaned.swap(true, Ordering::Acquire) {
            return Err(self
                .queue
                .error(Operation::Loan, ErrorKind::LimitReached)
                .with_detail(
                    "this producer has a message loaned already (one at a time; \
                     give each thread its own producer)",
                ));
        }
        Ok(self.head())
    }

    /// The loan of `seq`'s slot, whose cell is free, for `bytes` bytes.
    fn loan_at(&self, seq: u64, bytes: u64) -> Loan<'_, T> {
        let offset = (seq % self.queue.layout().capacity()) * self.queue.layout().stride;
        // SAFETY: the slot lies inside this producer's partition (slot <
        // capacity, stride * capacity <= partition size), which is mapped
        // writable for as long as `self` lives.
        let at = unsafe { self.data.as_ptr().add(offset as usize) };
        Loan {
            producer: self,
            seq,
            ptr: T::from_raw(at, bytes as usize),
            sent: false,
        }
    }

    fn wait_for_room(&self, seq: u64, patience: Patience) -> Result<()> {
        if self.room_for(seq) {
            return Ok(());
        }
        match patience {
            Patience::None => {
                // A dead consumer may hold the oldest message: the rule
                // may free its cell now.
                self.queue.reap_dead_consumers(None)?;
                if self.room_for(seq) {
                    return Ok(());
                }
                Err(self
                    .queue
                    .error(Operation::Send, ErrorKind::LimitReached)
                    .with_detail(format!(
                        "full: this producer's {} messages are not all finished (capacity)",
                        self.queue.layout().capacity()
                    )))
            }
            Patience::Until(deadline) => {
                if wait::wait_until(self, deadline) {
                    Ok(())
                } else {
                    Err(self
                        .queue
                        .error(Operation::Send, ErrorKind::Timeout)
                        .with_detail("consumers did not finish the oldest message in time"))
                }
            }
        }
    }

    /// Sends `seq`'s cell holding `bytes` bytes: one store makes it visible.
    fn publish(&self, seq: u64, bytes: u64) {
        let c = &self.queue.control;
        let p = self.index;
        // Relaxed: published by the cell store below.
        c.len(p, seq).store(bytes, Ordering::Relaxed);
        // SeqCst: (1) releases the payload and length to the consumer that
        // takes the cell (its CAS acquires); (2) is ordered before the
        // sleeper load in `wake_a_consumer`, against a consumer's SeqCst
        // sleeping-bit set and re-check of the cells.
        c.cell(p, seq)
            .store(cell::word(seq, cell::READY), Ordering::SeqCst);
        let e = c.producer(p);
        // Release: for the next holder of the place (and inspectors).
        e.head.store(seq + 1, Ordering::Release);
        e.sent
            .store(e.sent.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // Release: see `loan_bytes`.
        self.loaned.store(false, Ordering::Release);
        self.queue.wake_a_consumer();
    }
}

impl<T: Pod> Producer<T> {
    /// Loans a message, zeroed, waiting as long as it takes for room. Fill
    /// it and [`send`](Loan::send) it.
    pub fn loan(&self) -> Result<Loan<'_, T>> {
        let mut loan = self.loan_bytes(size_of::<T>() as u64, Patience::Until(None))?;
        *loan = T::zeroed();
        Ok(loan)
    }

    /// As [`loan`](Producer::loan), waiting at most `timeout` for room (an
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error then).
    pub fn loan_timeout(&self, timeout: Duration) -> Result<Loan<'_, T>> {
        let patience = Patience::Until(deadline_after(timeout));
        let mut loan = self.loan_bytes(size_of::<T>() as u64, patience)?;
        *loan = T::zeroed();
        Ok(loan)
    }

    /// As [`loan`](Producer::loan), without waiting: a full queue is an
    /// [`ErrorKind::LimitReached`](crate::ErrorKind::LimitReached) error.
    pub fn try_loan(&self) -> Result<Loan<'_, T>> {
        let mut loan = self.loan_bytes(size_of::<T>() as u64, Patience::None)?;
        *loan = T::zeroed();
        Ok(loan)
    }

    /// As [`loan`](Producer::loan), awaited by an async task (features
    /// `tokio` or `async-io`; see [`wait::ready`]): the task sleeps until
    /// consumers make room. Cancel-safe: dropped while it waits, it leaves
    /// no loan out.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn loan_async(&self) -> Result<Loan<'_, T>> {
        let mut loan = self.loan_bytes_async(size_of::<T>() as u64).await?;
        *loan = T::zeroed();
        Ok(loan)
    }

    /// Copies `value` into a message and sends it as an async task, which
    /// sleeps while the queue is full (backpressure). Cancel-safe: nothing
    /// is sent unless it completes.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use memlink::queue::{Consumer, QueueOptions};
    /// # let name = format!("memlink-doc-queue-send-async-{}", std::process::id());
    /// let producer = QueueOptions::new().capacity(1).producer::<u32>(&name)?;
    /// let consumer = Consumer::<u32>::connect(&name)?;
    /// producer.send_copy_async(&1).await?;            // room for one
    /// let (sent, first) = tokio::join!(producer.send_copy_async(&2), async {
    ///     let job = consumer.recv_async().await?;     // makes room
    ///     Ok::<u32, memlink::Error>(*job)
    /// });
    /// sent?;
    /// assert_eq!((first?, *consumer.recv_async().await?), (1, 2));
    /// # Ok::<(), memlink::Error>(())
    /// # }).unwrap();
    /// ```
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn send_copy_async(&self, value: &T) -> Result<()> {
        let mut loan = self.loan_bytes_async(size_of::<T>() as u64).await?;
        *loan = *value;
        loan.send();
        Ok(())
    }

    /// Copies `value` into a message and sends it, waiting as long as it
    /// takes for room.
    pub fn send_copy(&self, value: &T) -> Result<()> {
        self.copy_with(value, Patience::Until(None))
    }

    /// As [`send_copy`](Producer::send_copy), waiting at most `timeout`.
    pub fn send_copy_timeout(&self, value: &T, timeout: Duration) -> Result<()> {
        self.copy_with(value, Patience::Until(deadline_after(timeout)))
    }

    /// As [`send_copy`](Producer::send_copy), without waiting: a full
    /// queue is an [`ErrorKind::LimitReached`](crate::ErrorKind::LimitReached)
    /// error and nothing is sent.
    pub fn try_send_copy(&self, value: &T) -> Result<()> {
        self.copy_with(value, Patience::None)
    }

    fn copy_with(&self, value: &T, patience: Patience) -> Result<()> {
        let mut loan = self.loan_bytes(size_of::<T>() as u64, patience)?;
        *loan = *value;
        loan.send();
        Ok(())
    }
}

impl<T: Pod> Producer<[T]> {
    /// Loans a message of `len` elements, zeroed, waiting for room.
    pub fn loan_slice(&self, len: usize) -> Result<Loan<'_, [T]>> {
        let bytes = (len as u64).saturating_mul(size_of::<T>() as u64);
        let mut loan = self.loan_bytes(bytes, Patience::Until(None))?;
        loan.fill(T::zeroed());
        Ok(loan)
    }

    /// As [`loan_slice`](Producer::loan_slice), awaited by an async task:
    /// see [`loan_async`](Producer::loan_async).
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn loan_slice_async(&self, len: usize) -> Result<Loan<'_, [T]>> {
        let bytes = (len as u64).saturating_mul(size_of::<T>() as u64);
        let mut loan = self.loan_bytes_async(bytes).await?;
        loan.fill(T::zeroed());
        Ok(loan)
    }

    /// Copies `values` into a message and sends it as an async task: see
    /// [`send_copy_async`](Producer::send_copy_async).
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub async fn send_copy_async(&self, values: &[T]) -> Result<()> {
        let mut loan = self
            .loan_bytes_async(std::mem::size_of_val(values) as u64)
            .await?;
        loan.copy_from_slice(values);
        loan.send();
        Ok(())
    }

    /// Copies `values` into a message and sends it, waiting for room.
    pub fn send_copy(&self, values: &[T]) -> Result<()> {
        self.slice_with(values, Patience::Until(None))
    }

    /// As [`send_copy`](Producer::send_copy), waiting at most `timeout`.
    pub fn send_copy_timeout(&self, values: &[T], timeout: Duration) -> Result<()> {
        self.slice_with(values, Patience::Until(deadline_after(timeout)))
    }

    /// As [`send_copy`](Producer::send_copy), without waiting (a full
    /// queue is an [`ErrorKind::LimitReached`](crate::ErrorKind::LimitReached)
    /// error).
    pub fn try_send_copy(&self, values: &[T]) -> Result<()> {
        self.slice_with(values, Patience::None)
    }

    fn slice_with(&self, values: &[T], patience: Patience) -> Result<()> {
        let bytes = std::mem::size_of_val(values) as u64;
        let mut loan = self.loan_bytes(bytes, patience)?;
        loan.copy_from_slice(values);
        loan.send();
        Ok(())
    }
}

impl<T: Payload + ?Sized> Drop for Producer<T> {
    fn drop(&mut self) {
        // Sent messages stay: consumers still take them.
        let e = self.queue.control.producer(self.index);
        e.state.store(FREE, Ordering::Release);
    }
}

impl<T: Payload + ?Sized> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("queue", &self.queue.name.given())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A loaned message: shared memory the producer writes in place, then
/// [`send`](Loan::send)s. Dropping it unsent sends nothing.
pub struct Loan<'a, T: Payload + ?Sized> {
    producer: &'a Producer<T>,
    seq: u64,
    ptr: *mut T,
    sent: bool,
}

// SAFETY: a loan is exclusive access to a slot of the producer's own
// partition (its cell is FREE, so no consumer reads it, and the producer's
// one-loan flag keeps other loans out) plus a borrow of its `Sync`
// producer; sending or dropping it from another thread is atomic stores.
unsafe impl<T: Payload + ?Sized + Send> Send for Loan<'_, T> {}
// SAFETY: `&Loan` gives only `&T`.
unsafe impl<T: Payload + ?Sized + Sync> Sync for Loan<'_, T> {}

impl<T: Payload + ?Sized> Loan<'_, T> {
    /// Sends the message to the queue, without copying it. Never waits:
    /// the room was found when it was loaned.
    pub fn send(mut self) {
        self.sent = true;
        // SAFETY: `ptr` points at this loan's payload (see `loan_bytes`).
        let bytes = unsafe { (*self.ptr).byte_len() } as u64;
        self.producer.publish(self.seq, bytes);
    }
}

impl<T: Payload + ?Sized> Deref for Loan<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the loaned slot's cell is FREE, so no consumer reads it,
        // and only the loan's holder writes it until it is sent; the mapping
        // outlives the borrow of the producer; any bit pattern is a `T`.
        unsafe { &*self.ptr }
    }
}

impl<T: Payload + ?Sized> DerefMut for Loan<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.ptr }
    }
}

impl<T: Payload + ?Sized> Drop for Loan<'_, T> {
    fn drop(&mut self) {
        if !self.sent {
            // Release: see `Producer::loan_bytes`.
            self.producer.loaned.store(false, Ordering::Release);
        }
    }
}

impl<T: Payload + ?Sized> fmt::Debug for Loan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loan")
            .field("sequence", &self.seq)
            .finish_non_exhaustive()
    }
}

/// A producer waits for room: for the cell of its next message to be
/// finished with (its previous message acknowledged or lost).
impl<T: Payload + ?Sized> Waitable for Producer<T> {
    fn is_ready(&self) -> bool {
        self.has_room()
    }

    fn bell(&self) -> (&Bell, &sys::Doorbell) {
        (
            &self.queue.control.producer(self.index).bell,
            &self.doorbell,
        )
    }

    /// SeqCst: pairs with the consumer's SeqCst acknowledgement store and
    /// load of these bits (`Queue::wake_producer`): either it sees the bit
    /// and rings, or the re-check sees the free cell.
    fn arm(&self) {
        let c = &self.queue.control;
        c.counters()
            .space_sleepers
            .fetch_or(1 << self.index, Ordering::SeqCst);
    }

    fn disarm(&self) {
        let c = &self.queue.control;
        c.counters()
            .space_sleepers
            .fetch_and(!(1 << self.index), Ordering::Relaxed);
    }

    /// The consumer holding the oldest message may be dead; the kernel says
    /// so through its claim. A failure to look leaves the wait to its
    /// deadline.
    fn after_idle(&self) {
        let _ = self.queue.reap_dead_consumers(None);
    }

    fn recheck(&self) -> Duration {
        LIVENESS_CHECK
    }
}
