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

/// What is known about one named object, from [`list`] or [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's name.
    pub name: String,
    /// What memlink made it as; `None` for a foreign object (made by another
    /// program with the plain OS calls). On Windows the objects memlink makes
    /// are the plain kernel objects, indistinguishable from anyone else's, so
    /// every object there has its kind and counts as memlink's.
    pub kind: Option<ObjectKind>,
    /// Its size in bytes.
    pub size: u64,
    /// Its lifetime; foreign objects are persistent.
    pub lifetime: Lifetime,
    /// Whether it is in use.
    pub state: State,
    /// The ids of the processes holding a handle to it, where the platform
    /// tells (Linux does, through `/proc/locks`).
    pub holders: Vec<u32>,
    /// Unix permission bits, where the platform has them.
    pub mode: Option<u32>,
    /// The state of a sync object, in words: `unlocked`, `count 2 of 5`,
    /// `set, manual-reset`...
    pub detail: Option<String>,
}

impl ObjectInfo {
    /// Whether memlink made this object.
    pub fn is_memlink(&self) -> bool {
        self.kind.is_some()
    }
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
/// Listing never removes anything; stale objects are shown as
/// [`State::Stale`]. On Windows, where the kernel does not offer a
/// supported way to enumerate named sections, this is an
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error.
pub fn list() -> Result<Vec<ObjectInfo>> {
    let mut objects = sys::list()?;
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(objects)
}

/// What is known about the object called `name`.
pub fn inspect(name: &str) -> Result<ObjectInfo> {
    let name = Name::parse(name, Operation::Inspect, ObjectKind::Region)?;
    sys::inspect(&name)
}

/// Removes the name `name`, whatever made it and whoever holds it (as
/// `shm_unlink` does). Processes that hold the object keep their handles and
/// views; new opens fail with `NotFound`.
pub fn remove(name: &str) -> Result<()> {
    let name = Name::parse(name, Operation::Remove, ObjectKind::Region)?;
    sys::remove(&name)
}

/// Removes the stale objects left by processes that died, and returns what
/// it removed. Objects that memlink did not make are never touched.
pub fn reap() -> Result<Vec<ObjectInfo>> {
    sys::reap()
}

pub(crate) fn list_error(operation: Operation, err: std::io::Error) -> Error {
    Error::os(operation, ObjectKind::Region, "", err)
}
