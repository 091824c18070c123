//! Named mutexes, semaphores and events.

use std::ffi::c_char;
use std::sync::Mutex as Lock;
use std::thread::ThreadId;

use memlink::{
    Disposition, Event, EventReset, Lifetime, Mutex, MutexGuard, Semaphore, SyncOptions,
};

use crate::{
    call, clear, free, give, handle, out, put, string, timeout, Failure, Ffi, MemlinkError,
};

/// A handle to a named mutex (robust: a holder that dies releases it, and
/// the next locker is told).
pub struct MemlinkMutex {
    /// The locks this handle holds, each with the thread that took it.
    /// Declared first: dropped (unlocked) before `mutex`.
    guards: Lock<Vec<(ThreadId, MutexGuard<'static>)>>,
    /// Boxed so that its address, which the guards borrow, never moves.
    mutex: Box<Mutex>,
}

/// A handle to a named counting semaphore.
pub struct MemlinkSemaphore(Semaphore);

/// A handle to a named event (manual- or auto-reset).
pub struct MemlinkEvent(Event);

/// How to create a sync object; a zeroed struct (or NULL) means the
/// defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MemlinkSyncOptions {
    /// Unix permission bits; 0 means the default, 0600 (the creating user
    /// only).
    pub mode: u32,
    /// Live until removed (`memlink_remove`) instead of until the last
    /// handle closes; unsupported on Windows.
    pub persistent: bool,
}

/// # Safety
/// `options` is NULL or points at a valid options struct.
unsafe fn sync_options(options: *const MemlinkSyncOptions) -> SyncOptions {
    let mut s = SyncOptions::new();
    // SAFETY: NULL or a valid options struct, by the caller's contract.
    if let Some(o) = unsafe { options.as_ref() } {
        if o.mode != 0 {
            s = s.mode(o.mode);
        }
        if o.persistent {
            s = s.lifetime(Lifetime::Persistent);
        }
    }
    s
}

/// Runs `open` for the C function `function` with the name `name` and
/// stores the handle it makes.
///
/// # Safety
/// `name` is NULL or a C string; `result` is NULL or writable.
unsafe fn make<T>(
    function: &str,
    name: *const c_char,
    result: *mut *mut T,
    open: impl FnOnce(&str) -> Ffi<T>,
) -> MemlinkError {
    clear(result);
    call(function, || {
        let out = out(result, function, "out")?;
        // SAFETY: NULL or a C string, by the caller's contract.
        let name = unsafe { string(name, function, "name") }?;
        give(out, open(name)?);
        Ok(())
    })
}

fn new_mutex(mutex: Mutex) -> MemlinkMutex {
    MemlinkMutex {
        guards: Lock::new(Vec::new()),
        mutex: Box::new(mutex),
    }
}

/// Creates the mutex `name`, unlocked; the name must be free. `options`
/// may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_mutex_create(
    name: *const c_char,
    options: *const MemlinkSyncOptions,
    mutex: *mut *mut MemlinkMutex,
) -> MemlinkError {
    // SAFETY: NULL or a valid struct, by the C contract.
    let options = unsafe { sync_options(options) };
    // SAFETY: forwarded from the C contract.
    unsafe {
        make("memlink_mutex_create", name, mutex, |n| {
            Ok(new_mutex(Mutex::create_with(n, &options)?))
        })
    }
}

/// Opens the existing mutex `name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_mutex_open(
    name: *const c_char,
    mutex: *mut *mut MemlinkMutex,
) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe {
        make("memlink_mutex_open", name, mutex, |n| {
            Ok(new_mutex(Mutex::open(n)?))
        })
    }
}

/// Creates the mutex `name` or opens it; `*created` (may be NULL) says
/// which.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_mutex_create_or_open(
    name: *const c_char,
    mutex: *mut *mut MemlinkMutex,
    created: *mut bool,
) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe {
        make("memlink_mutex_create_or_open", name, mutex, |n| {
            let (m, d) = Mutex::create_or_open(n)?;
            put(created, d == Disposition::Created);
            Ok(new_mutex(m))
        })
    }
}

/// Locks the mutex, waiting at most `timeout_ms` (`MEMLINK_WAIT_FOREVER`:
/// as long as it takes; 0: only tries), then `MEMLINK_ERROR_TIMEOUT`.
/// `*abandoned` (may be NULL) is true when the previous holder died
/// holding it: the data it protects may be half-updated. The lock belongs
/// to the calling thread; `memlink_mutex_unlock` must come from it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_mutex_lock(
    mutex: *const MemlinkMutex,
    timeout_ms: i64,
    abandoned: *mut bool,
) -> MemlinkError {
    const F: &str = "memlink_mutex_lock";
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let m = unsafe { handle(mutex, F, "mutex") }?;
        // SAFETY: the box's contents never move and outlive every guard:
        // `guards` is dropped before `mutex` (field order), and `unlock`
        // drops guards while the handle is alive.
        let target: &'static Mutex = unsafe { &*(&*m.mutex as *const Mutex) };
        let guard = match timeout(timeout_ms) {
            None => target.lock()?,
            Some(t) => target.lock_timeout(t)?,
        };
        put(abandoned, guard.was_abandoned());
        let me = std::thread::current().id();
        lock_guards(m).push((me, guard));
        Ok(())
    })
}

fn lock_guards(
    m: &MemlinkMutex,
) -> std::sync::MutexGuard<'_, Vec<(ThreadId, MutexGuard<'static>)>> {
    // A panic while the list was locked cannot leave it half-changed
    // (push and remove are whole), so a poisoned lock is still usable.
    m.guards.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unlocks the mutex, which the calling thread locked through this handle
/// (else `MEMLINK_ERROR_INVALID_ARGUMENT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_mutex_unlock(mutex: *const MemlinkMutex) -> MemlinkError {
    const F: &str = "memlink_mutex_unlock";
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let m = unsafe { handle(mutex, F, "mutex") }?;
        let me = std::thread::current().id();
        let mut guards = lock_guards(m);
        let Some(i) = guards.iter().rposition(|(t, _)| *t == me) else {
            return Err(crate::invalid(
                F,
                format_args!("mutex {:?} is not locked by this thread", m.mutex.name()),
            ));
        };
        drop(guards.remove(i));
        Ok(())
    })
}

/// Closes a mutex handle, unlocking what it holds. NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_mutex_close(mutex: *mut MemlinkMutex) -> MemlinkError {
    call("memlink_mutex_close", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(mutex) };
        Ok(())
    })
}

/// Creates the semaphore `name` with count `initial`, at most `max`.
/// `options` may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_semaphore_create(
    name: *const c_char,
    initial: u32,
    max: u32,
    options: *const MemlinkSyncOptions,
    semaphore: *mut *mut MemlinkSemaphore,
) -> MemlinkError {
    // SAFETY: NULL or a valid struct, by the C contract.
    let options = unsafe { sync_options(options) };
    // SAFETY: forwarded from the C contract.
    unsafe {
        make("memlink_semaphore_create", name, semaphore, |n| {
            Ok(MemlinkSemaphore(Semaphore::create_with(
                n, initial, max, &options,
            )?))
        })
    }
}

/// Opens the existing semaphore `name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_semaphore_open(
    name: *const c_char,
    semaphore: *mut *mut MemlinkSemaphore,
) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe {
        make("memlink_semaphore_open", name, semaphore, |n| {
            Ok(MemlinkSemaphore(Semaphore::open(n)?))
        })
    }
}

/// Creates the semaphore `name` or opens it (keeping its count);
/// `*created` (may be NULL) says which.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_semaphore_create_or_open(
    name: *const c_char,
    initial: u32,
    max: u32,
    semaphore: *mut *mut MemlinkSemaphore,
    created: *mut bool,
) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe {
        make("memlink_semaphore_create_or_open", name, semaphore, |n| {
            let (s, d) = Semaphore::create_or_open(n, initial, max)?;
            put(created, d == Disposition::Created);
            Ok(MemlinkSemaphore(s))
        })
    }
}

/// Takes one from the count, waiting at most `timeout_ms` for it to be
/// positive, then `MEMLINK_ERROR_TIMEOUT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_semaphore_wait(
    semaphore: *const MemlinkSemaphore,
    timeout_ms: i64,
) -> MemlinkError {
    const F: &str = "memlink_semaphore_wait";
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let s = &unsafe { handle(semaphore, F, "semaphore") }?.0;
        match timeout(timeout_ms) {
            None => s.wait()?,
            Some(t) => s.wait_timeout(t)?,
        }
        Ok(())
    })
}

/// Adds `n` to the count; past the maximum is an error and changes
/// nothing. `*previous` (may be NULL) gets the count before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_semaphore_release(
    semaphore: *const MemlinkSemaphore,
    n: u32,
    previous: *mut u32,
) -> MemlinkError {
    const F: &str = "memlink_semaphore_release";
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let s = &unsafe { handle(semaphore, F, "semaphore") }?.0;
        put(previous, s.release(n)?);
        Ok(())
    })
}

/// Closes a semaphore handle. NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_semaphore_close(semaphore: *mut MemlinkSemaphore) -> MemlinkError {
    call("memlink_semaphore_close", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(semaphore) };
        Ok(())
    })
}

fn reset_kind(manual_reset: bool) -> EventReset {
    if manual_reset {
        EventReset::Manual
    } else {
        EventReset::Auto
    }
}

/// Creates the event `name`: manual-reset (stays set, releasing every
/// waiter, until reset) or auto-reset (each set releases one waiter).
/// `options` may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_event_create(
    name: *const c_char,
    manual_reset: bool,
    initially_set: bool,
    options: *const MemlinkSyncOptions,
    event: *mut *mut MemlinkEvent,
) -> MemlinkError {
    // SAFETY: NULL or a valid struct, by the C contract.
    let options = unsafe { sync_options(options) };
    // SAFETY: forwarded from the C contract.
    unsafe {
        make("memlink_event_create", name, event, |n| {
            Ok(MemlinkEvent(Event::create_with(
                n,
                reset_kind(manual_reset),
                initially_set,
                &options,
            )?))
        })
    }
}

/// Opens the existing event `name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_event_open(
    name: *const c_char,
    event: *mut *mut MemlinkEvent,
) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe {
        make("memlink_event_open", name, event, |n| {
            Ok(MemlinkEvent(Event::open(n)?))
        })
    }
}

/// Creates the event `name` or opens it (keeping its kind and state);
/// `*created` (may be NULL) says which.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_event_create_or_open(
    name: *const c_char,
    manual_reset: bool,
    initially_set: bool,
    event: *mut *mut MemlinkEvent,
    created: *mut bool,
) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe {
        make("memlink_event_create_or_open", name, event, |n| {
            let (e, d) = Event::create_or_open(n, reset_kind(manual_reset), initially_set)?;
            put(created, d == Disposition::Created);
            Ok(MemlinkEvent(e))
        })
    }
}

/// # Safety
/// `event` is NULL or a live handle.
unsafe fn with_event(
    function: &str,
    event: *const MemlinkEvent,
    act: impl FnOnce(&Event) -> memlink::Result<()>,
) -> MemlinkError {
    call(function, || {
        // SAFETY: NULL or a live handle, by the caller's contract.
        let e = &unsafe { handle(event, function, "event") }?.0;
        act(e).map_err(Failure::from)
    })
}

/// Sets the event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_event_set(event: *const MemlinkEvent) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe { with_event("memlink_event_set", event, Event::set) }
}

/// Resets the event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_event_reset(event: *const MemlinkEvent) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe { with_event("memlink_event_reset", event, Event::reset) }
}

/// Waits at most `timeout_ms` for the event to be set, then
/// `MEMLINK_ERROR_TIMEOUT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_event_wait(
    event: *const MemlinkEvent,
    timeout_ms: i64,
) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe {
        with_event("memlink_event_wait", event, |e| match timeout(timeout_ms) {
            None => e.wait(),
            Some(t) => e.wait_timeout(t),
        })
    }
}

/// Closes an event handle. NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_event_close(event: *mut MemlinkEvent) -> MemlinkError {
    call("memlink_event_close", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(event) };
        Ok(())
    })
}
