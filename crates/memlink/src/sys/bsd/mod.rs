//! macOS and FreeBSD (Unix systems without `/dev/shm`): POSIX shared-memory
//! objects from `shm_open`, with Windows lifetime emulated by `flock` on a
//! sidecar file per object.
//!
//! **Untested.** This backend is type-checked for `aarch64-apple-darwin` and
//! `x86_64-unknown-freebsd` on Linux machines and has never run. The kernel
//! behaviour it relies on is listed under *Assumptions* below; the first run
//! on a real macOS or FreeBSD machine should check those first.
//!
//! # The objects
//!
//! A region is the plain object `shm_open("/NAME")`: the user's bytes start
//! at offset 0 and nothing else is stored in them, so a C program or Python
//! with the same name sees the same bytes. On macOS names are limited to 31
//! bytes (`PSHMNAMLEN`, counting the leading `/`), so longer names are
//! replaced by a digest (see `names.rs`); elsewhere the limit used
//! is 255 and every valid name is used as is.
//!
//! # Why a sidecar
//!
//! Linux keeps memlink's bookkeeping on the `/dev/shm` file itself (an
//! extended attribute and a `flock`). Neither system has that: there are no
//! files for shared-memory objects, and macOS refuses `flock` on a
//! shared-memory descriptor. So each memlink object has a *sidecar*: a small
//! regular file in a per-user directory, `/tmp/memlink-UID/` (a fixed place,
//! not `$TMPDIR`, which differs between a user's login sessions, daemons and
//! `sudo`; created mode 0700, and refused unless it is a real directory owned
//! by this user). The sidecar is named after the object's name (see
//! [`sidecar_file_name`]), and holds:
//!
//! - **the mark**: its content is `KIND;LIFETIME` (`region;last-handle`,
//!   ...), the same encoding as the Linux extended attribute. A sidecar
//!   without a valid mark claims nothing;
//! - **the liveness locks**: every handle opens the sidecar itself and holds
//!   a shared `flock` on that open file description. The kernel drops it when
//!   the handle is closed or its process dies, so "a non-blocking exclusive
//!   `flock` succeeds" means "no live handle".
//!
//! # The protocol
//!
//! Every operation that changes which object a name refers to (create,
//! remove-when-stale, close of the last handle) holds the *exclusive* lock on
//! the sidecar, and first checks that the sidecar path still names the file
//! it locked ([`is_current`]: a closer may have removed it between the
//! other's `open` and `flock`). Under that lock no handle exists and no other
//! memlink process can be creating, opening or removing the same name.
//!
//! **Create** opens the sidecar (creating it if needed) and takes the
//! exclusive lock without blocking. If that fails, live handles exist (or
//! another process holds the exclusive lock for a moment: it waits that out
//! once and looks again), so the name is taken. Under the lock: an existing
//! object whose mark says last-handle is stale and is removed; one marked
//! persistent, or one without a mark (foreign), means the name is taken.
//! Then it writes the mark `KIND;last-handle` *before* making the object, so
//! that a crash at any later point leaves a stale object that the next
//! create, open or reap removes; makes the object with
//! `shm_open(O_CREAT | O_EXCL)`, sets its size with `ftruncate`, rewrites the
//! mark to `persistent` if asked, and converts its lock to a shared one. Of
//! racing memlink creators exactly one gets the exclusive lock first and
//! wins. memlink openers cannot see the half-made object (they wait for the
//! shared lock); a *foreign* program opening the name by hand during those
//! few system calls can see it with a size of 0.
//!
//! **Open** opens the sidecar. If it takes the exclusive lock, nobody holds
//! the object: a last-handle object is then stale, is removed, and the open
//! reports `NotFound`, as on Windows. Otherwise it waits for a shared lock,
//! checks the sidecar is current and the kind matches, and opens the object.
//! A name without a sidecar is opened as a foreign object (after checking
//! that no memlink creator made a sidecar meanwhile): it is persistent and
//! its handle takes part in no lifetime.
//!
//! **Close** of a last-handle handle releases its shared lock, then tries
//! the exclusive one without blocking. Success means no other handle exists:
//! the closer removes the object (`shm_unlink`) and then the sidecar.
//! Releasing first matters on these kernels: when a non-blocking upgrade of a
//! shared `flock` fails, BSD kernels keep the shared lock (Linux drops it), so
//! two handles upgrading at once could both fail. Released first, the last
//! closer to try always succeeds.
//!
//! As on Linux, whoever wins the exclusive lock on a stale last-handle
//! object removes it before letting go (`list` and `inspect` included, since
//! there is no lock table to read here): a prober that let go without
//! removing it could hand an opener waiting for the lock a dead object as a
//! live one.
//!
//! A handle must not be shared with a child made by `fork` (the child's
//! copy of the descriptor shares the lock); handles are close-on-exec.
//!
//! # Limits of this backend
//!
//! - **Listing**: neither system offers a portable way to enumerate POSIX
//!   shared-memory names, so [`list`] and [`reap`] see only the objects this
//!   user made with memlink (those with a sidecar). Foreign objects cannot be
//!   listed; [`inspect`] finds them by name. (FreeBSD 12.1+ could list every
//!   object through the `kern.ipc.posix_shm_list` sysctl; not done.)
//! - **Other users**: the sidecar directory is private, so a user who opens
//!   another user's object (allowed by a wider `mode`) finds no sidecar and
//!   gets a foreign-style handle: it does not keep the name alive, and the
//!   creator's last close removes the name under it (its handle and views
//!   stay valid, as after [`remove`]).
//! - **Reserving memory**: there is no portable way to commit shared memory
//!   up front. FreeBSD is asked with `posix_fallocate`, and a shortage then
//!   fails the create; if the kernel does not support it for shared memory,
//!   and always on macOS, `reserve` is best-effort (ignored).
//! - **Mode on macOS**: macOS has no `fchmod` for shared memory, so the
//!   process umask narrows the requested mode there (the default 0600 is
//!   unaffected by the usual umasks). FreeBSD applies the exact mode.
//! - **Size on macOS**: the kernel rounds the object's size up to a whole
//!   page, so `size()` of an opened handle reports the rounded size (the
//!   creator's handle reports the size it asked for).
//! - **Foreign interference**: a program that removes a memlink object with
//!   plain `shm_unlink` while it is held, and makes a new object of the same
//!   name, can have that new object removed when memlink's last handle
//!   closes (Linux compares inode numbers; shared-memory descriptors on
//!   macOS have none to compare). [`remove`] racing a memlink `create` of the
//!   same name can likewise leave the new object without its sidecar (then
//!   it looks foreign and is never removed automatically).
//! - **Temporary-file cleaners**: a cleaner that deletes old files in `/tmp`
//!   (macOS's periodic `clean-tmps`, for files untouched for days) can delete
//!   the sidecar of a long-lived object; the object then looks foreign (it
//!   keeps working, but is no longer removed with its last handle). A
//!   deleted sidecar *directory* is made again on the next use. `/tmp` is
//!   emptied at boot, as the shared-memory objects are.
//!
//! # Assumptions (to check on real machines)
//!
//! - `flock` on a regular file in `/tmp` conflicts between open file
//!   descriptions, also within one process, and is released when the last
//!   descriptor of the description is closed or the process dies.
//! - Converting an exclusive `flock` to a shared one (the end of create) is
//!   done in place, with no moment without a lock: FreeBSD's and XNU's
//!   `lf_setlock` downgrade the existing lock under the lock-list lock.
//! - A failed non-blocking upgrade keeps the shared lock on BSD kernels
//!   (FreeBSD `lf_setlock` returns `EAGAIN` before touching it); the close
//!   path is written not to care either way.
//! - `shm_unlink` of a mapped or open object removes only the name, as
//!   POSIX requires; views stay valid.
//! - macOS allows one `ftruncate` of a new shared-memory object, which is
//!   all create does.

mod listing;
mod messaging;
mod names;
mod sidecar;
mod sync;

pub(crate) use listing::{inspect, list, reap, remove, remove_unheld};
pub(crate) use messaging::{messaging_supported, Claim, Doorbell, WAIT_ANY_MAX};
pub(crate) use sync::{RawEvent, RawMutex, RawSemaphore};

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{self, AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::shm;

pub(crate) use super::unix::Handle;
use super::unix::{os_err, reserve_error, Mark, RACE_RETRIES};
use super::CreateSpec;
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::types::{Access, Lifetime};
use names::{shm_object_name, sidecar_file_name};
use sidecar::{
    dir_for, is_current, lock_shared, read_mark, remove_locked, remove_sidecar, shm_exists,
    sidecar_dir, try_lock_exclusive, write_mark,
};

const SHORTAGE: &str = "more shared memory than the system can give";

/// The character that cannot be in a name (`shm_open` names are paths).
pub(crate) const NAME_SEPARATOR: char = '/';
/// No system-wide lock table to read here (Linux has `/proc/locks`).
pub(crate) const HOLDERS_KNOWN: bool = false;
/// `shm_unlink` takes a name from its holders.
pub(crate) const REMOVE_WHILE_HELD: bool = true;

/// Which object a name referred to: the shared-memory object's device and
/// inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    // `dev_t` is an `i32` on macOS and a `u64` on FreeBSD, `ino_t` a `u64`
    // on both: the casts are needed on one system and no-ops on the other.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &fs::Stat) -> Identity {
        Identity {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

impl Handle {
    pub(crate) fn create(name: &Name, kind: ObjectKind, spec: &CreateSpec) -> Result<Handle> {
        let op = Operation::Create;
        let err = |e: io::Error| os_err(op, kind, name, e);
        let taken = || Error::new(op, kind, name.given(), ErrorKind::AlreadyExists);
        let dir = dir_for(op, kind, name)?;
        let file = sidecar_file_name(name.base());
        let shm_name = shm_object_name(name);
        let mut waited = false;
        for _ in 0..RACE_RETRIES {
            let sidecar = fs::openat(
                dir,
                file.as_str(),
                OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::RUSR | Mode::WUSR,
            )
            .map_err(|e| err(e.into()))?;
            if !try_lock_exclusive(&sidecar).map_err(err)? {
                // Live handles hold the name, or another process holds the
                // exclusive lock for a moment (creating, closing, probing a
                // stale object). Wait the latter out once, then look again.
                if waited {
                    return Err(taken());
                }
                waited = true;
                lock_shared(&sidecar).map_err(err)?;
                continue; // dropping `sidecar` releases the lock
            }
            if !is_current(dir, &file, &sidecar).map_err(err)? {
                continue; // removed by a closer between our open and lock
            }
            // Exclusive lock on the current sidecar: nobody holds the object.
            if shm_exists(&shm_name).map_err(err)? {
                match read_mark(&sidecar).map_err(err)? {
                    Some(mark) if mark.lifetime == Lifetime::LastHandle => {
                        // Stale: its holders all died. Remove it, make anew.
                        match shm::unlink(shm_name.as_str()) {
                            Ok(()) | Err(Errno::NOENT) => {}
                            Err(e) => return Err(err(e.into())),
                        }
                    }
                    Some(_) => return Err(taken()), // persistent
                    None => {
                        // Foreign: not ours to judge. Do not leave the
                        // (probably just made) empty sidecar behind.
                        remove_sidecar(dir, &file).map_err(err)?;
                        return Err(taken());
                    }
                }
            }
            return create_locked(dir, &file, &shm_name, sidecar, name, kind, spec);
        }
        Err(taken().with_detail("the name kept being re-created while stale copies were removed"))
    }

    pub(crate) fn open(name: &Name, kind: ObjectKind, access: Access) -> Result<Handle> {
        let op = Operation::Open;
        let err = |e: io::Error| os_err(op, kind, name, e);
        let not_found = || Error::new(op, kind, name.given(), ErrorKind::NotFound);
        let dir = dir_for(op, kind, name)?;
        let file = sidecar_file_name(name.base());
        let shm_name = shm_object_name(name);
        for _ in 0..RACE_RETRIES {
            let sidecar = match fs::openat(
                dir,
                file.as_str(),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => match open_foreign(dir, &file, &shm_name, name, kind, access)?
                {
                    Some(handle) => return Ok(handle),
                    None => continue,
                },
                Err(e) => return Err(err(e.into())),
            };
            let mark = if try_lock_exclusive(&sidecar).map_err(err)? {
                // Nobody holds the object.
                if !is_current(dir, &file, &sidecar).map_err(err)? {
                    continue;
                }
                match read_mark(&sidecar).map_err(err)? {
                    Some(mark) if mark.lifetime == Lifetime::LastHandle => {
                        // Its holders all died: it is gone, as on Windows.
                        remove_locked(dir, &file, &shm_name).map_err(err)?;
                        return Err(not_found());
                    }
                    Some(mark) => {
                        // Persistent: convert to the shared lock and open.
                        lock_shared(&sidecar).map_err(err)?;
                        mark
                    }
                    None => {
                        // A sidecar without a mark owns no object (its
                        // creator died before making one). Remove it; the
                        // name may still be a foreign object.
                        remove_sidecar(dir, &file).map_err(err)?;
                        continue;
                    }
                }
            } else {
                lock_shared(&sidecar).map_err(err)?;
                if !is_current(dir, &file, &sidecar).map_err(err)? {
                    continue; // raced a closer that removed it; look again
                }
                match read_mark(&sidecar).map_err(err)? {
                    Some(mark) => mark,
                    // Its creator died before writing the mark; the next
                    // round's exclusive lock clears it.
                    None => continue,
                }
            };
            // A shared lock on the current sidecar: no memlink process can
            // remove or re-create the object until we let go.
            if mark.kind != kind {
                return Err(Error::new(op, kind, name.given(), ErrorKind::WrongKind)
                    .with_detail(format!("it is a {}", mark.kind)));
            }
            let shm = match shm::open(shm_name.as_str(), shm_flags(access), Mode::empty()) {
                Ok(fd) => fd,
                // The sidecar outlived its object: the name was removed with
                // a plain shm_unlink (or by `remove` racing us).
                Err(Errno::NOENT) => return Err(not_found()),
                Err(e) => return Err(err(e.into())),
            };
            let size = size_of(&shm).map_err(err)?;
            return Ok(Handle {
                fd: shm,
                sidecar: Some(sidecar),
                name: name.clone(),
                kind,
                size,
                remove_on_last_close: mark.lifetime == Lifetime::LastHandle,
            });
        }
        Err(not_found().with_detail("the name kept being removed and re-created"))
    }

    /// Fills `buf` from `offset`, through a temporary view: macOS's
    /// shared-memory descriptors cannot be read with `pread`.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let view = self.map(offset, buf.len(), false)?;
        // SAFETY: the view is `buf.len()` readable bytes that live until
        // the end of this function; `buf` is not inside it.
        unsafe { std::ptr::copy_nonoverlapping(view.as_ptr(), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Writes `data` at `offset`, through a temporary view, as `read_at`
    /// reads.
    pub(crate) fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let view = self.map(offset, data.len(), true)?;
        // SAFETY: the view is `data.len()` writable bytes that live until
        // the end of this function; `data` is not inside it.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), view.as_ptr(), data.len()) };
        Ok(())
    }
}

/// Makes the object; the caller holds the exclusive lock on the current
/// sidecar and has made sure the name is free.
fn create_locked(
    dir: BorrowedFd<'_>,
    file: &str,
    shm_name: &str,
    sidecar: OwnedFd,
    name: &Name,
    kind: ObjectKind,
    spec: &CreateSpec,
) -> Result<Handle> {
    let op = Operation::Create;
    let err = |e: io::Error| os_err(op, kind, name, e);
    // The mark goes first, as last-handle whatever was asked: from here on
    // a crash leaves a stale object that the next create/open/reap removes.
    let intent = Mark {
        kind,
        lifetime: Lifetime::LastHandle,
    };
    if let Err(e) = write_mark(&sidecar, intent) {
        let _ = remove_sidecar(dir, file);
        return Err(err(e));
    }
    let mode = Mode::from_raw_mode((spec.mode & 0o777) as fs::RawMode);
    let shm = match shm::open(
        shm_name,
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        mode,
    ) {
        Ok(fd) => fd,
        Err(e) => {
            // EEXIST: a foreign program made the name since we looked.
            let _ = remove_sidecar(dir, file);
            return Err(err(e.into()));
        }
    };
    if let Err(e) = finish_object(&shm, &sidecar, name, kind, spec, mode) {
        // Nothing may stay half-made: remove the object and the sidecar.
        let _ = remove_locked(dir, file, shm_name);
        return Err(e);
    }
    // Exclusive to shared, done in place by the kernel: memlink openers
    // waiting for a shared lock get in now.
    if let Err(e) = lock_shared(&sidecar) {
        let _ = remove_locked(dir, file, shm_name);
        return Err(err(e));
    }
    Ok(Handle {
        fd: shm,
        sidecar: Some(sidecar),
        name: name.clone(),
        kind,
        size: spec.size,
        remove_on_last_close: spec.lifetime == Lifetime::LastHandle,
    })
}

/// Sets the new object's mode and size, and writes its final mark.
fn finish_object(
    shm: &OwnedFd,
    sidecar: &OwnedFd,
    name: &Name,
    kind: ObjectKind,
    spec: &CreateSpec,
    mode: Mode,
) -> Result<()> {
    let err = |e: io::Error| os_err(Operation::Create, kind, name, e);
    // The umask may have narrowed the mode given to shm_open. FreeBSD can
    // set it on the object; macOS cannot (see the module docs).
    #[cfg(not(target_vendor = "apple"))]
    fs::fchmod(shm, mode).map_err(|e| err(e.into()))?;
    #[cfg(target_vendor = "apple")]
    let _ = mode;
    fs::ftruncate(shm, spec.size).map_err(|e| reserve_error(name, kind, spec.size, e, SHORTAGE))?;
    reserve(shm, name, kind, spec)?;
    if spec.lifetime == Lifetime::Persistent {
        // A crash during this rewrite leaves no valid mark: the (complete)
        // object then counts as foreign, which is persistent too.
        let mark = Mark {
            kind,
            lifetime: Lifetime::Persistent,
        };
        write_mark(sidecar, mark).map_err(err)?;
    }
    Ok(())
}

/// FreeBSD: commit the memory now, so a shortage fails the create rather
/// than raising SIGBUS later. Kernels whose shared memory does not support
/// `posix_fallocate` (older FreeBSD releases) report another error, which
/// leaves reserving best-effort.
#[cfg(target_os = "freebsd")]
fn reserve(shm: &OwnedFd, name: &Name, kind: ObjectKind, spec: &CreateSpec) -> Result<()> {
    if !spec.reserve {
        return Ok(());
    }
    match fs::fallocate(shm, fs::FallocateFlags::empty(), 0, spec.size) {
        Err(e @ (Errno::NOSPC | Errno::NOMEM)) => {
            Err(reserve_error(name, kind, spec.size, e, SHORTAGE))
        }
        Ok(()) | Err(_) => Ok(()),
    }
}

/// Elsewhere (macOS) there is no way to commit shared memory up front:
/// `reserve` is best-effort, which here means ignored.
#[cfg(not(target_os = "freebsd"))]
fn reserve(_shm: &OwnedFd, _name: &Name, _kind: ObjectKind, spec: &CreateSpec) -> Result<()> {
    let _ = spec.reserve;
    Ok(())
}

/// Opens a name that has no sidecar: an object made by another program with
/// plain `shm_open` (or by memlink as another user). `Ok(None)` means a
/// memlink creator made a sidecar meanwhile: look again.
fn open_foreign(
    dir: BorrowedFd<'_>,
    file: &str,
    shm_name: &str,
    name: &Name,
    kind: ObjectKind,
    access: Access,
) -> Result<Option<Handle>> {
    let op = Operation::Open;
    let err = |e: io::Error| os_err(op, kind, name, e);
    let shm = match shm::open(shm_name, shm_flags(access), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(Error::new(op, kind, name.given(), ErrorKind::NotFound)),
        Err(e) => return Err(err(e.into())),
    };
    // A memlink creator makes its sidecar before the object, so if there is
    // still no sidecar, this is not a memlink object being made right now.
    match fs::statat(dir, file, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => return Ok(None),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(err(e.into())),
    }
    let size = size_of(&shm).map_err(err)?;
    Ok(Some(Handle {
        fd: shm,
        sidecar: None,
        name: name.clone(),
        kind,
        size,
        remove_on_last_close: false,
    }))
}

impl Drop for Handle {
    fn drop(&mut self) {
        let Some(sidecar) = &self.sidecar else {
            return;
        };
        if !self.remove_on_last_close {
            return;
        }
        // Release, then try the exclusive lock (see "Close" in the module
        // docs for why not upgrade in place). Nothing to report to: any
        // failure leaves a stale name, which the next create/open/reap
        // removes.
        if fs::flock(sidecar, FlockOperation::Unlock).is_err() {
            return;
        }
        if !matches!(try_lock_exclusive(sidecar), Ok(true)) {
            return; // another handle exists (or is busy with the name)
        }
        let Ok(dir) = sidecar_dir() else {
            return;
        };
        let file = sidecar_file_name(self.name.base());
        if matches!(is_current(dir, &file, sidecar), Ok(true)) {
            let _ = remove_locked(dir, &file, &shm_object_name(&self.name));
        }
    }
}

fn shm_flags(access: Access) -> shm::OFlags {
    match access {
        Access::ReadOnly => shm::OFlags::RDONLY,
        Access::ReadWrite => shm::OFlags::RDWR,
    }
}

fn size_of(fd: &OwnedFd) -> io::Result<u64> {
    // st_size is never negative for a shared-memory object.
    Ok(fs::fstat(fd)?.st_size as u64)
}
