//! What acts on names rather than on one kind of object: list, inspect,
//! remove, reap, and the `create_or_open` loop every kind shares.

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys;
use crate::types::{Disposition, ObjectInfo, ReapReport};

/// Lists the named shared-memory objects on this machine: memlink's own
/// (of every kind) and foreign ones.
///
/// Listing never removes anything on Linux and Windows; stale objects are
/// shown as [`State::Stale`](crate::State::Stale). On Windows the objects
/// are read from the kernel's object directories (`\BaseNamedObjects` and
/// the session's own), sections and sync objects alike. On macOS and
/// FreeBSD, which cannot enumerate shared memory, only this user's memlink
/// objects are listed, and a stale one found there is removed under the
/// lock that proved it stale.
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

/// Runs `create`, or `open` when the name is taken, until one of them
/// succeeds: each failure means another process won a race in between (the
/// name appeared, or went away again), so the next step's outcome differs.
/// A few rounds are plenty; the bound only guards against a livelock.
pub(crate) fn create_or_open<T>(
    name: &Name,
    kind: ObjectKind,
    create: impl Fn(&Name) -> Result<T>,
    open: impl Fn(&Name) -> Result<T>,
) -> Result<(T, Disposition)> {
    let op = Operation::CreateOrOpen;
    for _ in 0..1000 {
        match create(name) {
            Ok(object) => return Ok((object, Disposition::Created)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.reframe(op)),
        }
        match open(name) {
            Ok(object) => return Ok((object, Disposition::Opened)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.reframe(op)),
        }
    }
    Err(Error::new(op, kind, name.given(), ErrorKind::AlreadyExists)
        .with_detail("the name kept appearing and disappearing"))
}
