//! The platform layer: the only place that knows which OS it runs on.
//!
//! The layers above (regions, sync objects, listing) use exactly what this
//! module re-exports and defines below, and nothing else: that is the
//! contract every backend meets. Each backend (`linux/`, `bsd/`,
//! `windows/`) has the same shape: `mod.rs` says how named objects live and
//! die there and makes the handles, `sync.rs` makes the sync objects, and
//! the other files hold one concept each (`names.rs`, `listing.rs`, ...;
//! Linux still lists in `mod.rs`). What the two Unix backends share is in
//! `unix.rs`; the view type every backend maps is in `mapping.rs`; the
//! layouts of the pages memlink keeps in shared memory for itself (the
//! versioned header) in `layout.rs`.
//!
//! The lifetime protocol itself, with the races it closes and the tests
//! that prove it, is in `docs/protocol.md` at the repository root.

use crate::error::{Error, ObjectKind, Operation};
use crate::types::Lifetime;

// The layouts of memlink's own pages in shared memory: the Linux sync
// objects' pages, and the doorbell words of messaging on every platform.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) mod layout;
mod mapping;
#[cfg(unix)]
mod unix;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
mod bsd;
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
use bsd as platform;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    windows
)))]
compile_error!("memlink supports Linux, Windows, macOS and FreeBSD");

// ---------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------

/// An open named object (a region, or the storage of a sync object).
///
/// - `Handle::create(&Name, ObjectKind, &CreateSpec) -> Result<Handle>`
///   publishes a fully made object atomically: exclusive (a taken name is
///   `AlreadyExists`; a stale memlink object of that name is reaped first),
///   and no other process ever sees it half made.
/// - `Handle::open(&Name, ObjectKind, Access) -> Result<Handle>` opens one:
///   `NotFound` if the name is gone (or only stale holders are left),
///   `WrongKind` if it is another kind of object.
/// - `handle.size() -> u64`: the object's size (for an opened handle, what
///   the OS reports, which may be rounded up to a page).
/// - `handle.map(offset, len, writable) -> Result<Mapping>`: a view at any
///   byte offset (the backend aligns the OS mapping); writable only for a
///   handle opened read-write.
/// - `handle.read_at(offset, &mut buf)` and `handle.write_at(offset,
///   &data) -> Result<()>`: copies without a view the caller keeps, the
///   range already checked against the size. Linux uses `pread`/`pwrite`,
///   so a read of a hole allocates nothing and a write that no longer fits
///   in `/dev/shm` is `OutOfMemory` instead of `SIGBUS`; elsewhere they copy
///   through a temporary view.
///
/// Dropping the handle closes it and, for a [`Lifetime::LastHandle`]
/// object, removes the name when it was the last handle.
///
/// For messaging:
///
/// - `Handle::create_with(&Name, ObjectKind, &CreateSpec, init)`: as
///   `create`, with `init` setting up the contents (before the name
///   appears where the OS allows; on Windows callers publish readiness
///   themselves).
/// - `handle.claim(index) -> Result<Option<Claim>>` and
///   `handle.is_claimed(index) -> Result<bool>`: numbered participant
///   places whose liveness the kernel keeps (a claim ends when its
///   process dies); `None` when a live participant holds the place.
pub(crate) use platform::Handle;

/// A claimed participant place (see `Handle::claim`); dropping it frees
/// the place.
pub(crate) use platform::Claim;

/// A participant's doorbell: `Doorbell::new(&Handle, index)`,
/// `wait(&Bell, seen, Option<Instant>) -> bool` (sleeps while the bell's
/// count holds `seen`, until rung; false once the deadline has passed) and
/// `ring(&Bell)` (bumps the count, then wakes the sleeper, and signals the
/// pollable doorbell when the bell's `listening` is set): sleeping until
/// another process rings, futex-style. The [`layout::Bell`] lives in the
/// shared memory of the participant's object.
///
/// For waiting on many and async:
///
/// - `Doorbell::wait_any(&[Armed], Option<Instant>) -> Result<()>`: sleeps
///   until one of the members is rung (its count moves off the one seen)
///   or the deadline; at most [`WAIT_ANY_MAX`] members; an `Unsupported`
///   error where the OS cannot.
/// - `doorbell.rung(&Bell, seen, recheck).await -> Result<()>` (with the
///   `tokio` or `async-io` feature): the async task's sleep, until rung or
///   `recheck` has passed, without a thread in between on Linux (a
///   pollable socket in the executor's reactor) and through a thread-pool
///   wait on Windows.
/// - `doorbell.waiters() -> &Waiters`: the threads and tasks of this
///   process waiting on it.
pub(crate) use platform::Doorbell;

/// How many doorbells `Doorbell::wait_any` takes at once.
pub(crate) use platform::WAIT_ANY_MAX;

/// One member of a `Doorbell::wait_any`: its bell, its doorbell, and the
/// count read before it was armed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Armed<'a> {
    pub(crate) bell: &'a layout::Bell,
    pub(crate) doorbell: &'a Doorbell,
    pub(crate) seen: u32,
}

/// How many threads and tasks of this process wait on one participant's
/// doorbell: the last one to leave clears the sleeping mark, so that one
/// waiter that is done does not take the mark from under another.
#[derive(Debug, Default)]
pub(crate) struct Waiters(std::sync::Mutex<u32>);

impl Waiters {
    /// Counts a waiter in.
    pub(crate) fn enter(&self) {
        *self.count() += 1;
    }

    /// Counts a waiter out; `disarm` runs if it was the last, under the
    /// same lock as `enter`, so a waiter that comes in meanwhile arms
    /// after it.
    pub(crate) fn leave(&self, disarm: impl FnOnce()) {
        let mut count = self.count();
        *count = count.saturating_sub(1);
        if *count == 0 {
            disarm();
        }
    }

    fn count(&self) -> std::sync::MutexGuard<'_, u32> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `Ok(())` where messaging works, an `Unsupported` error about the named
/// service elsewhere.
pub(crate) use platform::messaging_supported;

/// A named mutex that tells the next locker when its holder died:
/// `RawMutex::create(&Name, &CreateSpec)`, `RawMutex::open(&Name)`,
/// `lock(Option<Instant>) -> Result<Wait>` (`None` waits forever, a deadline
/// already past tries once; [`Wait::Abandoned`] is still a lock), and
/// `unlock()` by the thread holding it.
///
/// Platforms without sync objects fail every constructor of these three
/// with `Unsupported`.
pub(crate) use platform::RawMutex;

/// A named counting semaphore: `RawSemaphore::create(&Name, &CreateSpec,
/// initial, max)` (the counts already checked), `RawSemaphore::open(&Name)`,
/// `wait(Option<Instant>) -> Result<Wait>`, and `release(n) -> Result<u32>`,
/// which returns the count before and fails past the maximum.
pub(crate) use platform::RawSemaphore;

/// A named event: `RawEvent::create(&Name, &CreateSpec, EventReset,
/// initially_set)`, `RawEvent::open(&Name)`, `set()`, `reset()` and
/// `wait(Option<Instant>) -> Result<Wait>`.
pub(crate) use platform::RawEvent;

/// Every named object on this machine that this process can see, memlink's
/// and foreign ones, in no particular order; listing removes nothing that a
/// live process could still use.
pub(crate) use platform::list;

/// What is known about one named object.
pub(crate) use platform::inspect;

/// Removes a name, whatever made it and whoever holds it (where the OS
/// allows; Windows does not).
pub(crate) use platform::remove;

/// `remove_unheld(&Name, seen: &ObjectInfo) -> Result<()>`: removes the
/// name only if it still refers to the object `seen` describes (its
/// [`Identity`]) and, for a memlink last-handle object, only under the
/// exclusive lock that proves no live handle holds it (`InUse` otherwise;
/// `NotFound` when the object seen is gone, even if another has its name
/// now). Windows cannot remove a name at all (`Unsupported`).
pub(crate) use platform::remove_unheld;

/// Removes the stale memlink objects that crashed processes left, and
/// reports what it removed and what it found but had to leave (with the
/// error); never touches a foreign object.
pub(crate) use platform::reap;

/// Which object a name referred to when it was read (device and inode on
/// Unix; nothing on Windows, where a named object exists only while held),
/// kept in an `ObjectInfo` so that `remove_unheld` removes that object and
/// no other that took its name since.
pub(crate) use platform::Identity;

/// The character that can never be part of a name the OS accepts: the
/// path separator (`/` on Unix, `\` in the Windows kernel's namespace).
/// Names of existing objects outside memlink's portable syntax are checked
/// against it.
pub(crate) use platform::NAME_SEPARATOR;

/// Whether the platform tells which processes hold an object (Linux does,
/// through `/proc/locks`); where it does not, `ObjectInfo::holders` empty
/// means "not known", not "none".
pub(crate) use platform::HOLDERS_KNOWN;

/// Whether `remove` can take a name while live processes hold its object
/// (`shm_unlink` can; Windows removes a name only with its last handle).
pub(crate) use platform::REMOVE_WHILE_HELD;

/// A mapped view: `as_ptr()`, `len()`, unmapped on drop.
pub(crate) use mapping::Mapping;

/// Everything needed to create an object; built by the public option types.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CreateSpec {
    /// The size in bytes (for a region; sync objects size themselves).
    pub(crate) size: u64,
    pub(crate) lifetime: Lifetime,
    /// Unix permission bits; on Windows, any bit for group or others opens
    /// the object to every user.
    pub(crate) mode: u32,
    /// Whether to commit the memory at create time. Windows always does
    /// (`SEC_COMMIT`), so it has no use for the choice.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) reserve: bool,
}

/// The outcome of a wait on a sync object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// The platforms without sync objects never make one.
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
pub(crate) enum Wait {
    /// The wait was satisfied.
    Acquired,
    /// Acquired a mutex whose previous holder died holding it.
    Abandoned,
    /// The deadline passed first.
    TimedOut,
}

/// The error of a listing or reaping operation, which is about no one name.
fn list_error(operation: Operation, err: std::io::Error) -> Error {
    Error::os(operation, ObjectKind::Region, "", err).of_any_kind()
}

// The BSD backend's name encodings are plain string functions: compile and
// test them on Linux too, where the tests run.
#[cfg(all(test, target_os = "linux"))]
#[path = "bsd/names.rs"]
mod bsd_names;
