//! Waiting for messaging participants: the one sleep protocol every
//! blocking call uses.
//!
//! A participant that must wait (a subscriber with nothing to take, a
//! publisher with no room) is a `Waitable`: it can say whether it could
//! go on now, and it has a `Bell` in shared memory with a sleeping mark
//! that the other side checks after each change it makes. The protocol:
//!
//! 1. poll a few times (`SPINS` with a pause, then `YIELDS` giving up
//!    the CPU), which answers at once when the peer is running;
//! 2. read the bell's count, set the sleeping mark (SeqCst), fence, and
//!    check again: the other side either sees the mark and rings, or made
//!    its change before the check, which sees it;
//! 3. sleep on the doorbell while the count is unchanged, never longer
//!    than `Waitable::recheck` (a peer killed between its change and its
//!    ring leaves nothing to wake us), then clear the mark and go round.
//!
//! Nothing rings while nobody sleeps, so the fast path makes no system
//! call.
//!
//! The same protocol, generic over `Waitable` (every memlink participant
//! that can wait: [`Subscriber`](crate::pubsub::Subscriber) for a sample,
//! [`Publisher`](crate::pubsub::Publisher) for room under
//! [`Overflow::Block`](crate::pubsub::Overflow::Block),
//! [`Consumer`](crate::queue::Consumer) for a message,
//! [`Producer`](crate::queue::Producer) for room in its queue), gives:
//!
//! - [`WaitSet`]: one thread waits on many participants at once and learns
//!   which are ready (`futex_waitv` over their bells on Linux,
//!   `WaitForMultipleObjects` over their doorbell events on Windows);
//! - [`ready`] (features `tokio` or `async-io`): an async task waits for
//!   one. On Linux the task sleeps in the executor's reactor on a pollable
//!   doorbell (an abstract Unix datagram socket the ringer writes a byte
//!   to, only while the bell's `listening` word says someone listens
//!   there); on Windows a thread-pool wait on the doorbell event wakes the
//!   task.
//!
//! Several threads and tasks of one process may wait on one participant:
//! a ring wakes them all, and a per-participant count of waiters
//! (`sys::Waiters`) keeps the sleeping mark set until the last one is
//! done, so one that leaves never takes the mark from the others.
//!
//! ```
//! use std::time::Duration;
//! use memlink::pubsub::{Publisher, Subscriber};
//! use memlink::wait::WaitSet;
//! # let a_name = format!("memlink-doc-waitset-a-{}", std::process::id());
//! # let b_name = format!("memlink-doc-waitset-b-{}", std::process::id());
//! let a = Subscriber::<u32>::connect(&a_name)?;
//! let b = Subscriber::<u32>::connect(&b_name)?;
//! let mut set = WaitSet::new();
//! let (ia, ib) = (set.add(&a)?, set.add(&b)?);
//! Publisher::<u32>::connect(&b_name)?.send_copy(&7)?;
//! assert_eq!(set.wait_timeout(Duration::from_secs(5))?, vec![ib]);
//! assert_eq!(*b.try_recv()?.unwrap(), 7);
//! assert!(set.wait_timeout(Duration::from_millis(1))?.is_empty()); // idle
//! # let _ = ia;
//! # Ok::<(), memlink::Error>(())
//! ```

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::sys;
use crate::sys::layout::Bell;

/// How a waiting participant polls before it sleeps: `SPINS` polls with a
/// pause between them, then `YIELDS` polls with the CPU given up between
/// them. Spinning answers in well under a microsecond when the peer runs
/// on another CPU; yielding lets a peer that shares this CPU run at once
/// (and costs one short system call when there is none); only then does
/// the waiter sleep in the kernel.
pub(crate) const SPINS: u32 = 4;
pub(crate) const YIELDS: u32 = 16;

/// What [`WaitSet`] and [`ready`] wait on: memlink's participants that
/// can wait for their peers ([`Subscriber`](crate::pubsub::Subscriber)
/// for a sample, [`Publisher`](crate::pubsub::Publisher) for room to send,
/// and the other messaging participants). Sealed: the sleep protocol
/// behind it is memlink's own.
pub trait Awaitable: sealed::Sealed {}

impl<T: Waitable + Sync> Awaitable for T {}

mod sealed {
    /// The protocol behind [`Awaitable`](super::Awaitable).
    pub trait Sealed {
        /// The participant's side of the sleep protocol.
        #[allow(private_interfaces)]
        fn waitable(&self) -> &(dyn super::Waitable + Sync);
    }

    impl<T: super::Waitable + Sync> Sealed for T {
        #[allow(private_interfaces)]
        fn waitable(&self) -> &(dyn super::Waitable + Sync) {
            self
        }
    }
}

/// A participant that can wait for its peers (the sleep protocol above).
/// Every participant implements it; [`Awaitable`] is its public face.
pub(crate) trait Waitable {
    /// Whether the awaited operation can go on now: a message to take,
    /// room to send, or something the operation will report as an error
    /// (a peer gone). Must not consume anything.
    fn is_ready(&self) -> bool;

    /// This participant's bell in shared memory and its doorbell.
    fn bell(&self) -> (&Bell, &sys::Doorbell);

    /// Sets this participant's sleeping mark, so that the next peer to
    /// make a change rings. SeqCst: pairs with the peer's SeqCst change and
    /// SeqCst load of the mark (a Dekker pairing; the caller fences after).
    fn arm(&self);

    /// Clears the sleeping mark (Relaxed is enough: a stale mark costs the
    /// peer one needless ring).
    fn disarm(&self);

    /// The longest one sleep may last before the waiter looks again by
    /// itself.
    fn recheck(&self) -> Duration {
        Duration::from_millis(50)
    }

    /// Called after a sleep that ended without a ring: the place to test
    /// peers' liveness (a dead peer may be what we wait for).
    fn after_idle(&self) {}
}

/// Polls `ready` briefly: true as soon as it says so.
fn poll_briefly(mut ready: impl FnMut() -> bool) -> bool {
    for poll in 0..SPINS + YIELDS {
        if ready() {
            return true;
        }
        if poll < SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    false
}

/// Counts a waiter in on a doorbell for as long as it lives; the last
/// waiter out clears the sleeping mark (see `sys::Waiters`).
struct Entered<'a, W: Waitable + ?Sized> {
    w: &'a W,
}

impl<'a, W: Waitable + ?Sized> Entered<'a, W> {
    fn new(w: &'a W) -> Self {
        w.bell().1.waiters().enter();
        Entered { w }
    }
}

impl<W: Waitable + ?Sized> Drop for Entered<'_, W> {
    fn drop(&mut self) {
        self.w.bell().1.waiters().leave(|| self.w.disarm());
    }
}

/// Waits until `w` is ready or `deadline` passes; true if ready.
pub(crate) fn wait_until(w: &(impl Waitable + ?Sized), deadline: Option<Instant>) -> bool {
    if poll_briefly(|| w.is_ready()) {
        return true;
    }
    let (bell, doorbell) = w.bell();
    let _entered = Entered::new(w);
    loop {
        // SeqCst: the count is read before the mark is set, so a ring made
        // after the peer saw the mark changes it and the sleep below
        // returns at once.
        let seen = bell.count.load(Ordering::SeqCst);
        w.arm();
        // The readiness check's loads may be Acquire; the fence puts them
        // in the single order after the mark, as the pairing with the
        // peer's change and mark load needs.
        fence(Ordering::SeqCst);
        if w.is_ready() {
            return true;
        }
        let recheck = Instant::now() + w.recheck();
        let until = deadline.map_or(recheck, |d| d.min(recheck));
        doorbell.wait(bell, seen, Some(until));
        if w.is_ready() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        // The mark stays set: a ring clears it (the ringer claims it), and
        // the next round sets it again before its re-check.
        if bell.count.load(Ordering::Relaxed) == seen {
            w.after_idle();
        }
    }
}

/// Waits, as an async task, until `w` is ready: the async form of every
/// blocking wait (receive, send under backpressure). Executor-neutral:
/// under a tokio runtime (feature `tokio`) the task sleeps in tokio's
/// reactor; elsewhere (feature `async-io`: smol, `futures::executor`, ...)
/// in async-io's. Needs one of the two features.
///
/// Cancel-safe: dropping the future leaves nothing behind (the sleeping
/// mark and the `listening` word are cleared when the last waiter of this
/// process leaves) and consumes nothing, since readiness is only looked
/// at. A tokio runtime must have its timer on (`enable_all` or
/// `enable_time`; `#[tokio::main]` does): a sleep also ends by itself
/// after the participant's re-check period (50 ms for a subscriber), to
/// find a sample whose publisher died before it could ring.
///
/// An error says why the task could not sleep (no reactor to sleep in, or
/// the doorbell socket could not be made).
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use memlink::pubsub::{Publisher, Subscriber};
/// # let name = format!("memlink-doc-ready-{}", std::process::id());
/// let subscriber = Subscriber::<u64>::connect(&name)?;
/// let publisher = Publisher::<u64>::connect(&name)?;
/// let task = async {
///     memlink::wait::ready(&subscriber).await?;   // a sample is there
///     let sample = subscriber.try_recv()?.expect("ready");
///     Ok::<u64, memlink::Error>(*sample)
/// };
/// publisher.send_copy(&5)?;
/// assert_eq!(task.await?, 5);
/// # Ok::<(), memlink::Error>(())
/// # }).unwrap();
/// ```
#[cfg(any(feature = "tokio", feature = "async-io"))]
pub async fn ready<W: Awaitable + ?Sized>(w: &W) -> Result<()> {
    ready_dyn(w.waitable()).await
}

#[cfg(any(feature = "tokio", feature = "async-io"))]
async fn ready_dyn(w: &(dyn Waitable + Sync)) -> Result<()> {
    if poll_briefly(|| w.is_ready()) {
        return Ok(());
    }
    let (bell, doorbell) = w.bell();
    let _listening = Listening::new(bell);
    let _entered = Entered::new(w);
    loop {
        // SeqCst, and the fence: as in `wait_until`.
        let seen = bell.count.load(Ordering::SeqCst);
        w.arm();
        fence(Ordering::SeqCst);
        if w.is_ready() {
            return Ok(());
        }
        doorbell.rung(bell, seen, w.recheck()).await?;
        if w.is_ready() {
            return Ok(());
        }
        if bell.count.load(Ordering::Relaxed) == seen {
            w.after_idle();
        }
    }
}

/// Raises the bell's `listening` word for as long as it lives: ringers
/// then also signal the pollable doorbell. A count of this process's
/// async waiters (the word is the place holder's alone; a new holder
/// starts it at zero).
#[cfg(any(feature = "tokio", feature = "async-io"))]
struct Listening<'a>(&'a Bell);

#[cfg(any(feature = "tokio", feature = "async-io"))]
impl<'a> Listening<'a> {
    fn new(bell: &'a Bell) -> Self {
        // SeqCst: before the sleeping mark is set, so a ringer that sees
        // the mark sees this too (its SeqCst load after its mark load).
        bell.listening.fetch_add(1, Ordering::SeqCst);
        Listening(bell)
    }
}

#[cfg(any(feature = "tokio", feature = "async-io"))]
impl Drop for Listening<'_> {
    fn drop(&mut self) {
        // Relaxed: a stale non-zero costs a ringer one needless send.
        self.0.listening.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits on several participants at once: blocks until one or more of
/// them is ready (a sample to take, room to send) and says which, by the
/// index [`add`](WaitSet::add) gave them. Nothing is consumed: take what
/// is ready from the participants themselves.
///
/// It sleeps in one system call over all the members' doorbells
/// (`futex_waitv` on Linux 5.16 or later, up to 128 members;
/// `WaitForMultipleObjects` on Windows, up to 64); peers ring it only
/// when it sleeps, as for a single blocking receive. See the [module
/// docs](self) for an example.
///
/// On Windows a doorbell event wakes one waiter per ring: a wait set and
/// another thread of the same process that wait on the same participant
/// at once may see the other's ring late (within the re-check period,
/// 50 ms).
pub struct WaitSet<'a> {
    members: Vec<&'a (dyn Waitable + Sync)>,
}

impl<'a> WaitSet<'a> {
    /// An empty set.
    pub fn new() -> WaitSet<'a> {
        WaitSet {
            members: Vec::new(),
        }
    }

    /// Adds a participant; returns its index, which [`wait`](WaitSet::wait)
    /// reports when it is ready. A set holds at most 128 members on Linux
    /// and 64 on Windows (a
    /// [`LimitReached`](crate::ErrorKind::LimitReached) error past that).
    pub fn add<W: Awaitable + ?Sized>(&mut self, w: &'a W) -> Result<usize> {
        let w = w.waitable();
        if self.members.len() >= sys::WAIT_ANY_MAX {
            let (kind, name) = w.bell().1.object();
            return Err(
                Error::new(Operation::Wait, kind, name, ErrorKind::LimitReached).with_detail(
                    format!(
                        "a wait set holds at most {} members on this platform",
                        sys::WAIT_ANY_MAX
                    ),
                ),
            );
        }
        self.members.push(w);
        Ok(self.members.len() - 1)
    }

    /// How many members the set has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The indices of the members that are ready now, without waiting.
    pub fn ready(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].is_ready())
            .collect()
    }

    /// Waits until at least one member is ready; returns the ready ones
    /// (never empty, unless the set is).
    pub fn wait(&self) -> Result<Vec<usize>> {
        self.wait_until(None)
    }

    /// Waits at most `timeout` for a member to be ready; returns the ready
    /// ones, empty when the time ran out.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Vec<usize>> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<Vec<usize>> {
        if self.members.is_empty() {
            return Ok(Vec::new());
        }
        let mut ready = Vec::new();
        if poll_briefly(|| {
            ready = self.ready();
            !ready.is_empty()
        }) {
            return Ok(ready);
        }
        let _entered: Vec<_> = self.members.iter().map(|&w| Entered::new(w)).collect();
        let recheck = self.members.iter().map(|w| w.recheck()).min();
        let recheck = recheck.unwrap_or(Duration::from_millis(50));
        loop {
            // SeqCst, and the fence: as in `wait_until`, for every member.
            let armed: Vec<sys::Armed<'_>> = self
                .members
                .iter()
                .map(|w| {
                    let (bell, doorbell) = w.bell();
                    let seen = bell.count.load(Ordering::SeqCst);
                    w.arm();
                    sys::Armed {
                        bell,
                        doorbell,
                        seen,
                    }
                })
                .collect();
            fence(Ordering::SeqCst);
            let ready = self.ready();
            if !ready.is_empty() {
                return Ok(ready);
            }
            let until = Instant::now() + recheck;
            sys::Doorbell::wait_any(&armed, Some(deadline.map_or(until, |d| d.min(until))))?;
            let ready = self.ready();
            if !ready.is_empty() {
                return Ok(ready);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(ready);
            }
            for (w, a) in self.members.iter().zip(&armed) {
                if a.bell.count.load(Ordering::Relaxed) == a.seen {
                    w.after_idle();
                }
            }
        }
    }
}

impl Default for WaitSet<'_> {
    fn default() -> Self {
        WaitSet::new()
    }
}

impl std::fmt::Debug for WaitSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitSet")
            .field("members", &self.members.len())
            .finish()
    }
}
