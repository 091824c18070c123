//! Windows doorbells: the named auto-reset events `NAME#w<index>`, made or
//! opened by the sleeper and by everyone who rings it (the same object for
//! all of them while any of them holds it). An auto-reset event keeps a
//! ring that came before the wait, so none is lost. `WaitOnAddress` cannot
//! be used: it wakes only threads of the same process.
//!
//! A wait set waits on several events with `WaitForMultipleObjects` (at
//! most 64). An async task cannot put an event into its executor's
//! reactor (tokio has no way to; async-io's goes through the thread pool
//! too), so it registers a thread-pool wait on the event
//! (`RegisterWaitForSingleObject`, once, with the re-check period as its
//! timeout) whose callback wakes every task of this process waiting on the
//! doorbell: one thread hop per wake-up, on a pool thread, whatever the
//! executor.

use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use windows_sys::Win32::Foundation::{FALSE, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT};
use windows_sys::Win32::System::Threading::{
    CreateEventW, SetEvent, WaitForMultipleObjects, WaitForSingleObject,
};

use super::errors::{last_error, os_error};
use super::names::{kernel_name, wide};
use super::sync::millis_until;
use super::Handle;
use crate::error::{ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::layout::Bell;
use crate::sys::{Armed, Waiters};

/// How many events `WaitForMultipleObjects` takes (MAXIMUM_WAIT_OBJECTS).
pub(crate) const WAIT_ANY_MAX: usize = 64;

/// A participant's doorbell: its named auto-reset event.
#[derive(Debug)]
pub(crate) struct Doorbell {
    /// Shared with the thread-pool wait of async tasks, which may outlive
    /// the doorbell by one callback.
    event: Arc<OwnedHandle>,
    waiters: Waiters,
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    bridge: std::sync::OnceLock<Arc<bridge::Bridge>>,
    /// For errors.
    kind: ObjectKind,
    name: Name,
}

impl Doorbell {
    /// The doorbell of place `index` of the object `handle` refers to.
    pub(crate) fn new(handle: &Handle, index: u32) -> Result<Doorbell> {
        let name = wide(&format!("{}#w{index}", kernel_name(&handle.name)));
        // SAFETY: default security, auto-reset, initially clear; the
        // NUL-terminated name outlives the call. Opens the event if it exists.
        let raw = unsafe { CreateEventW(ptr::null(), FALSE, FALSE, name.as_ptr()) };
        if raw.is_null() {
            return Err(os_error(
                Operation::Connect,
                handle.kind,
                &handle.name,
                last_error(),
            ));
        }
        // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
        let event = unsafe { OwnedHandle::from_raw_handle(raw) };
        Ok(Doorbell {
            event: Arc::new(event),
            waiters: Waiters::default(),
            #[cfg(any(feature = "tokio", feature = "async-io"))]
            bridge: std::sync::OnceLock::new(),
            kind: handle.kind,
            name: handle.name.clone(),
        })
    }

    /// The kind and name of the object, for errors.
    pub(crate) fn object(&self) -> (ObjectKind, &str) {
        (self.kind, self.name.given())
    }

    /// The threads and tasks of this process that wait on this doorbell.
    pub(crate) fn waiters(&self) -> &Waiters {
        &self.waiters
    }

    /// Sleeps while `bell.count` holds `seen`, until rung or `deadline`.
    /// Returns false once the deadline has passed; may return early.
    pub(crate) fn wait(&self, bell: &Bell, seen: u32, deadline: Option<Instant>) -> bool {
        // Acquire pairs with the ringer's SeqCst increment: a ring already
        // made is seen here without sleeping (the event would say so too).
        if bell.count.load(Ordering::Acquire) != seen {
            return true;
        }
        // SAFETY: the handle is valid for the call and has SYNCHRONIZE.
        let outcome =
            unsafe { WaitForSingleObject(self.event.as_raw_handle(), millis_until(deadline)) };
        match outcome {
            WAIT_OBJECT_0 => true,
            WAIT_TIMEOUT => deadline.is_none_or(|d| Instant::now() < d),
            // A failed wait is treated as a spurious wake-up; the caller's
            // deadline still bounds it.
            _ => true,
        }
    }

    /// Rings: bumps `bell.count` (SeqCst, so a sleeper that read it before
    /// setting its sleeping mark sees the change), then sets the event,
    /// which wakes a thread, a wait set or the thread-pool wait of async
    /// tasks alike.
    pub(crate) fn ring(&self, bell: &Bell) {
        bell.count.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the handle is valid and was opened with all access.
        let _ = unsafe { SetEvent(self.event.as_raw_handle()) };
    }

    /// Sleeps until one of `members` is rung or `deadline` passes.
    pub(crate) fn wait_any(members: &[Armed<'_>], deadline: Option<Instant>) -> Result<()> {
        // Acquire: as in `wait`.
        if members
            .iter()
            .any(|m| m.bell.count.load(Ordering::Acquire) != m.seen)
        {
            return Ok(());
        }
        let mut handles: Vec<_> = members
            .iter()
            .map(|m| m.doorbell.event.as_raw_handle())
            .collect();
        // The same participant twice is one event: the call refuses copies.
        handles.sort_unstable();
        handles.dedup();
        // SAFETY: every handle is a valid event with SYNCHRONIZE, kept open
        // by its doorbell, which `members` borrows for the call; at most
        // WAIT_ANY_MAX of them (the wait set checks).
        let outcome = unsafe {
            WaitForMultipleObjects(
                handles.len() as u32,
                handles.as_ptr(),
                FALSE,
                millis_until(deadline),
            )
        };
        if outcome == WAIT_FAILED {
            let first = members[0].doorbell;
            return Err(os_error(
                Operation::Wait,
                first.kind,
                &first.name,
                last_error(),
            ));
        }
        Ok(())
    }

    /// Waits, as an async task, until this doorbell is rung (the count is
    /// no longer `seen`, or the event fired) or `recheck` has passed.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub(crate) async fn rung(
        &self,
        bell: &Bell,
        seen: u32,
        recheck: std::time::Duration,
    ) -> Result<()> {
        let bridge = self
            .bridge
            .get_or_init(|| Arc::new(bridge::Bridge::new(self.event.clone())));
        bridge
            .fired(bell, seen, recheck)
            .await
            .map_err(|code| os_error(Operation::Wait, self.kind, &self.name, code))
    }
}

/// The thread-pool wait that wakes async tasks.
#[cfg(any(feature = "tokio", feature = "async-io"))]
mod bridge {
    use std::ffi::c_void;
    use std::future::poll_fn;
    use std::os::windows::io::{AsRawHandle, OwnedHandle};
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::task::{Poll, Waker};
    use std::time::Duration;

    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::Threading::{
        RegisterWaitForSingleObject, UnregisterWait, WT_EXECUTEONLYONCE,
    };

    use super::super::errors::last_error;
    use crate::sys::layout::Bell;

    /// One doorbell's bridge from its event to the wakers of the tasks
    /// waiting on it.
    #[derive(Debug)]
    pub(super) struct Bridge {
        event: Arc<OwnedHandle>,
        state: Mutex<State>,
    }

    #[derive(Debug, Default)]
    struct State {
        /// How many times the pool wait fired (rung, or timed out).
        fired: u64,
        /// The tasks to wake when it fires next.
        wakers: Vec<Waker>,
        /// The pool wait registered now, if any (a HANDLE, kept as an
        /// address so that the state is `Send`).
        wait: Option<usize>,
    }

    impl Bridge {
        pub(super) fn new(event: Arc<OwnedHandle>) -> Bridge {
            Bridge {
                event,
                state: Mutex::new(State::default()),
            }
        }

        fn state(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// Waits until the pool wait fires (the event was set, or `recheck`
        /// passed) or the count moves off `seen`; a Win32 error code if the
        /// wait could not be registered.
        pub(super) async fn fired(
            self: &Arc<Self>,
            bell: &Bell,
            seen: u32,
            recheck: Duration,
        ) -> Result<(), u32> {
            let start = self.state().fired;
            poll_fn(|cx| {
                let mut state = self.state();
                if state.fired != start {
                    return Poll::Ready(Ok(()));
                }
                if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    state.wakers.push(cx.waker().clone());
                }
                if state.wait.is_none() {
                    self.register(&mut state, recheck)?;
                }
                drop(state);
                // SeqCst: read after our waker is in place, so a ring this
                // misses fires the pool wait later. Pairs with the ringer's
                // SeqCst bump.
                if bell.count.load(Ordering::SeqCst) != seen {
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            })
            .await
        }

        /// Registers the pool wait, holding the state lock, so that its
        /// callback (which takes the lock) finds the wait handle stored.
        fn register(self: &Arc<Self>, state: &mut State, recheck: Duration) -> Result<(), u32> {
            let context = Arc::into_raw(self.clone());
            let millis = u32::try_from(recheck.as_millis()).unwrap_or(u32::MAX - 1);
            let mut wait: HANDLE = std::ptr::null_mut();
            // SAFETY: `wait` is a valid out pointer; the event stays open as
            // long as the bridge, which the callback's reference (`context`,
            // one strong count handed over) keeps alive until it has run.
            let ok = unsafe {
                RegisterWaitForSingleObject(
                    &mut wait,
                    self.event.as_raw_handle(),
                    Some(fired_callback),
                    context.cast(),
                    millis.max(1),
                    WT_EXECUTEONLYONCE,
                )
            };
            if ok == 0 {
                let code = last_error();
                // SAFETY: the registration failed, so no callback owns the
                // reference made for it; take it back.
                drop(unsafe { Arc::from_raw(context) });
                return Err(code);
            }
            state.wait = Some(wait as usize);
            Ok(())
        }
    }

    /// The pool wait fired: count it, unregister it and wake every task.
    unsafe extern "system" fn fired_callback(context: *mut c_void, _timed_out: bool) {
        // SAFETY: `context` is the strong reference `register` handed over
        // for this one callback (WT_EXECUTEONLYONCE: it runs once).
        let bridge = unsafe { Arc::from_raw(context.cast::<Bridge>().cast_const()) };
        let (wakers, wait) = {
            let mut state = bridge.state();
            state.fired += 1;
            (std::mem::take(&mut state.wakers), state.wait.take())
        };
        if let Some(wait) = wait {
            // From the callback, the non-blocking form: it returns
            // ERROR_IO_PENDING for the callback that is running (this one)
            // and frees the wait once it is done.
            // SAFETY: the handle came from RegisterWaitForSingleObject and
            // is unregistered once, here.
            let _ = unsafe { UnregisterWait(wait as HANDLE) };
        }
        for waker in wakers {
            waker.wake();
        }
    }
}
