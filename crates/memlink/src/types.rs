//! The words every layer shares: how a handle may use its object, how long
//! an object lives, what a listing says about it, and the outcomes of
//! `create_or_open`. A leaf: it depends on nothing else in the crate but the
//! error types.

use crate::error::ObjectKind;

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

/// What is known about one named object, from [`list`](crate::list) or [`inspect`](crate::inspect).
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
