//! Linux: named mutexes, semaphores and events.
//!
//! Each is a memlink object in `/dev/shm` (so names, lifetime, crash rules
//! and listing are those of regions) holding one page:
//!
//! ```text
//! 0   magic "MLSY", version, kind, owner pid (mutex, informational only)
//! 64  the state: a pthread mutex, or the words of a semaphore or an event
//! ```
//!
//! The page is set up before the object gets its name, so nobody sees it
//! half made. The mutex is a process-shared *robust* pthread mutex: when its
//! holder dies, the kernel (through the robust futex list) hands the next
//! locker `EOWNERDEAD`, which memlink reports as an abandoned lock, like
//! Windows' `WAIT_ABANDONED`. Semaphores and events own nothing that a dead
//! process could leave locked, so they are futex words; their waiters sleep
//! in the kernel (`FUTEX_WAIT` on the shared page) with a timeout.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

use super::{Handle, Mapping};
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::{CreateSpec, Wait};
use crate::types::{Access, EventReset};

const MAGIC: u32 = u32::from_le_bytes(*b"MLSY");
const VERSION: u32 = 1;
const STATE_OFFSET: usize = 64;
const OBJECT_SIZE: u64 = 4096;

/// The first bytes of every sync object.
#[repr(C)]
struct Header {
    magic: u32,
    version: u32,
    kind: u32,
    /// The pid that last took the mutex; for `memlink info` only, never
    /// for deciding anything (pids are reused).
    owner_pid: AtomicU32,
}

fn kind_code(kind: ObjectKind) -> u32 {
    match kind {
        ObjectKind::Region => 0,
        ObjectKind::Mutex => 1,
        ObjectKind::Semaphore => 2,
        ObjectKind::Event => 3,
        ObjectKind::Service => 4,
    }
}

/// An open sync object: the handle (for the name's lifetime) and the page.
struct Object {
    _handle: Handle,
    page: Mapping,
}

impl Object {
    fn create(
        name: &Name,
        kind: ObjectKind,
        spec: &CreateSpec,
        init_state: &mut dyn FnMut(*mut u8) -> Result<()>,
    ) -> Result<Object> {
        let spec = CreateSpec {
            size: OBJECT_SIZE,
            reserve: true,
            ..*spec
        };
        let mut init = |page: &Mapping| {
            let header = page.as_ptr().cast::<Header>();
            // SAFETY: the page is a fresh, writable, page-aligned mapping of
            // OBJECT_SIZE bytes that no other process can reach yet.
            unsafe {
                header.write(Header {
                    magic: MAGIC,
                    version: VERSION,
                    kind: kind_code(kind),
                    owner_pid: AtomicU32::new(0),
                });
            }
            // SAFETY: STATE_OFFSET is inside the page.
            init_state(unsafe { page.as_ptr().add(STATE_OFFSET) })
        };
        let handle = Handle::create_initialized(name, kind, &spec, Some(&mut init))?;
        Object::mapped(handle, name, kind, Operation::Create)
    }

    fn open(name: &Name, kind: ObjectKind) -> Result<Object> {
        let handle = Handle::open(name, kind, Access::ReadWrite)?;
        Object::mapped(handle, name, kind, Operation::Open)
    }

    fn mapped(handle: Handle, name: &Name, kind: ObjectKind, op: Operation) -> Result<Object> {
        let wrong = |what: &str| {
            Error::new(op, kind, name.given(), ErrorKind::WrongKind).with_detail(what.to_owned())
        };
        if handle.size() < OBJECT_SIZE {
            return Err(wrong("it is too small to be a memlink sync object"));
        }
        let page = handle.map(0, OBJECT_SIZE as usize, true)?;
        // SAFETY: the page is OBJECT_SIZE readable bytes, page-aligned.
        let header = unsafe { &*page.as_ptr().cast::<Header>() };
        if header.magic != MAGIC || header.version != VERSION {
            return Err(wrong("it is not a memlink sync object of this version"));
        }
        if header.kind != kind_code(kind) {
            return Err(wrong("it is a sync object of another kind"));
        }
        Ok(Object {
            _handle: handle,
            page,
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: checked in `mapped`; the page lives as long as `self`.
        unsafe { &*self.page.as_ptr().cast::<Header>() }
    }

    fn state(&self) -> *mut u8 {
        // SAFETY: STATE_OFFSET is inside the page.
        unsafe { self.page.as_ptr().add(STATE_OFFSET) }
    }

    /// The `i`th 32-bit word of the state, as an atomic.
    fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the state area is 4-byte aligned (page + 64), the words
        // used are far inside the page, and shared memory is only ever
        // accessed atomically through these references.
        unsafe { &*self.state().cast::<AtomicU32>().add(i) }
    }
}

/// Sleeps on `word` while it holds `expected`, until woken or `deadline`.
/// Returns false once the deadline has passed. Spurious returns are fine:
/// every caller re-checks its condition.
pub(super) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    let timeout = match deadline {
        None => None,
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Some(timespec(left)),
            _ => return false,
        },
    };
    // Not FUTEX_PRIVATE: the word is shared between processes.
    let _ = futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref());
    true
}

/// As many waiters as FUTEX_WAKE can be asked to wake.
pub(super) const WAKE_ALL: u32 = i32::MAX as u32;

pub(super) fn futex_wake(word: &AtomicU32, count: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), count);
}

fn timespec(d: Duration) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: d.subsec_nanos().into(),
    }
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// A named robust mutex.
pub(crate) struct RawMutex {
    /// Dropped by hand in `Drop`, which may have to leak the page.
    object: ManuallyDrop<Object>,
    name: Name,
    /// This process's id, recorded as the owner when it locks (asked once:
    /// `getpid` is a system call, and handles do not cross `fork`).
    pid: u32,
}

fn own_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

// SAFETY: the pthread mutex is process-shared and so thread-safe; the
// page is valid for as long as the RawMutex lives.
unsafe impl Send for RawMutex {}
// SAFETY: as above; all access goes through pthread calls or atomics.
unsafe impl Sync for RawMutex {}

impl RawMutex {
    pub(crate) fn create(name: &Name, spec: &CreateSpec) -> Result<RawMutex> {
        let op = Operation::Create;
        let mut init = |state: *mut u8| {
            init_robust_mutex(state.cast())
                .map_err(|e| Error::os(op, ObjectKind::Mutex, name.given(), e))
        };
        let object = Object::create(name, ObjectKind::Mutex, spec, &mut init)?;
        Ok(RawMutex {
            object: ManuallyDrop::new(object),
            name: name.clone(),
            pid: own_pid(),
        })
    }

    pub(crate) fn open(name: &Name) -> Result<RawMutex> {
        let object = Object::open(name, ObjectKind::Mutex)?;
        Ok(RawMutex {
            object: ManuallyDrop::new(object),
            name: name.clone(),
            pid: own_pid(),
        })
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.object.state().cast()
    }

    /// Locks, waiting until `deadline` (`None`: forever).
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Wait> {
        let rc = match deadline {
            // SAFETY: `raw` points at a mutex initialized before the object
            // was published, in a mapping that outlives this call.
            None => unsafe { libc::pthread_mutex_lock(self.raw()) },
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => {
                    let at = realtime_after(left);
                    // SAFETY: as above; `at` is a valid timespec.
                    unsafe { libc::pthread_mutex_timedlock(self.raw(), &at) }
                }
                // SAFETY: as above.
                _ => unsafe { libc::pthread_mutex_trylock(self.raw()) },
            },
        };
        let outcome = match rc {
            0 => Wait::Acquired,
            libc::EOWNERDEAD => {
                // We own it now; mark it usable again, as Windows does for
                // an abandoned mutex, and tell the caller.
                // SAFETY: we hold the mutex, as pthread_mutex_consistent
                // requires.
                unsafe { libc::pthread_mutex_consistent(self.raw()) };
                Wait::Abandoned
            }
            libc::ETIMEDOUT | libc::EBUSY => return Ok(Wait::TimedOut),
            libc::EDEADLK => {
                return Err(Error::new(
                    Operation::Lock,
                    ObjectKind::Mutex,
                    self.name.given(),
                    ErrorKind::WouldDeadlock,
                ))
            }
            rc => {
                return Err(Error::os(
                    Operation::Lock,
                    ObjectKind::Mutex,
                    self.name.given(),
                    std::io::Error::from_raw_os_error(rc),
                ))
            }
        };
        // Relaxed: informational, read only by `memlink info`.
        self.object
            .header()
            .owner_pid
            .store(self.pid, Ordering::Relaxed);
        Ok(outcome)
    }

    /// Unlocks; the caller holds the lock (the guard guarantees it).
    pub(crate) fn unlock(&self) {
        self.object.header().owner_pid.store(0, Ordering::Relaxed);
        // SAFETY: the calling thread holds the mutex (MutexGuard is !Send
        // and exists only while locked).
        unsafe { libc::pthread_mutex_unlock(self.raw()) };
    }
}

impl Drop for RawMutex {
    fn drop(&mut self) {
        // SAFETY: `object` is taken once, here, and not used afterwards.
        let object = unsafe { ManuallyDrop::take(&mut self.object) };
        if held_by_this_process(self.raw()) {
            // A guard was forgotten (mem::forget) and the mutex is still
            // locked by one of our threads, whose robust list glibc and the
            // kernel will write through at its next lock or at its exit.
            // The page must stay mapped: leak the mapping, drop the handle.
            let Object { _handle, page } = object;
            std::mem::forget(page);
        }
    }
}

/// Whether a thread of this process holds the robust mutex: its lock word
/// holds the owner's thread id (glibc's robust mutexes, as the kernel's
/// robust-futex protocol requires).
fn held_by_this_process(mutex: *mut libc::pthread_mutex_t) -> bool {
    const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
    // SAFETY: the lock word is the first, 4-byte aligned, field of the
    // mutex, in a mapping that is still alive; read atomically since other
    // processes write it.
    let word = unsafe { &*mutex.cast::<AtomicU32>() };
    // Relaxed: a snapshot; only our own threads could make it name us.
    match word.load(Ordering::Relaxed) & FUTEX_TID_MASK {
        0 => false,
        tid => std::path::Path::new(&format!("/proc/self/task/{tid}")).exists(),
    }
}

fn init_robust_mutex(mutex: *mut libc::pthread_mutex_t) -> std::io::Result<()> {
    let check = |rc: libc::c_int| match rc {
        0 => Ok(()),
        rc => Err(std::io::Error::from_raw_os_error(rc)),
    };
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: attr is initialized by pthread_mutexattr_init before any other
    // use and destroyed at the end; `mutex` points into a writable page no
    // other process can reach yet.
    unsafe {
        check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
        let result = (|| {
            check(libc::pthread_mutexattr_setpshared(
                attr.as_mut_ptr(),
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            check(libc::pthread_mutexattr_setrobust(
                attr.as_mut_ptr(),
                libc::PTHREAD_MUTEX_ROBUST,
            ))?;
            check(libc::pthread_mutexattr_settype(
                attr.as_mut_ptr(),
                libc::PTHREAD_MUTEX_ERRORCHECK,
            ))?;
            check(libc::pthread_mutex_init(mutex, attr.as_ptr()))
        })();
        libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
        result
    }
}

/// The CLOCK_REALTIME time `left` from now, as pthread_mutex_timedlock
/// wants it.
fn realtime_after(left: Duration) -> libc::timespec {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let total = Duration::new(now.tv_sec as u64, now.tv_nsec as u32).saturating_add(left);
    libc::timespec {
        tv_sec: total.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: total.subsec_nanos() as _,
    }
}

// Semaphore state words.
const SEM_COUNT: usize = 0;
const SEM_WAITERS: usize = 1;
const SEM_MAX: usize = 2;

/// A named counting semaphore.
pub(crate) struct RawSemaphore {
    object: Object,
    name: Name,
}

impl RawSemaphore {
    pub(crate) fn create(
        name: &Name,
        spec: &CreateSpec,
        initial: u32,
        max: u32,
    ) -> Result<RawSemaphore> {
        let mut init = |state: *mut u8| {
            let words = state.cast::<u32>();
            // SAFETY: three words inside the unpublished page.
            unsafe {
                words.add(SEM_COUNT).write(initial);
                words.add(SEM_WAITERS).write(0);
                words.add(SEM_MAX).write(max);
            }
            Ok(())
        };
        let object = Object::create(name, ObjectKind::Semaphore, spec, &mut init)?;
        Ok(RawSemaphore {
            object,
            name: name.clone(),
        })
    }

    pub(crate) fn open(name: &Name) -> Result<RawSemaphore> {
        let object = Object::open(name, ObjectKind::Semaphore)?;
        Ok(RawSemaphore {
            object,
            name: name.clone(),
        })
    }

    fn try_take(&self) -> bool {
        let count = self.object.word(SEM_COUNT);
        let mut current = count.load(Ordering::Relaxed);
        while current > 0 {
            // Acquire pairs with the SeqCst (release) update in `release`,
            // so what the releaser wrote before releasing is visible here.
            match count.compare_exchange_weak(
                current,
                current - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
        false
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<Wait> {
        let count = self.object.word(SEM_COUNT);
        let waiters = self.object.word(SEM_WAITERS);
        loop {
            if self.try_take() {
                return Ok(Wait::Acquired);
            }
            if past(deadline) {
                return Ok(Wait::TimedOut);
            }
            // SeqCst on the waiter count and the re-read of the count,
            // against SeqCst on the count update and the read of the waiter
            // count in `release`: at least one side sees the other, so a
            // release never misses a sleeper. A waiter that dies here leaves
            // the count one too high, which only costs a needless wake.
            waiters.fetch_add(1, Ordering::SeqCst);
            if count.load(Ordering::SeqCst) == 0 {
                futex_wait(count, 0, deadline);
            }
            waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Adds `n` to the count; returns the count before.
    pub(crate) fn release(&self, n: u32) -> Result<u32> {
        let count = self.object.word(SEM_COUNT);
        let max = self.object.word(SEM_MAX).load(Ordering::Relaxed);
        let mut current = count.load(Ordering::Relaxed);
        loop {
            let new = match current.checked_add(n) {
                Some(new) if new <= max => new,
                _ => {
                    return Err(Error::new(
                        Operation::Release,
                        ObjectKind::Semaphore,
                        self.name.given(),
                        ErrorKind::InvalidArgument,
                    )
                    .with_detail(format!(
                    "releasing {n} would take the count from {current} past its maximum of {max}"
                )))
                }
            };
            // SeqCst: the release half pairs with `try_take`'s Acquire; the
            // total order pairs with the waiter registration in `wait`.
            match count.compare_exchange_weak(current, new, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        if self.object.word(SEM_WAITERS).load(Ordering::SeqCst) > 0 {
            // Every sleeper, not `n`: a woken waiter killed before it takes
            // its unit would otherwise leave the unit unclaimed while the
            // others sleep on. Those that find the count at zero sleep again.
            futex_wake(count, WAKE_ALL);
        }
        Ok(current)
    }
}

// Event state words. For a manual-reset event the first holds bit 0
// "signalled" and, above it, a generation that every set advances, so that
// waiters present at a set are released even if a reset follows at once.
// For an auto-reset event it counts the releases not yet taken.
const EVENT_WORD: usize = 0;
const EVENT_WAITERS: usize = 1;
const EVENT_MANUAL: usize = 2;
const SIGNALLED: u32 = 1;

/// A named event, manual- or auto-reset.
pub(crate) struct RawEvent {
    object: Object,
}

impl RawEvent {
    pub(crate) fn create(
        name: &Name,
        spec: &CreateSpec,
        reset: EventReset,
        initially_set: bool,
    ) -> Result<RawEvent> {
        let mut init = |state: *mut u8| {
            let words = state.cast::<u32>();
            // SAFETY: three words inside the unpublished page.
            unsafe {
                words.add(EVENT_WORD).write(u32::from(initially_set));
                words.add(EVENT_WAITERS).write(0);
                words
                    .add(EVENT_MANUAL)
                    .write(u32::from(reset == EventReset::Manual));
            }
            Ok(())
        };
        let object = Object::create(name, ObjectKind::Event, spec, &mut init)?;
        Ok(RawEvent { object })
    }

    pub(crate) fn open(name: &Name) -> Result<RawEvent> {
        Ok(RawEvent {
            object: Object::open(name, ObjectKind::Event)?,
        })
    }

    fn reset_kind(&self) -> EventReset {
        if self.object.word(EVENT_MANUAL).load(Ordering::Relaxed) != 0 {
            EventReset::Manual
        } else {
            EventReset::Auto
        }
    }

    pub(crate) fn set(&self) -> Result<()> {
        let word = self.object.word(EVENT_WORD);
        let waiters = self.object.word(EVENT_WAITERS);
        // SeqCst: the release half publishes what the setter wrote before
        // to the waiter's Acquire; the total order pairs with the waiter
        // registration in `wait` (see RawSemaphore::wait).
        if self.reset_kind() == EventReset::Manual {
            let _ = word.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| {
                Some(((w >> 1).wrapping_add(1) << 1) | SIGNALLED)
            });
        } else {
            // One release per set, but never more than there are waiters
            // to take them (and at least one): with nobody waiting the
            // event is simply "set", as on Windows, and two sets meet two
            // waiters. A waiter killed while registered can leave one
            // release too many, taken by the next wait.
            let _ = word.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| {
                let cap = waiters.load(Ordering::SeqCst).max(1);
                Some(if w < cap { w + 1 } else { w })
            });
        }
        if waiters.load(Ordering::SeqCst) > 0 {
            // Every sleeper: one killed after being woken must not take a
            // release with it. Those that find nothing sleep again.
            futex_wake(word, WAKE_ALL);
        }
        Ok(())
    }

    pub(crate) fn reset(&self) -> Result<()> {
        // Relaxed is enough: resetting publishes nothing.
        let word = self.object.word(EVENT_WORD);
        if self.reset_kind() == EventReset::Manual {
            word.fetch_and(!SIGNALLED, Ordering::Relaxed);
        } else {
            word.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<Wait> {
        let word = self.object.word(EVENT_WORD);
        let waiters = self.object.word(EVENT_WAITERS);
        let manual = self.reset_kind() == EventReset::Manual;
        // Acquire pairs with the SeqCst update in `set`.
        let start = word.load(Ordering::Acquire);
        // Whether the word, as seen, lets this waiter go.
        let released = |w: u32| {
            if manual {
                w & SIGNALLED != 0 || (w >> 1) != (start >> 1)
            } else {
                w != 0
            }
        };
        loop {
            if manual {
                if released(word.load(Ordering::Acquire)) {
                    return Ok(Wait::Acquired);
                }
            } else if word
                // Acquire pairs with `set`. Taking one release each, so
                // every release goes to exactly one waiter.
                .fetch_update(Ordering::Acquire, Ordering::Relaxed, |w| w.checked_sub(1))
                .is_ok()
            {
                return Ok(Wait::Acquired);
            }
            if past(deadline) {
                return Ok(Wait::TimedOut);
            }
            waiters.fetch_add(1, Ordering::SeqCst);
            let seen = word.load(Ordering::SeqCst);
            if !released(seen) {
                futex_wait(word, seen, deadline);
            }
            waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// `, 2 waiting`, or nothing when no one waits. A waiter killed while
/// waiting stays counted, so the figure is an upper bound.
fn waiting(waiters: u32) -> String {
    match waiters {
        0 => String::new(),
        n => format!(", {n} waiting"),
    }
}

/// A word on the state of a sync object, for listings: who holds a mutex,
/// a semaphore's count, whether an event is set.
pub(super) fn describe_state(kind: ObjectKind, page: &Mapping) -> Option<String> {
    if page.len() < OBJECT_SIZE as usize {
        return None;
    }
    // SAFETY: the page is at least OBJECT_SIZE readable, page-aligned bytes;
    // it is only read, atomically where others may write.
    let header = unsafe { &*page.as_ptr().cast::<Header>() };
    if header.magic != MAGIC || header.kind != kind_code(kind) {
        return None;
    }
    // SAFETY: as above; word i of the state is inside the page.
    let word = |i: usize| unsafe {
        (*page.as_ptr().add(STATE_OFFSET).cast::<AtomicU32>().add(i)).load(Ordering::Relaxed)
    };
    Some(match kind {
        ObjectKind::Mutex => match header.owner_pid.load(Ordering::Relaxed) {
            0 => "unlocked".to_owned(),
            pid => format!("last locked by pid {pid}"),
        },
        ObjectKind::Semaphore => format!(
            "count {} of {}{}",
            word(SEM_COUNT),
            word(SEM_MAX),
            waiting(word(SEM_WAITERS))
        ),
        ObjectKind::Event => {
            let manual = word(EVENT_MANUAL) != 0;
            let set = if manual {
                word(EVENT_WORD) & SIGNALLED != 0
            } else {
                word(EVENT_WORD) != 0
            };
            format!(
                "{}, {}-reset{}",
                if set { "set" } else { "not set" },
                if manual { "manual" } else { "auto" },
                waiting(word(EVENT_WAITERS))
            )
        }
        ObjectKind::Region | ObjectKind::Service => return None,
    })
}
