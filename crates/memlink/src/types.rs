//! The words every layer shares: how a handle may use its object, how long
//! an object lives, what a listing and a reap say about it, and the
//! outcomes of `create_or_open`. Nearly a leaf: it depends on nothing else
//! in the crate but the error types and three plain items of the platform
//! contract that an [`ObjectInfo`] carries (`sys::Identity`,
//! `sys::HOLDERS_KNOWN`, `sys::REMOVE_WHILE_HELD`), no code.

use crate::error::{Error, ObjectKind};
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
    /// create, open or [`reap`](crate::reap) call.
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

/// What is known about one named object, from [`list`](crate::list) or
/// [`inspect`](crate::inspect).
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
    /// Whether [`remove`](crate::remove) can take the name while live
    /// processes hold the object (not on Windows, where a name goes only
    /// with its last handle).
    pub removable_while_held: bool,
    /// The state of a sync object, in words: `unlocked`, `count 2 of 5`,
    /// `set, manual-reset`...
    pub detail: Option<String>,
    /// Which object this is, for [`remove_unheld`](crate::remove_unheld):
    /// the name may be given to another object after this was read.
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

/// What [`reap`](crate::reap) did: the stale objects it removed, and those
/// it found but had to leave, each with the reason (another user's object
/// that this user may not remove, say).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ReapReport {
    /// The stale objects removed.
    pub removed: Vec<ObjectInfo>,
    /// The stale objects left in place, and why.
    pub skipped: Vec<(ObjectInfo, Error)>,
}

/// Whether a `create_or_open` call (of a [`Region`](crate::Region) or a
/// sync object) made the object or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// This call created the object.
    Created,
    /// The object existed and was opened.
    Opened,
}

/// Whether an event resets itself when it releases a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventReset {
    /// Stays set, releasing every waiter, until [`Event::reset`](crate::Event::reset).
    Manual,
    /// Each [`Event::set`](crate::Event::set) releases exactly one waiter, then the event is
    /// reset again.
    Auto,
}
