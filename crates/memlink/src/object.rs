//! Types shared by every kind of named object, and the functions that act
//! on names rather than on one kind: list, inspect, remove, reap.

use crate::error::{Error, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys;

/// How a handle may use the object it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Views are read-only (`PROT_READ` / `FILE_MAP_READ`).
    ReadOnly,
    /// Views may be read-only or writable.
    ReadWrite,
}

/// How long a named object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lifetime {
    /// As on Windows: the name exists while some live process holds a handle
    /// to the object, and goes away when the last handle is closed or its
    /// process dies. The default.
    #[default]
    LastHandle,
    /// As POSIX shared memory: the object lives until it is removed, even
    /// when no process holds it. Not supported on Windows.
    Persistent,
}

impl Lifetime {
    /// The word used in listings: `last-handle` or `persistent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifetime::LastHandle => "last-handle",
            Lifetime::Persistent => "persistent",
        }
    }
}

/// Whether a listed object is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Some live process holds a handle to it (or, for a persistent or
    /// foreign object, it simply exists).
    Alive,
    /// A memlink object whose holders all died: it is reaped by the next
    /// create, open or [`reap`] call.
    Stale,
    /// Its state could not be read (for example, another user's object).
    Unknown,
}

impl State {
    /// The word used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Stale => "stale",
            State::Unknown => "unknown",
        }
    }
}

/// Who made a listed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// memlink made it (its mark says so).
    Memlink,
    /// Another program made it with the plain OS calls: it has no mark.
    Foreign,
    /// It cannot be told: the mark cannot be read (another user's private
    /// object), or the platform keeps no mark (Windows, whose objects are
    /// the plain kernel objects, whoever made them).
    Unknown,
}

impl Origin {
    /// The word used in listings: `memlink`, `foreign` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Memlink => "memlink",
            Origin::Foreign => "foreign",
            Origin::Unknown => "unknown",
        }
    }
}

/// What is known about one named object, from [`list`] or [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's name.
    pub name: String,
    /// Its kind: what memlink made it as, or on Windows the kernel object's
    /// type; `None` when not known (a foreign or unreadable object on
    /// Linux, which is plain shared memory).
    pub kind: Option<ObjectKind>,
    /// Who made it.
    pub origin: Origin,
    /// Its size in bytes.
    pub size: u64,
    /// Its lifetime; foreign objects are persistent.
    pub lifetime: Lifetime,
    /// Whether it is in use.
    pub state: State,
    /// The ids of the processes holding a handle to it, where the platform
    /// tells ([`holders_known`](ObjectInfo::holders_known)).
    pub holders: Vec<u32>,
    /// Whether this platform tells who holds an object (Linux does, through
    /// `/proc/locks`); where it does not, an empty `holders` means "not
    /// known", not "none".
    pub holders_known: bool,
    /// Unix permission bits, where the platform has them.
    pub mode: Option<u32>,
    /// Where the object is in the file system, on platforms where it is a
    /// file (Linux: `/dev/shm/NAME`).
    pub path: Option<String>,
    /// Whether [`remove`] can take the name while live processes hold the
    /// object (not on Windows, where a name goes only with its last handle).
    pub removable_while_held: bool,
    /// The state of a sync object, in words: `unlocked`, `count 2 of 5`,
    /// `set, manual-reset`...
    pub detail: Option<String>,
    /// Which object this is, for [`remove_unheld`]: the name may be given
    /// to another object after this was read.
    pub(crate) identity: Option<sys::Identity>,
}

impl ObjectInfo {
    /// What is known of an object before anything is read from it: its
    /// name and the platform's capabilities; the backend fills in the rest.
    pub(crate) fn named(name: impl Into<String>) -> ObjectInfo {
        ObjectInfo {
            name: name.into(),
            kind: None,
            origin: Origin::Unknown,
            size: 0,
            lifetime: Lifetime::Persistent,
            state: State::Unknown,
            holders: Vec::new(),
            holders_known: sys::HOLDERS_KNOWN,
            mode: None,
            path: None,
            removable_while_held: sys::REMOVE_WHILE_HELD,
            detail: None,
            identity: None,
        }
    }

    /// Whether memlink made this object.
    pub fn is_memlink(&self) -> bool {
        self.origin == Origin::Memlink
    }
}

/// What [`reap`] did: the stale objects it removed, and those it found but
/// had to leave, each with the reason (another user's object that this
/// user may not remove, say).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ReapReport {
    /// The stale objects removed.
    pub removed: Vec<ObjectInfo>,
    /// The stale objects left in place, and why.
    pub skipped: Vec<(ObjectInfo, Error)>,
}

/// Everything needed to create an object; built by the public option types.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CreateSpec {
    pub(crate) size: u64,
    pub(crate) lifetime: Lifetime,
    pub(crate) mode: u32,
    #[cfg_attr(windows, allow(dead_code))] // Windows always commits
    pub(crate) reserve: bool,
}

/// Lists the named shared-memory objects on this machine: memlink's own
/// (of every kind) and foreign ones.
///
/// Listing never removes anything on Linux and Windows; stale objects are
/// shown as [`State::Stale`]. On Windows the objects are read from the
/// kernel's object directories (`\BaseNamedObjects` and the session's
/// own), sections and sync objects alike. On macOS and FreeBSD, which
/// cannot enumerate shared memory, only this user's memlink objects are
/// listed, and a stale one found there is removed under the lock that
/// proved it stale.
pub fn list() -> Result<Vec<ObjectInfo>> {
    let mut objects = sys::list()?;
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(objects)
}

/// What is known about the object called `name` (any name the OS accepts,
/// not only memlink's portable syntax, so foreign objects can be looked
/// at). A name held by something that is not a shared-memory object (a
/// directory, a FIFO...) is an [`ErrorKind::WrongKind`] error that says
/// what is there.
///
/// [`ErrorKind::WrongKind`]: crate::ErrorKind::WrongKind
pub fn inspect(name: &str) -> Result<ObjectInfo> {
    let name = parse_any(name, Operation::Inspect)?;
    sys::inspect(&name)
}

/// Removes the name `name`, whatever made it and whoever holds it (as
/// `shm_unlink` does), and whatever it is (a FIFO or an empty directory
/// blocking the name goes too). Processes that hold the object keep their
/// handles and views; new opens fail with `NotFound`. Any name the OS
/// accepts will do. On Windows, which removes a name only with the last
/// handle to its object, this is an
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error.
pub fn remove(name: &str) -> Result<()> {
    let name = parse_any(name, Operation::Remove)?;
    sys::remove(&name)
}

/// Removes the object that `seen` (from [`inspect`] or [`list`]) describes,
/// only if the name still refers to that very object and, for a memlink
/// last-handle object, no live handle holds it: the proof is taken under
/// the object's exclusive lock, which every memlink process takes before
/// it removes a name, so a stale object reaped and re-created meanwhile by
/// someone else is never removed in its place.
///
/// Persistent and foreign objects, which live without handles, need only
/// be the same object. Errors: [`ErrorKind::InUse`] when live processes
/// hold it, [`ErrorKind::NotFound`] when the object looked at is gone
/// (even if another has its name now).
///
/// [`ErrorKind::InUse`]: crate::ErrorKind::InUse
/// [`ErrorKind::NotFound`]: crate::ErrorKind::NotFound
pub fn remove_unheld(seen: &ObjectInfo) -> Result<()> {
    let name = parse_any(&seen.name, Operation::Remove)?;
    sys::remove_unheld(&name, seen)
}

/// Parses the name for an operation on whatever object has it.
fn parse_any(name: &str, operation: Operation) -> Result<Name> {
    Name::parse_existing(name, operation, ObjectKind::Region).map_err(Error::of_any_kind)
}

/// Removes the stale objects left by processes that died, and reports what
/// it removed and what it had to leave (with why). Objects that memlink did
/// not make are never touched. An error is returned only when the objects
/// cannot be listed at all.
pub fn reap() -> Result<ReapReport> {
    sys::reap()
}

pub(crate) fn list_error(operation: Operation, err: std::io::Error) -> Error {
    Error::os(operation, ObjectKind::Region, "", err).of_any_kind()
}
