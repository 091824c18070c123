//! What acts on names rather than on one kind of object: list, inspect,
//! remove, reap, and the `create_or_open` loop every kind shares.

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys;
use crate::types::{Disposition, ObjectInfo};

/// Lists the named shared-memory objects on this machine: memlink's own
/// (of every kind) and foreign ones.
///
/// Listing never removes anything; stale objects are shown as
/// [`State::Stale`](crate::State::Stale). On Windows, where the kernel does not offer a
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
