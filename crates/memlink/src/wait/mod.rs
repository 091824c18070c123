//! Waiting for messaging participants: the one sleep protocol every
//! blocking call uses.
//!
//! A participant that must wait (a subscriber with nothing to take, a
//! publisher with no room) is a [`Waitable`]: it can say whether it could
//! go on now, and it has a [`Bell`] in shared memory with a sleeping mark
//! that the other side checks after each change it makes. The protocol:
//!
//! 1. poll a few times ([`SPINS`] with a pause, then [`YIELDS`] giving up
//!    the CPU), which answers at once when the peer is running;
//! 2. read the bell's count, set the sleeping mark (SeqCst), fence, and
//!    check again: the other side either sees the mark and rings, or made
//!    its change before the check, which sees it;
//! 3. sleep on the doorbell while the count is unchanged, never longer
//!    than [`Waitable::recheck`] (a peer killed between its change and its
//!    ring leaves nothing to wake us), then clear the mark and go round.
//!
//! Nothing rings while nobody sleeps, so the fast path makes no system
//! call.

use std::time::{Duration, Instant};

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

/// A participant that can wait for its peers.
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

/// Waits until `w` is ready or `deadline` passes; true if ready.
pub(crate) fn wait_until(w: &impl Waitable, deadline: Option<Instant>) -> bool {
    for poll in 0..SPINS + YIELDS {
        if w.is_ready() {
            return true;
        }
        if poll < SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    let (bell, doorbell) = w.bell();
    loop {
        // SeqCst: the count is read before the mark is set, so a ring made
        // after the peer saw the mark changes it and the sleep below
        // returns at once.
        let seen = bell.count.load(std::sync::atomic::Ordering::SeqCst);
        w.arm();
        // The readiness check's loads may be Acquire; the fence puts them
        // in the single order after the mark, as the pairing with the
        // peer's change and mark load needs.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if w.is_ready() {
            w.disarm();
            return true;
        }
        let recheck = Instant::now() + w.recheck();
        let until = deadline.map_or(recheck, |d| d.min(recheck));
        doorbell.wait(bell, seen, Some(until));
        w.disarm();
        if w.is_ready() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        if bell.count.load(std::sync::atomic::Ordering::Relaxed) == seen {
            w.after_idle();
        }
    }
}
