//! `list`, `inspect`, `remove`, `remove_unheld` and `reap`: what the
//! sidecars say about the objects memlink made, and the foreign objects
//! found by name.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{self, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::shm;

use super::names::{base_from_sidecar, shm_object_name, sidecar_file_name};
use super::sidecar::{
    dir_error, dir_for, is_current, read_mark, remove_locked, remove_sidecar, sidecar_dir,
    try_lock_exclusive,
};
use super::Identity;
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::list_error;
use crate::sys::unix::{for_each_entry, os_err};
use crate::types::{Lifetime, ObjectInfo, Origin, ReapReport, State};

/// What a sidecar file stands for.
enum Found {
    /// A memlink object. When it is stale, the exclusive lock that proved it
    /// is kept, so that a reaper removes it under that same lock.
    Object(ObjectInfo, Option<OwnedFd>),
    /// A sidecar that owns no object (its creator died before making one, or
    /// the object was removed with a plain `shm_unlink`) and that nobody
    /// holds; the exclusive lock is kept.
    Litter(OwnedFd),
}

/// Looks at the sidecar `file` of `name`; `None` if it is gone, or belongs
/// to nothing that can be shown (being created, or held after the object's
/// name was removed).
fn describe(dir: BorrowedFd<'_>, file: &str, name: &Name) -> io::Result<Option<Found>> {
    let sidecar = match fs::openat(
        dir,
        file,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(fs::fstat(&sidecar)?.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let unheld = try_lock_exclusive(&sidecar)?;
    if unheld && !is_current(dir, file, &sidecar)? {
        return Ok(None); // removed since we opened it
    }
    let Some(mark) = read_mark(&sidecar)? else {
        // No mark: being created right now (its creator holds the lock), or
        // litter.
        return Ok(unheld.then_some(Found::Litter(sidecar)));
    };
    let object = match shm::open(
        shm_object_name(name).as_str(),
        shm::OFlags::RDONLY,
        Mode::empty(),
    ) {
        Ok(fd) => Some(fs::fstat(&fd)?),
        Err(Errno::NOENT) => {
            return Ok(unheld.then_some(Found::Litter(sidecar)));
        }
        // It exists, but we may not look at it.
        Err(_) => None,
    };
    let stale = unheld && mark.lifetime == Lifetime::LastHandle;
    let mut info = ObjectInfo::named(name.base());
    info.kind = Some(mark.kind);
    info.origin = Origin::Memlink;
    info.size = object.as_ref().map_or(0, |st| st.st_size as u64);
    info.lifetime = mark.lifetime;
    info.state = if stale {
        State::Stale
    } else if object.is_some() {
        State::Alive
    } else {
        State::Unknown
    };
    info.mode = object.as_ref().map(|st| u32::from(st.st_mode) & 0o7777);
    info.identity = object.as_ref().map(Identity::of);
    Ok(Some(Found::Object(info, stale.then_some(sidecar))))
}

fn for_each_sidecar(
    operation: Operation,
    mut visit: impl FnMut(BorrowedFd<'_>, &str, &Name, Found) -> io::Result<()>,
) -> Result<()> {
    let err = |e: io::Error| list_error(operation, e);
    let dir = sidecar_dir().map_err(|e| dir_error(operation, ObjectKind::Region, "", e))?;
    for_each_entry(dir, |file| {
        // Skips anything memlink did not make.
        let Some(base) = base_from_sidecar(file) else {
            return Ok(());
        };
        let Ok(name) = Name::parse(&base, operation, ObjectKind::Region) else {
            return Ok(());
        };
        match describe(dir, file, &name)? {
            Some(found) => visit(dir, file, &name, found),
            None => Ok(()),
        }
    })
    .map_err(err)
}

/// The memlink objects this user made (see the module docs: foreign objects
/// cannot be listed on these systems).
///
/// A stale object found here is removed on the spot (and still listed, as
/// stale): with no lock table to read, staleness is proved by taking the
/// exclusive lock, and letting go of it without removing the object could
/// hand an opener waiting for that lock a dead object as a live one.
pub(crate) fn list() -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    for_each_sidecar(Operation::List, |dir, file, name, found| {
        if let Found::Object(info, proof) = found {
            if proof.is_some() {
                remove_locked(dir, file, &shm_object_name(name))?;
            }
            out.push(info);
        }
        Ok(())
    })?;
    Ok(out)
}

pub(crate) fn inspect(name: &Name) -> Result<ObjectInfo> {
    let op = Operation::Inspect;
    let err = |e: io::Error| os_err(op, ObjectKind::Region, name, e).of_any_kind();
    let dir = dir_for(op, ObjectKind::Region, name)?;
    let file = sidecar_file_name(name.base());
    if let Some(Found::Object(info, proof)) = describe(dir, &file, name).map_err(err)? {
        if proof.is_some() {
            // Stale: removed under the lock that proved it (see `list`).
            remove_locked(dir, &file, &shm_object_name(name)).map_err(err)?;
        }
        return Ok(info);
    }
    // No memlink object of ours: maybe a foreign one.
    let shm_name = shm_object_name(name);
    let (state, st) = match shm::open(shm_name.as_str(), shm::OFlags::RDONLY, Mode::empty()) {
        Ok(fd) => (
            State::Alive,
            Some(fs::fstat(&fd).map_err(|e| err(e.into()))?),
        ),
        Err(Errno::NOENT) => {
            return Err(
                Error::new(op, ObjectKind::Region, name.given(), ErrorKind::NotFound).of_any_kind(),
            )
        }
        Err(Errno::ACCESS) => (State::Unknown, None),
        Err(e) => return Err(err(e.into())),
    };
    let mut info = ObjectInfo::named(name.base());
    // Without a sidecar of this user's it is foreign, unless it belongs to
    // another user, whose memlink objects have their sidecars elsewhere.
    let own = st
        .as_ref()
        .is_some_and(|st| st.st_uid == rustix::process::getuid().as_raw());
    info.origin = if own {
        Origin::Foreign
    } else {
        Origin::Unknown
    };
    info.size = st.as_ref().map_or(0, |st| st.st_size as u64);
    info.state = state;
    info.mode = st.as_ref().map(|st| u32::from(st.st_mode) & 0o7777);
    info.identity = st.as_ref().map(Identity::of);
    Ok(info)
}

pub(crate) fn remove(name: &Name) -> Result<()> {
    let op = Operation::Remove;
    let err = |e: io::Error| os_err(op, ObjectKind::Region, name, e).of_any_kind();
    let dir = dir_for(op, ObjectKind::Region, name)?;
    // The sidecar first: holders keep their (now unlinked) sidecar and find
    // it no longer current when they close, so they remove nothing; a create
    // racing this call finds the old object without a mark and reports
    // AlreadyExists instead of losing a new sidecar to us.
    remove_sidecar(dir, &sidecar_file_name(name.base())).map_err(err)?;
    shm::unlink(shm_object_name(name).as_str()).map_err(|e| err(e.into()))
}

pub(crate) fn remove_unheld(name: &Name, seen: &ObjectInfo) -> Result<()> {
    let op = Operation::Remove;
    let err = |e: io::Error| os_err(op, ObjectKind::Region, name, e).of_kind(seen.kind);
    let gone = |detail: &str| {
        Error::new(op, ObjectKind::Region, name.given(), ErrorKind::NotFound)
            .of_kind(seen.kind)
            .with_detail(detail.to_owned())
    };
    let changed = "the object looked at was removed meanwhile, and another has its name now";
    let shm_name = shm_object_name(name);
    let same_object = || -> Result<()> {
        match shm::open(shm_name.as_str(), shm::OFlags::RDONLY, Mode::empty()) {
            Ok(fd) => {
                let st = fs::fstat(&fd).map_err(|e| err(e.into()))?;
                match seen.identity {
                    Some(id) if id != Identity::of(&st) => Err(gone(changed)),
                    _ => Ok(()),
                }
            }
            Err(Errno::NOENT) => Err(gone("it was removed meanwhile")),
            Err(_) => Ok(()),
        }
    };
    if !(seen.is_memlink() && seen.lifetime == Lifetime::LastHandle) {
        same_object()?;
        return remove(name);
    }
    let dir = dir_for(op, ObjectKind::Region, name)?;
    let file = sidecar_file_name(name.base());
    let sidecar = match fs::openat(
        dir,
        file.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(gone("it was removed meanwhile")),
        Err(e) => return Err(err(e.into())),
    };
    // The proof: no handle exists while this lock is held, and no memlink
    // process removes the name without taking it first.
    if !try_lock_exclusive(&sidecar).map_err(err)? {
        return Err(
            Error::new(op, ObjectKind::Region, name.given(), ErrorKind::InUse).of_kind(seen.kind),
        );
    }
    if !is_current(dir, &file, &sidecar).map_err(err)? {
        return Err(gone(changed));
    }
    same_object()?;
    remove_locked(dir, &file, &shm_name).map_err(err)
}

pub(crate) fn reap() -> Result<ReapReport> {
    let mut report = ReapReport::default();
    for_each_sidecar(Operation::Reap, |dir, file, name, found| {
        match found {
            Found::Object(info, Some(_exclusive)) => {
                match remove_locked(dir, file, &shm_object_name(name)) {
                    Ok(()) => report.removed.push(info),
                    Err(e) => {
                        let kind = info.kind.unwrap_or(ObjectKind::Region);
                        let error = Error::os(Operation::Reap, kind, name.given(), e);
                        report.skipped.push((info, error));
                    }
                }
            }
            Found::Litter(_exclusive) => remove_sidecar(dir, file)?,
            Found::Object(_, None) => {}
        }
        Ok(())
    })?;
    Ok(report)
}
