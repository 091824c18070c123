//! Named synchronization objects: mutex, semaphore and event, usable across
//! processes, with the same names, lifetime and crash rules as regions.
//!
//! On Windows they are the native kernel objects (`CreateMutexW`,
//! `CreateSemaphoreW`, `CreateEventW`). On Linux each is a small memlink
//! object in `/dev/shm`: the mutex a robust process-shared pthread mutex,
//! the semaphore and event futex words; waiters sleep in the kernel.
//! Timeouts are [`ErrorKind::Timeout`] errors; `try_*` methods never wait.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::object::create_or_open;
use crate::sys::{self, CreateSpec, Wait};
use crate::types::{Disposition, EventReset, Lifetime};

/// Options for creating a named sync object: its lifetime and who may open
/// it (Unix permission bits; default `0o600`).
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    lifetime: Lifetime,
    mode: u32,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions::new()
    }
}

impl SyncOptions {
    /// The defaults: [`Lifetime::LastHandle`], private to the creating user.
    pub fn new() -> SyncOptions {
        SyncOptions {
            lifetime: Lifetime::LastHandle,
            mode: 0o600,
        }
    }

    /// How long the object lives ([`Lifetime::Persistent`] is unsupported
    /// on Windows).
    pub fn lifetime(mut self, lifetime: Lifetime) -> SyncOptions {
        self.lifetime = lifetime;
        self
    }

    /// Who may open the object, as Unix permission bits.
    pub fn mode(mut self, mode: u32) -> SyncOptions {
        self.mode = mode & 0o777;
        self
    }

    fn spec(&self) -> CreateSpec {
        CreateSpec {
            size: 0, // the platform layer sizes sync objects itself
            lifetime: self.lifetime,
            mode: self.mode,
            reserve: true,
        }
    }
}

fn deadline(timeout: Duration) -> Instant {
    // A timeout too long to represent is as good as none, but callers that
    // asked for a timeout get a deadline: a year is beyond any test.
    Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600))
}

/// What a wait with a timeout on a semaphore or event reports.
fn waited(outcome: Wait, kind: ObjectKind, name: &Name, timeout: Duration) -> Result<()> {
    match outcome {
        Wait::TimedOut => Err(timed_out(Operation::Wait, kind, name, timeout)),
        Wait::Acquired | Wait::Abandoned => Ok(()),
    }
}

fn timed_out(op: Operation, kind: ObjectKind, name: &Name, timeout: Duration) -> Error {
    Error::new(op, kind, name.given(), ErrorKind::Timeout)
        .with_detail(format!("gave up after {timeout:?}"))
}

/// A named mutex, shared between processes. Robust: when a holder dies
/// holding it, the next locker gets it with [`MutexGuard::was_abandoned`]
/// set, as Windows reports `WAIT_ABANDONED`, and should check the data the
/// mutex protects.
///
/// Not reentrant: locking it again from the thread that holds it is an
/// [`ErrorKind::WouldDeadlock`] error on Linux (Windows mutexes are
/// reentrant and let it succeed).
///
/// ```
/// use memlink::Mutex;
/// # let name = format!("memlink-doc-mutex-{}", std::process::id());
/// let mutex = Mutex::create(&name)?;
/// {
///     let guard = mutex.lock()?;
///     assert!(!guard.was_abandoned());
///     // ... work on the shared data ...
/// } // unlocked here
/// assert!(mutex.try_lock()?.is_some());
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Mutex {
    raw: sys::RawMutex,
    name: Name,
}

/// Holds a [`Mutex`] locked; unlocks it when dropped. Stays on the thread
/// that locked it, as the OS requires.
pub struct MutexGuard<'a> {
    mutex: &'a Mutex,
    abandoned: bool,
    _not_send: PhantomData<*const ()>,
}

impl Mutex {
    /// Creates a mutex, unlocked; the name must be free.
    pub fn create(name: &str) -> Result<Mutex> {
        Mutex::create_with(name, &SyncOptions::new())
    }

    /// Creates a mutex with the given options.
    pub fn create_with(name: &str, options: &SyncOptions) -> Result<Mutex> {
        let name = Name::parse(name, Operation::Create, ObjectKind::Mutex)?;
        let raw = sys::RawMutex::create(&name, &options.spec())?;
        Ok(Mutex { raw, name })
    }

    /// Opens an existing mutex.
    pub fn open(name: &str) -> Result<Mutex> {
        Mutex::open_named(&Name::parse_existing(
            name,
            Operation::Open,
            ObjectKind::Mutex,
        )?)
    }

    /// Creates the mutex or opens it if it exists; says which happened.
    pub fn create_or_open(name: &str) -> Result<(Mutex, Disposition)> {
        let parsed = Name::parse(name, Operation::CreateOrOpen, ObjectKind::Mutex)?;
        Mutex::create_or_open_named(&parsed)
    }

    /// Opens the mutex called `name`, parsed already.
    pub(crate) fn open_named(name: &Name) -> Result<Mutex> {
        let raw = sys::RawMutex::open(name)?;
        Ok(Mutex {
            raw,
            name: name.clone(),
        })
    }

    /// `create_or_open` of a name parsed already (or derived, as the mutex
    /// beside a `Shared` value is).
    pub(crate) fn create_or_open_named(name: &Name) -> Result<(Mutex, Disposition)> {
        let spec = SyncOptions::new().spec();
        create_or_open(
            name,
            ObjectKind::Mutex,
            |n| {
                Ok(Mutex {
                    raw: sys::RawMutex::create(n, &spec)?,
                    name: n.clone(),
                })
            },
            |n| {
                Ok(Mutex {
                    raw: sys::RawMutex::open(n)?,
                    name: n.clone(),
                })
            },
        )
    }

    /// The mutex's name.
    pub fn name(&self) -> &str {
        self.name.given()
    }

    /// Locks, waiting as long as it takes.
    pub fn lock(&self) -> Result<MutexGuard<'_>> {
        match self.raw.lock(None)? {
            Wait::TimedOut => unreachable!("a wait without deadline cannot time out"),
            wait => Ok(self.guard(wait)),
        }
    }

    /// Locks, waiting at most `timeout`; then an [`ErrorKind::Timeout`]
    /// error. On Linux the wait is measured on the wall clock
    /// (`pthread_mutex_timedlock`), so stepping the system clock during the
    /// wait lengthens or shortens it.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_>> {
        match self.raw.lock(Some(deadline(timeout)))? {
            Wait::TimedOut => Err(timed_out(
                Operation::Lock,
                ObjectKind::Mutex,
                &self.name,
                timeout,
            )),
            wait => Ok(self.guard(wait)),
        }
    }

    /// Locks if nobody holds the mutex; `None` if someone does.
    pub fn try_lock(&self) -> Result<Option<MutexGuard<'_>>> {
        Ok(match self.raw.lock(Some(Instant::now()))? {
            Wait::TimedOut => None,
            wait => Some(self.guard(wait)),
        })
    }

    fn guard(&self, wait: Wait) -> MutexGuard<'_> {
        MutexGuard {
            mutex: self,
            abandoned: wait == Wait::Abandoned,
            _not_send: PhantomData,
        }
    }
}

impl MutexGuard<'_> {
    /// Whether the previous holder died holding the lock (Windows'
    /// `WAIT_ABANDONED`): the data it protects may be half-updated.
    pub fn was_abandoned(&self) -> bool {
        self.abandoned
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        self.mutex.raw.unlock();
    }
}

impl fmt::Debug for Mutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("name", &self.name.given())
            .finish()
    }
}

impl fmt::Debug for MutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("mutex", &self.mutex.name.given())
            .field("abandoned", &self.abandoned)
            .finish()
    }
}

/// A named counting semaphore, shared between processes.
///
/// ```
/// use memlink::Semaphore;
/// # let name = format!("memlink-doc-sem-{}", std::process::id());
/// let sem = Semaphore::create(&name, 1, 2)?; // count 1, at most 2
/// assert!(sem.try_wait()?);
/// assert!(!sem.try_wait()?);
/// assert_eq!(sem.release(2)?, 0); // returns the count before
/// assert!(sem.release(1).is_err()); // past the maximum
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Semaphore {
    raw: sys::RawSemaphore,
    name: Name,
}

impl Semaphore {
    /// Creates a semaphore with count `initial` and maximum `max`.
    pub fn create(name: &str, initial: u32, max: u32) -> Result<Semaphore> {
        Semaphore::create_with(name, initial, max, &SyncOptions::new())
    }

    /// Creates a semaphore with the given options.
    pub fn create_with(
        name: &str,
        initial: u32,
        max: u32,
        options: &SyncOptions,
    ) -> Result<Semaphore> {
        let name = Name::parse(name, Operation::Create, ObjectKind::Semaphore)?;
        check_counts(&name, initial, max)?;
        let raw = sys::RawSemaphore::create(&name, &options.spec(), initial, max)?;
        Ok(Semaphore { raw, name })
    }

    /// Opens an existing semaphore.
    pub fn open(name: &str) -> Result<Semaphore> {
        let name = Name::parse_existing(name, Operation::Open, ObjectKind::Semaphore)?;
        let raw = sys::RawSemaphore::open(&name)?;
        Ok(Semaphore { raw, name })
    }

    /// Creates the semaphore or opens it if it exists (keeping its counts);
    /// says which happened.
    pub fn create_or_open(name: &str, initial: u32, max: u32) -> Result<(Semaphore, Disposition)> {
        let name = Name::parse(name, Operation::CreateOrOpen, ObjectKind::Semaphore)?;
        let spec = SyncOptions::new().spec();
        create_or_open(
            &name,
            ObjectKind::Semaphore,
            |n| {
                check_counts(n, initial, max)?;
                Ok(Semaphore {
                    raw: sys::RawSemaphore::create(n, &spec, initial, max)?,
                    name: n.clone(),
                })
            },
            |n| {
                Ok(Semaphore {
                    raw: sys::RawSemaphore::open(n)?,
                    name: n.clone(),
                })
            },
        )
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        self.name.given()
    }

    /// Takes one unit, waiting as long as it takes.
    pub fn wait(&self) -> Result<()> {
        self.raw.wait(None).map(drop)
    }

    /// Takes one unit, waiting at most `timeout`; then an
    /// [`ErrorKind::Timeout`] error.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        let outcome = self.raw.wait(Some(deadline(timeout)))?;
        waited(outcome, ObjectKind::Semaphore, &self.name, timeout)
    }

    /// Takes one unit if the count is above zero; says whether it did.
    pub fn try_wait(&self) -> Result<bool> {
        Ok(self.raw.wait(Some(Instant::now()))? != Wait::TimedOut)
    }

    /// Adds `n` units, waking as many waiters; returns the count before.
    /// Going past the maximum is an [`ErrorKind::InvalidArgument`] error
    /// and changes nothing.
    pub fn release(&self, n: u32) -> Result<u32> {
        self.raw.release(n)
    }
}

fn check_counts(name: &Name, initial: u32, max: u32) -> Result<()> {
    if max == 0 || initial > max {
        return Err(Error::new(
            Operation::Create,
            ObjectKind::Semaphore,
            name.given(),
            ErrorKind::InvalidArgument,
        )
        .with_detail(format!(
            "the initial count {initial} must not exceed the maximum {max}, which must be at least 1"
        )));
    }
    Ok(())
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.name.given())
            .finish()
    }
}

/// A named event, shared between processes: manual-reset (stays set,
/// releasing all waiters, until reset) or auto-reset (each set releases
/// exactly one waiter). No set is ever lost: a set that races a wait
/// releases it.
///
/// ```
/// use memlink::{Event, EventReset};
/// # let name = format!("memlink-doc-event-{}", std::process::id());
/// let event = Event::create(&name, EventReset::Auto, false)?;
/// assert!(!event.try_wait()?);
/// event.set()?;
/// assert!(event.try_wait()?); // takes the signal...
/// assert!(!event.try_wait()?); // ...so it is reset again
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Event {
    raw: sys::RawEvent,
    name: Name,
}

impl Event {
    /// Creates an event, set or not.
    pub fn create(name: &str, reset: EventReset, initially_set: bool) -> Result<Event> {
        Event::create_with(name, reset, initially_set, &SyncOptions::new())
    }

    /// Creates an event with the given options.
    pub fn create_with(
        name: &str,
        reset: EventReset,
        initially_set: bool,
        options: &SyncOptions,
    ) -> Result<Event> {
        let name = Name::parse(name, Operation::Create, ObjectKind::Event)?;
        let raw = sys::RawEvent::create(&name, &options.spec(), reset, initially_set)?;
        Ok(Event { raw, name })
    }

    /// Opens an existing event.
    pub fn open(name: &str) -> Result<Event> {
        let name = Name::parse_existing(name, Operation::Open, ObjectKind::Event)?;
        let raw = sys::RawEvent::open(&name)?;
        Ok(Event { raw, name })
    }

    /// Creates the event or opens it if it exists (keeping its kind and
    /// state); says which happened.
    pub fn create_or_open(
        name: &str,
        reset: EventReset,
        initially_set: bool,
    ) -> Result<(Event, Disposition)> {
        let name = Name::parse(name, Operation::CreateOrOpen, ObjectKind::Event)?;
        let spec = SyncOptions::new().spec();
        create_or_open(
            &name,
            ObjectKind::Event,
            |n| {
                Ok(Event {
                    raw: sys::RawEvent::create(n, &spec, reset, initially_set)?,
                    name: n.clone(),
                })
            },
            |n| {
                Ok(Event {
                    raw: sys::RawEvent::open(n)?,
                    name: n.clone(),
                })
            },
        )
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        self.name.given()
    }

    /// Sets the event: releases all waiters (manual-reset) or one
    /// (auto-reset).
    pub fn set(&self) -> Result<()> {
        self.raw.set()
    }

    /// Resets the event.
    pub fn reset(&self) -> Result<()> {
        self.raw.reset()
    }

    /// Waits until the event is set, as long as it takes.
    pub fn wait(&self) -> Result<()> {
        self.raw.wait(None).map(drop)
    }

    /// Waits at most `timeout`; then an [`ErrorKind::Timeout`] error.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        let outcome = self.raw.wait(Some(deadline(timeout)))?;
        waited(outcome, ObjectKind::Event, &self.name, timeout)
    }

    /// Returns whether the event is set, without waiting (and, for an
    /// auto-reset event, takes the signal if it was).
    pub fn try_wait(&self) -> Result<bool> {
        Ok(self.raw.wait(Some(Instant::now()))? != Wait::TimedOut)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name.given())
            .finish()
    }
}

// Handles are used from any thread, as the OS objects behind them allow.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Mutex>();
    send_and_sync::<Semaphore>();
    send_and_sync::<Event>();
};
