//! Linux: named mutexes, semaphores and events.
//!
//! Each is a memlink object in `/dev/shm` (so names, lifetime, crash rules
//! and listing are those of regions) holding one page, laid out as a
//! `#[repr(C)]` struct that starts with the versioned [`Header`]:
//! [`MutexPage`], [`SemaphorePage`], [`EventPage`].
//!
//! The page is set up before the object gets its name, so nobody sees it
//! half made. The mutex is a process-shared *robust* pthread mutex: when its
//! holder dies, the kernel (through the robust futex list) hands the next
//! locker `EOWNERDEAD`, which memlink reports as an abandoned lock, like
//! Windows' `WAIT_ABANDONED`. Semaphores and events own nothing that a dead
//! process could leave locked, so they are futex words; their waiters sleep
//! in the kernel (`FUTEX_WAIT` on the shared page) with a timeout.
//!
//! **Who waits.** A count of waiters kept in shared memory is wrong for
//! good once a waiter is killed. So each semaphore or event handle owns one
//! slot of the page's waiter table, and proves it owns it with an
//! open-file-description lock (`F_OFD_SETLK`) on one byte of the object's
//! file, past the page: the kernel drops that lock when the handle closes
//! or its process dies. A slot's count of waiting threads is believed only
//! while its lock is held, so what the listing shows and what an
//! auto-reset event's releases are capped by come from the kernel's own
//! record of who is alive. (OFD locks and `flock` do not interact on Linux,
//! so these locks leave the lifetime protocol alone.)

use std::cell::UnsafeCell;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

use super::{Handle, Mapping};
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::layout::{page_ref, Header, SharedPage};
use crate::sys::{CreateSpec, Wait};
use crate::types::{Access, EventReset};

const MAGIC: [u8; 4] = *b"MLSY";
/// 2: typed pages with a waiter table (1 had a bare waiter count).
const VERSION: u32 = 2;
const OBJECT_SIZE: u64 = 4096;

fn kind_code(kind: ObjectKind) -> u32 {
    match kind {
        ObjectKind::Region => 0,
        ObjectKind::Mutex => 1,
        ObjectKind::Semaphore => 2,
        ObjectKind::Event => 3,
        ObjectKind::Service => 4,
        ObjectKind::RequestResponse => 5,
        ObjectKind::Queue => 6,
    }
}

/// A mutex's page.
#[repr(C)]
struct MutexPage {
    header: Header,
    /// The pid that last took the mutex; for listings only, never for
    /// deciding anything (pids are reused).
    owner_pid: AtomicU32,
    /// Written only by the pthread calls (and the kernel's robust-list
    /// walk), which treat it as shared memory.
    mutex: UnsafeCell<libc::pthread_mutex_t>,
}

/// How many semaphore or event handles may be open at once, over all
/// processes: one slot of the waiter table each.
const WAITER_SLOTS: usize = 900;

/// Who is waiting on a semaphore or event (see the module docs).
#[repr(C)]
struct Waiters {
    /// The sum of the slots' counts, dead slots included: an upper bound,
    /// used only to skip `FUTEX_WAKE` when nobody can be asleep. A handle
    /// that takes over a dead slot takes the dead count off it.
    hint: AtomicU32,
    /// Per handle: how many of its threads are in a wait.
    slots: [AtomicU32; WAITER_SLOTS],
}

/// A semaphore's page.
#[repr(C)]
struct SemaphorePage {
    header: Header,
    count: AtomicU32,
    max: AtomicU32,
    waiters: Waiters,
}

/// An event's page.
#[repr(C)]
struct EventPage {
    header: Header,
    /// Manual reset: bit 0 "signalled" and, above it, a generation that
    /// every set advances, so that waiters present at a set are released
    /// even if a reset follows at once. Auto reset: the releases not yet
    /// taken.
    word: AtomicU32,
    /// 1 for a manual-reset event.
    manual: AtomicU32,
    waiters: Waiters,
}

const _: () = assert!(size_of::<MutexPage>() <= OBJECT_SIZE as usize);
const _: () = assert!(size_of::<SemaphorePage>() <= OBJECT_SIZE as usize);
const _: () = assert!(size_of::<EventPage>() <= OBJECT_SIZE as usize);
// Pages are mapped at page boundaries, which satisfies any of these.
const _: () = assert!(align_of::<MutexPage>() <= 64);
const _: () = assert!(align_of::<SemaphorePage>() == 4 && align_of::<EventPage>() == 4);

// SAFETY: atomics, and a pthread mutex in an UnsafeCell that only the
// pthread calls touch; any bytes are a value (the header check refuses
// pages that are not ours before anything else is trusted).
unsafe impl SharedPage for MutexPage {}
// SAFETY: atomics only.
unsafe impl SharedPage for SemaphorePage {}
// SAFETY: atomics only.
unsafe impl SharedPage for EventPage {}

/// A sync object's page type: its header, and its kind.
trait SyncPage: SharedPage {
    const KIND: ObjectKind;
    fn header(&self) -> &Header;
}

impl SyncPage for MutexPage {
    const KIND: ObjectKind = ObjectKind::Mutex;
    fn header(&self) -> &Header {
        &self.header
    }
}

impl SyncPage for SemaphorePage {
    const KIND: ObjectKind = ObjectKind::Semaphore;
    fn header(&self) -> &Header {
        &self.header
    }
}

impl SyncPage for EventPage {
    const KIND: ObjectKind = ObjectKind::Event;
    fn header(&self) -> &Header {
        &self.header
    }
}

/// The page of `P` in `mapping`, if the mapping holds one of this layout
/// version; otherwise why not.
fn checked_page<P: SyncPage>(mapping: &Mapping) -> std::result::Result<&P, String> {
    // SAFETY: the mapping is readable (and writable for handles) for as
    // long as the borrow of it.
    let page = unsafe { page_ref::<P>(mapping.as_ptr(), mapping.len()) }
        .ok_or_else(|| "it is too small to be a memlink sync object".to_owned())?;
    page.header()
        .check(MAGIC, VERSION, kind_code(P::KIND))
        .map_err(|m| m.describe("sync object", VERSION))?;
    Ok(page)
}

/// An open sync object: the handle (for the name's lifetime) and its page.
struct Object<P: SyncPage> {
    handle: Handle,
    page: Mapping,
    /// The page as a `P`: checked once, in `mapped`.
    typed: std::ptr::NonNull<P>,
}

// SAFETY: `typed` is an address in the mapping this Object owns, valid
// from any thread until it is unmapped; the page is shared memory, written
// only through atomics (and pthread calls, for the mutex).
unsafe impl<P: SyncPage> Send for Object<P> {}
// SAFETY: as above; `&Object` gives only `&P`, whose fields are atomics.
unsafe impl<P: SyncPage> Sync for Object<P> {}

impl<P: SyncPage> Object<P> {
    fn create(name: &Name, spec: &CreateSpec, init_state: &mut dyn FnMut(&P)) -> Result<Self> {
        let spec = CreateSpec {
            size: OBJECT_SIZE,
            reserve: true,
            ..*spec
        };
        let mut init = |mapping: &Mapping| {
            // SAFETY: a fresh, writable, page-aligned mapping of OBJECT_SIZE
            // bytes (zeroed by the kernel) that no other process can reach.
            let page =
                unsafe { page_ref::<P>(mapping.as_ptr(), mapping.len()) }.ok_or_else(|| {
                    Error::new(Operation::Create, P::KIND, name.given(), ErrorKind::Os)
                        .with_detail("the new object's page cannot hold its state")
                })?;
            page.header().init(MAGIC, VERSION, kind_code(P::KIND));
            init_state(page);
            Ok(())
        };
        let handle = Handle::create_initialized(name, P::KIND, &spec, Some(&mut init))?;
        Object::mapped(handle, name, Operation::Create)
    }

    fn open(name: &Name) -> Result<Self> {
        let handle = Handle::open(name, P::KIND, Access::ReadWrite)?;
        Object::mapped(handle, name, Operation::Open)
    }

    fn mapped(handle: Handle, name: &Name, op: Operation) -> Result<Self> {
        let wrong = |what: String| {
            Error::new(op, P::KIND, name.given(), ErrorKind::WrongKind).with_detail(what)
        };
        if handle.size() < OBJECT_SIZE {
            return Err(wrong("it is too small to be a memlink sync object".into()));
        }
        let page = handle.map(0, OBJECT_SIZE as usize, true)?;
        let typed = std::ptr::NonNull::from(checked_page::<P>(&page).map_err(wrong)?);
        Ok(Object {
            handle,
            page,
            typed,
        })
    }

    fn page(&self) -> &P {
        // SAFETY: `typed` points into `page` at a P whose alignment, length
        // and header were checked in `mapped`; the mapping lives as long as
        // `self`, and P is a SharedPage, shared through `&` only.
        unsafe { self.typed.as_ref() }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.handle.fd.as_fd()
    }
}

/// The file offset of the byte whose OFD lock owns waiter slot `i`: past
/// the page, where no data is (locks may lie beyond the end of a file).
fn slot_lock_offset(i: usize) -> i64 {
    OBJECT_SIZE as i64 + i as i64
}

/// `F_OFD_SETLK` / `F_OFD_GETLK` of a write lock on the byte of slot `i`.
/// For GETLK, returns whether another open file description holds it.
fn slot_lock(fd: BorrowedFd<'_>, i: usize, command: libc::c_int) -> io::Result<bool> {
    let mut lock: libc::flock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: slot_lock_offset(i),
        l_len: 1,
        l_pid: 0, // OFD locks require 0
    };
    // SAFETY: a valid descriptor and a valid, initialized flock for the call.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), command, &mut lock) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

impl Waiters {
    /// Claims a free slot for the handle whose descriptor is `fd`: one whose
    /// lock no live handle holds. Clears what a dead owner left in it.
    fn claim(&self, fd: BorrowedFd<'_>) -> io::Result<Option<usize>> {
        for i in 0..WAITER_SLOTS {
            match slot_lock(fd, i, libc::F_OFD_SETLK) {
                Ok(_) => {
                    // Relaxed: the slot is ours now; the hint is only a
                    // bound, and the dead count was part of it (a waiter
                    // adds to the hint before its slot, see `Waiting`).
                    let dead = self.slots[i].swap(0, Ordering::Relaxed);
                    if dead > 0 {
                        self.hint.fetch_sub(dead, Ordering::Relaxed);
                    }
                    return Ok(Some(i));
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// How many threads of live handles are waiting. `own` is the caller's
    /// slot, if it has one: its own lock never conflicts with itself, so it
    /// cannot be checked through `fd`.
    fn live(&self, fd: BorrowedFd<'_>, own: Option<usize>) -> u32 {
        let mut total = 0u32;
        for (i, slot) in self.slots.iter().enumerate() {
            // Relaxed: a snapshot; callers act on it as a bound.
            let count = slot.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            // A lock that cannot be checked counts as held: better a count
            // too high than a live waiter left out.
            if own == Some(i) || slot_lock(fd, i, libc::F_OFD_GETLK).unwrap_or(true) {
                total = total.saturating_add(count);
            }
        }
        total
    }

    /// Whether a `FUTEX_WAKE` could find anyone asleep.
    fn may_sleep(&self) -> bool {
        // SeqCst: against the waiter's SeqCst registration (see `Waiting`).
        self.hint.load(Ordering::SeqCst) > 0
    }
}

/// One thread's registration as a waiter, from its first failed attempt
/// until it returns; undone on drop.
struct Waiting<'a> {
    waiters: &'a Waiters,
    slot: usize,
}

impl<'a> Waiting<'a> {
    fn new(waiters: &'a Waiters, slot: usize) -> Waiting<'a> {
        // SeqCst, the hint before the slot: the wakers' SeqCst update of
        // the word and read of the hint, against this registration and the
        // waiter's SeqCst re-read of the word, make at least one side see
        // the other, so a set or release never misses a sleeper. The hint
        // first so that a slot's count is always part of the hint.
        waiters.hint.fetch_add(1, Ordering::SeqCst);
        waiters.slots[slot].fetch_add(1, Ordering::SeqCst);
        Waiting { waiters, slot }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // Relaxed: leaving makes no promise to anyone; the slot first, so
        // its count stays part of the hint.
        self.waiters.slots[self.slot].fetch_sub(1, Ordering::Relaxed);
        self.waiters.hint.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Claims the handle's waiter slot, or says why it cannot.
fn claim_slot(
    handle_fd: BorrowedFd<'_>,
    waiters: &Waiters,
    kind: ObjectKind,
    name: &Name,
    op: Operation,
) -> Result<usize> {
    match waiters.claim(handle_fd) {
        Ok(Some(slot)) => Ok(slot),
        Ok(None) => Err(
            Error::new(op, kind, name.given(), ErrorKind::OutOfMemory).with_detail(format!(
                "{WAITER_SLOTS} handles to it are open already, the most one sync object takes"
            )),
        ),
        Err(e) => Err(Error::os(op, kind, name.given(), e)),
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
    object: ManuallyDrop<Object<MutexPage>>,
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
        let mut failed = None;
        let mut init = |page: &MutexPage| {
            if let Err(e) = init_robust_mutex(page.mutex.get()) {
                failed = Some(e);
            }
        };
        let object = Object::create(name, spec, &mut init);
        if let Some(e) = failed {
            return Err(Error::os(
                Operation::Create,
                ObjectKind::Mutex,
                name.given(),
                e,
            ));
        }
        Ok(RawMutex {
            object: ManuallyDrop::new(object?),
            name: name.clone(),
            pid: own_pid(),
        })
    }

    pub(crate) fn open(name: &Name) -> Result<RawMutex> {
        Ok(RawMutex {
            object: ManuallyDrop::new(Object::open(name)?),
            name: name.clone(),
            pid: own_pid(),
        })
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.object.page().mutex.get()
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
            .page()
            .owner_pid
            .store(self.pid, Ordering::Relaxed);
        Ok(outcome)
    }

    /// Unlocks; the caller holds the lock (the guard guarantees it).
    pub(crate) fn unlock(&self) {
        // Relaxed: informational, as in `lock`.
        self.object.page().owner_pid.store(0, Ordering::Relaxed);
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
            let Object { handle, page, .. } = object;
            std::mem::forget(page);
            drop(handle);
        }
    }
}

/// Whether a thread of this process holds the robust mutex: its lock word
/// holds the owner's thread id (glibc's robust mutexes, as the kernel's
/// robust-futex protocol requires).
fn held_by_this_process(mutex: *mut libc::pthread_mutex_t) -> bool {
    // A snapshot is enough: only our own threads could make it name us.
    match lock_word(mutex) & FUTEX_TID_MASK {
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

/// A named counting semaphore.
pub(crate) struct RawSemaphore {
    object: Object<SemaphorePage>,
    name: Name,
    /// This handle's slot in the waiter table.
    slot: usize,
}

impl RawSemaphore {
    pub(crate) fn create(
        name: &Name,
        spec: &CreateSpec,
        initial: u32,
        max: u32,
    ) -> Result<RawSemaphore> {
        let mut init = |page: &SemaphorePage| {
            // Relaxed: the page is not published yet (see Header::init).
            page.count.store(initial, Ordering::Relaxed);
            page.max.store(max, Ordering::Relaxed);
        };
        RawSemaphore::with_slot(
            Object::create(name, spec, &mut init)?,
            name,
            Operation::Create,
        )
    }

    pub(crate) fn open(name: &Name) -> Result<RawSemaphore> {
        RawSemaphore::with_slot(Object::open(name)?, name, Operation::Open)
    }

    fn with_slot(
        object: Object<SemaphorePage>,
        name: &Name,
        op: Operation,
    ) -> Result<RawSemaphore> {
        let slot = claim_slot(
            object.fd(),
            &object.page().waiters,
            ObjectKind::Semaphore,
            name,
            op,
        )?;
        Ok(RawSemaphore {
            object,
            name: name.clone(),
            slot,
        })
    }

    fn try_take(&self) -> bool {
        let count = &self.object.page().count;
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
        if self.try_take() {
            return Ok(Wait::Acquired);
        }
        let page = self.object.page();
        let _waiting = Waiting::new(&page.waiters, self.slot);
        loop {
            if self.try_take() {
                return Ok(Wait::Acquired);
            }
            if past(deadline) {
                return Ok(Wait::TimedOut);
            }
            // SeqCst re-read, after the SeqCst registration: see `Waiting`.
            if page.count.load(Ordering::SeqCst) == 0 {
                futex_wait(&page.count, 0, deadline);
            }
        }
    }

    /// Adds `n` to the count; returns the count before.
    pub(crate) fn release(&self, n: u32) -> Result<u32> {
        let page = self.object.page();
        // Relaxed: set before the page was published, never changed.
        let max = page.max.load(Ordering::Relaxed);
        let mut current = page.count.load(Ordering::Relaxed);
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
            // total order pairs with the waiter registration (`Waiting`).
            match page.count.compare_exchange_weak(
                current,
                new,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        if page.waiters.may_sleep() {
            // Every sleeper, not `n`: a woken waiter killed before it takes
            // its unit would otherwise leave the unit unclaimed while the
            // others sleep on. Those that find the count at zero sleep again.
            futex_wake(&page.count, WAKE_ALL);
        }
        Ok(current)
    }
}

const SIGNALLED: u32 = 1;

/// A named event, manual- or auto-reset.
pub(crate) struct RawEvent {
    object: Object<EventPage>,
    /// This handle's slot in the waiter table.
    slot: usize,
}

impl RawEvent {
    pub(crate) fn create(
        name: &Name,
        spec: &CreateSpec,
        reset: EventReset,
        initially_set: bool,
    ) -> Result<RawEvent> {
        let mut init = |page: &EventPage| {
            // Relaxed: the page is not published yet (see Header::init).
            page.word.store(u32::from(initially_set), Ordering::Relaxed);
            page.manual
                .store(u32::from(reset == EventReset::Manual), Ordering::Relaxed);
        };
        RawEvent::with_slot(
            Object::create(name, spec, &mut init)?,
            name,
            Operation::Create,
        )
    }

    pub(crate) fn open(name: &Name) -> Result<RawEvent> {
        RawEvent::with_slot(Object::open(name)?, name, Operation::Open)
    }

    fn with_slot(object: Object<EventPage>, name: &Name, op: Operation) -> Result<RawEvent> {
        let slot = claim_slot(
            object.fd(),
            &object.page().waiters,
            ObjectKind::Event,
            name,
            op,
        )?;
        Ok(RawEvent { object, slot })
    }

    fn reset_kind(&self) -> EventReset {
        // Relaxed: set before the page was published, never changed.
        if self.object.page().manual.load(Ordering::Relaxed) != 0 {
            EventReset::Manual
        } else {
            EventReset::Auto
        }
    }

    pub(crate) fn set(&self) -> Result<()> {
        let page = self.object.page();
        let word = &page.word;
        // SeqCst: the release half publishes what the setter wrote before
        // to the waiter's Acquire; the total order pairs with the waiter
        // registration (`Waiting`).
        if self.reset_kind() == EventReset::Manual {
            let _ = word.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| {
                Some(((w >> 1).wrapping_add(1) << 1) | SIGNALLED)
            });
        } else {
            // One release per set, but never more than there are live
            // waiters to take them (and at least one): with nobody waiting
            // the event is simply "set", as on Windows, and two sets meet
            // two waiters. The live count costs system calls, so it is
            // asked only when a release is pending already.
            let mut live = None;
            let _ = word.fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| {
                if w == 0 {
                    return Some(1);
                }
                let cap = *live.get_or_insert_with(|| {
                    page.waiters.live(self.object.fd(), Some(self.slot)).max(1)
                });
                (w < cap).then_some(w + 1)
            });
        }
        if page.waiters.may_sleep() {
            // Every sleeper: one killed after being woken must not take a
            // release with it. Those that find nothing sleep again.
            futex_wake(word, WAKE_ALL);
        }
        Ok(())
    }

    pub(crate) fn reset(&self) -> Result<()> {
        // Relaxed is enough: resetting publishes nothing.
        let word = &self.object.page().word;
        if self.reset_kind() == EventReset::Manual {
            word.fetch_and(!SIGNALLED, Ordering::Relaxed);
        } else {
            word.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<Wait> {
        let page = self.object.page();
        let word = &page.word;
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
        let take = || {
            if manual {
                released(word.load(Ordering::Acquire))
            } else {
                // Acquire pairs with `set`. Taking one release each, so
                // every release goes to exactly one waiter.
                word.fetch_update(Ordering::Acquire, Ordering::Relaxed, |w| w.checked_sub(1))
                    .is_ok()
            }
        };
        if take() {
            return Ok(Wait::Acquired);
        }
        let _waiting = Waiting::new(&page.waiters, self.slot);
        loop {
            if take() {
                return Ok(Wait::Acquired);
            }
            if past(deadline) {
                return Ok(Wait::TimedOut);
            }
            // SeqCst re-read, after the SeqCst registration: see `Waiting`.
            let seen = word.load(Ordering::SeqCst);
            if !released(seen) {
                futex_wait(word, seen, deadline);
            }
        }
    }
}

/// `, 2 waiting`, or nothing when no one waits.
fn waiting(waiters: u32) -> String {
    match waiters {
        0 => String::new(),
        n => format!(", {n} waiting"),
    }
}

/// A snapshot of the glibc robust mutex's lock word: the owner's thread
/// id, and the bit the kernel sets when it released the lock of a thread
/// that died (the kernel's robust-futex protocol fixes both).
fn lock_word(mutex: *mut libc::pthread_mutex_t) -> u32 {
    // SAFETY: the lock word is the first, 4-byte aligned, field of the
    // mutex, in a page that stays mapped while the caller borrows it; read
    // atomically, since other processes write it.
    let word = unsafe { &*mutex.cast::<AtomicU32>() };
    // Relaxed: a snapshot, for deciding nothing shared.
    word.load(Ordering::Relaxed)
}

const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;

/// A mutex's state in words, from its lock word (which the kernel keeps
/// right when a holder dies), not from a pid a dead process left behind:
/// `locked by pid N (alive)`, `unlocked`, `abandoned by pid N (dead)`.
fn mutex_state(page: &MutexPage) -> String {
    let lock = lock_word(page.mutex.get());
    // Relaxed: a snapshot for a listing.
    let pid = page.owner_pid.load(Ordering::Relaxed);
    let tid = lock & FUTEX_TID_MASK;
    let who = if pid != 0 { pid } else { tid };
    if tid != 0 {
        // Thread ids live in /proc as pids do (hidden from listings).
        if std::path::Path::new(&format!("/proc/{tid}")).exists() {
            format!("locked by pid {who} (alive)")
        } else {
            format!("abandoned by pid {who} (dead)")
        }
    } else if lock & FUTEX_OWNER_DIED != 0 {
        format!("abandoned by pid {who} (dead)")
    } else {
        "unlocked".to_owned()
    }
}

/// A word on the state of a sync object, for listings: who holds a mutex,
/// a semaphore's count, whether an event is set, and how many live
/// waiters there are. `fd` is any descriptor of the object's file.
pub(super) fn describe_state(
    kind: ObjectKind,
    fd: BorrowedFd<'_>,
    mapping: &Mapping,
) -> Option<String> {
    Some(match kind {
        ObjectKind::Mutex => mutex_state(checked_page::<MutexPage>(mapping).ok()?),
        ObjectKind::Semaphore => {
            let page = checked_page::<SemaphorePage>(mapping).ok()?;
            // Relaxed: a snapshot for a listing.
            format!(
                "count {} of {}{}",
                page.count.load(Ordering::Relaxed),
                page.max.load(Ordering::Relaxed),
                waiting(page.waiters.live(fd, None))
            )
        }
        ObjectKind::Event => {
            let page = checked_page::<EventPage>(mapping).ok()?;
            // Relaxed: a snapshot for a listing.
            let manual = page.manual.load(Ordering::Relaxed) != 0;
            let word = page.word.load(Ordering::Relaxed);
            let set = if manual {
                word & SIGNALLED != 0
            } else {
                word != 0
            };
            format!(
                "{}, {}-reset{}",
                if set { "set" } else { "not set" },
                if manual { "manual" } else { "auto" },
                waiting(page.waiters.live(fd, None))
            )
        }
        ObjectKind::Region
        | ObjectKind::Service
        | ObjectKind::Queue
        | ObjectKind::RequestResponse => return None,
    })
}
