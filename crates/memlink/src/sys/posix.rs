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
//! replaced by a digest ([`Name::shm_open_name`]); elsewhere the limit used
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
//!
//! [`Name::shm_open_name`]: crate::name::Name::shm_open_name

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use rustix::fs::{self, AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::shm;

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::object::{
    list_error, Access, CreateSpec, Lifetime, ObjectInfo, Origin, ReapReport, State,
};

pub(crate) use super::unix::Mapping;
use super::unix::{map_view, os_err, reserve_error, Mark, RACE_RETRIES};

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
    fn of(st: &fs::Stat) -> Identity {
        Identity {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// The longest name `shm_open` accepts, counting the leading `/`.
#[cfg(target_vendor = "apple")]
const SHM_NAME_MAX: usize = 31; // PSHMNAMLEN
#[cfg(not(target_vendor = "apple"))]
const SHM_NAME_MAX: usize = 255;

/// Where the per-user sidecar directory `memlink-UID` is made.
const SIDECAR_PARENT: &str = "/tmp";

// ---------------------------------------------------------------------------
// The sidecar directory and files
// ---------------------------------------------------------------------------

fn sidecar_dir_path() -> String {
    format!(
        "{SIDECAR_PARENT}/memlink-{}",
        rustix::process::geteuid().as_raw()
    )
}

/// The sidecar directory.
///
/// The descriptor is cached, but checked on each use against the path (one
/// `lstat`): a `/tmp` cleaner may delete the directory while a process runs
/// (macOS's removes empty directories left untouched for days), and after
/// `seteuid` the path is another user's. Then it is made and opened again.
fn sidecar_dir() -> io::Result<BorrowedFd<'static>> {
    /// The open directory and its (device, inode).
    static DIR: Mutex<Option<(&'static OwnedFd, (u64, u64))>> = Mutex::new(None);
    let path = sidecar_dir_path();
    let mut cached = DIR.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((dir, id)) = *cached {
        if fs::lstat(path.as_str()).is_ok_and(|st| file_id(&st) == id) {
            return Ok(dir.as_fd());
        }
    }
    let dir = open_sidecar_dir()?;
    let id = file_id(&fs::fstat(&dir)?);
    // Leaked, never closed: other threads may still be using a descriptor
    // borrowed from it. One descriptor per re-opening, which is rare.
    let dir: &'static OwnedFd = Box::leak(Box::new(dir));
    *cached = Some((dir, id));
    Ok(dir.as_fd())
}

/// (device, inode) of a file, to tell whether two paths or descriptors are
/// the same file.
#[allow(clippy::unnecessary_cast)] // dev_t is i32 on macOS, u64 on FreeBSD
fn file_id(st: &fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// Makes (if needed) and opens `/tmp/memlink-UID`, refusing anything that is
/// not a directory owned by this user: `/tmp` is shared, and another user
/// could have put a symbolic link or their own directory there.
fn open_sidecar_dir() -> io::Result<OwnedFd> {
    let uid = rustix::process::geteuid().as_raw();
    let parent = fs::open(
        SIDECAR_PARENT,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let leaf = format!("memlink-{uid}");
    match fs::mkdirat(&parent, leaf.as_str(), Mode::RWXU) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    // NOFOLLOW: a symbolic link in its place fails here (ELOOP, or EMLINK on
    // FreeBSD) instead of being followed.
    let dir = fs::openat(
        &parent,
        leaf.as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = fs::fstat(&dir)?;
    if st.st_uid != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to uid {}, not to this user (uid {uid})",
                st.st_uid
            ),
        ));
    }
    if u32::from(st.st_mode) & 0o077 != 0 {
        // Ours, but opened up to others since: make it private again.
        fs::fchmod(&dir, Mode::RWXU)?;
    }
    Ok(dir)
}

/// An error about the sidecar directory, which says which directory.
fn dir_error(operation: Operation, kind: ObjectKind, given: &str, e: io::Error) -> Error {
    Error::os(operation, kind, given, e).with_detail(format!(
        "cannot use {}, where memlink keeps track of its objects",
        sidecar_dir_path()
    ))
}

fn dir_for(operation: Operation, kind: ObjectKind, name: &Name) -> Result<BorrowedFd<'static>> {
    sidecar_dir().map_err(|e| dir_error(operation, kind, name.given(), e))
}

/// The sidecar file name for the base name `base`.
///
/// Names are case-sensitive, but `/tmp` may not be (APFS, macOS's default,
/// is not), so the file name is the base name in lower case followed, when
/// it had capitals, by `+` and a bitmap of their positions in hex (bit
/// `i % 8` of byte `i / 8` for position `i`, trailing zero bytes left out):
/// `MMFSharedData` is `mmfshareddata+0f02`. No name contains `+`, so the
/// mapping can be undone ([`base_from_sidecar`]); a name of 200 bytes gives
/// at most 251, within the usual file-name limit of 255.
fn sidecar_file_name(base: &str) -> String {
    let mut bits: Vec<u8> = Vec::new();
    for (i, c) in base.bytes().enumerate() {
        if c.is_ascii_uppercase() {
            if bits.len() <= i / 8 {
                bits.resize(i / 8 + 1, 0);
            }
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    let mut file = base.to_ascii_lowercase();
    if !bits.is_empty() {
        file.push('+');
        for byte in bits {
            file.push_str(&format!("{byte:02x}"));
        }
    }
    file
}

/// The base name that the sidecar file name `file` stands for, or `None`
/// for a file memlink would not have made.
fn base_from_sidecar(file: &str) -> Option<String> {
    let (lower, hex) = match file.split_once('+') {
        Some((lower, hex)) => (lower, hex),
        None => (file, ""),
    };
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    let mut base = lower.as_bytes().to_vec();
    for (index, pair) in hex.as_bytes().chunks(2).enumerate() {
        let byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                base.get_mut(index * 8 + bit)?.make_ascii_uppercase();
            }
        }
    }
    let base = String::from_utf8(base).ok()?;
    // Only the one spelling memlink writes maps back (this rejects capitals
    // outside the bitmap, bits on non-letters, padding, signs, ...).
    (sidecar_file_name(&base) == file).then_some(base)
}

/// Reads the mark of a sidecar; `None` if it has no valid one.
fn read_mark(sidecar: &OwnedFd) -> io::Result<Option<Mark>> {
    let mut buf = [0u8; 64];
    let n = rustix::io::pread(sidecar, &mut buf, 0)?;
    // A full buffer is longer than any mark: not one.
    Ok(if n < buf.len() {
        Mark::decode(&buf[..n])
    } else {
        None
    })
}

/// Replaces the content of a sidecar with `mark`.
fn write_mark(sidecar: &OwnedFd, mark: Mark) -> io::Result<()> {
    let text = mark.encode();
    fs::ftruncate(sidecar, 0)?;
    let written = rustix::io::pwrite(sidecar, text.as_bytes(), 0)?;
    if written != text.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to a sidecar file",
        ));
    }
    Ok(())
}

/// Whether the path `file` in `dir` still names the sidecar open as
/// `sidecar` (a closer or reaper may have removed it since it was opened).
fn is_current(dir: BorrowedFd<'_>, file: &str, sidecar: &OwnedFd) -> io::Result<bool> {
    let ours = fs::fstat(sidecar)?;
    match fs::statat(dir, file, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(named) => Ok(file_id(&named) == file_id(&ours)),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A non-blocking exclusive `flock`: `Ok(false)` if another open file
/// description holds a lock on the file.
fn try_lock_exclusive(fd: &OwnedFd) -> io::Result<bool> {
    match fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A blocking shared `flock` (also converts an exclusive lock held through
/// `fd` into a shared one). Blocks only while another process holds the
/// exclusive lock, which it does for a few system calls.
fn lock_shared(fd: &OwnedFd) -> io::Result<()> {
    loop {
        match fs::flock(fd, FlockOperation::LockShared) {
            Err(Errno::INTR) => continue,
            result => return result.map_err(Into::into),
        }
    }
}

/// Whether a shared-memory object named `shm_name` exists.
fn shm_exists(shm_name: &str) -> io::Result<bool> {
    match shm::open(shm_name, shm::OFlags::RDONLY, Mode::empty()) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        // It exists; we just may not read it.
        Err(Errno::ACCESS) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

fn remove_sidecar(dir: BorrowedFd<'_>, file: &str) -> io::Result<()> {
    match fs::unlinkat(dir, file, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes an object and then its sidecar. The caller holds the exclusive
/// lock on the sidecar and has checked [`is_current`], so no handle exists
/// and no other memlink process can touch the name meanwhile.
fn remove_locked(dir: BorrowedFd<'_>, file: &str, shm_name: &str) -> io::Result<()> {
    match shm::unlink(shm_name) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    remove_sidecar(dir, file)
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

// ---------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------

/// An open named object: the shared-memory descriptor, and our own open of
/// its sidecar holding a shared `flock`.
#[derive(Debug)]
pub(crate) struct Handle {
    shm: OwnedFd,
    /// `None` for a foreign object, which has no sidecar.
    sidecar: Option<OwnedFd>,
    name: Name,
    kind: ObjectKind,
    size: u64,
    /// Whether this is a memlink last-handle object, whose name goes with
    /// the last handle.
    remove_on_last_close: bool,
}

impl Handle {
    pub(crate) fn create(name: &Name, kind: ObjectKind, spec: &CreateSpec) -> Result<Handle> {
        let op = Operation::Create;
        let err = |e: io::Error| os_err(op, kind, name, e);
        let taken = || Error::new(op, kind, name.given(), ErrorKind::AlreadyExists);
        let dir = dir_for(op, kind, name)?;
        let file = sidecar_file_name(name.base());
        let shm_name = name.shm_open_name(SHM_NAME_MAX);
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
        let shm_name = name.shm_open_name(SHM_NAME_MAX);
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
                shm,
                sidecar: Some(sidecar),
                name: name.clone(),
                kind,
                size,
                remove_on_last_close: mark.lifetime == Lifetime::LastHandle,
            });
        }
        Err(not_found().with_detail("the name kept being removed and re-created"))
    }

    /// The object's size: the size asked for by the creator's handle, and
    /// what the kernel reports for an opened one (rounded up to a whole page
    /// on macOS).
    pub(crate) fn size(&self) -> u64 {
        self.size
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

    pub(crate) fn map(&self, offset: u64, len: usize, writable: bool) -> Result<Mapping> {
        map_view(&self.shm, offset, len, writable, self.kind, &self.name)
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
        shm,
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
        shm,
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
            let _ = remove_locked(dir, &file, &self.name.shm_open_name(SHM_NAME_MAX));
        }
    }
}

// ---------------------------------------------------------------------------
// Mappings
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// list, inspect, remove, reap
// ---------------------------------------------------------------------------

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
        name.shm_open_name(SHM_NAME_MAX).as_str(),
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
    let listing = fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    let mut entries = fs::Dir::new(listing).map_err(|e| err(e.into()))?;
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(|e| err(e.into()))?;
        let Ok(file) = entry.file_name().to_str() else {
            continue;
        };
        // Skips ".", "..", and anything else memlink did not make.
        let Some(base) = base_from_sidecar(file) else {
            continue;
        };
        let Ok(name) = Name::parse(&base, operation, ObjectKind::Region) else {
            continue;
        };
        let file = file.to_owned();
        if let Some(found) = describe(dir, &file, &name).map_err(err)? {
            visit(dir, &file, &name, found).map_err(err)?;
        }
    }
    Ok(())
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
                remove_locked(dir, file, &name.shm_open_name(SHM_NAME_MAX))?;
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
            remove_locked(dir, &file, &name.shm_open_name(SHM_NAME_MAX)).map_err(err)?;
        }
        return Ok(info);
    }
    // No memlink object of ours: maybe a foreign one.
    let shm_name = name.shm_open_name(SHM_NAME_MAX);
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
    shm::unlink(name.shm_open_name(SHM_NAME_MAX).as_str()).map_err(|e| err(e.into()))
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
    let shm_name = name.shm_open_name(SHM_NAME_MAX);
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
                match remove_locked(dir, file, &name.shm_open_name(SHM_NAME_MAX)) {
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

/// Named sync objects are not built for these platforms yet: neither has
/// the shared futex the Linux ones rest on, and macOS has no robust
/// mutexes. Each call is a clear `Unsupported` error.
mod sync {
    use std::time::Instant;

    use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
    use crate::name::Name;
    use crate::object::CreateSpec;
    use crate::sync::{EventReset, Wait};

    fn unsupported<T>(op: Operation, kind: ObjectKind, name: &Name) -> Result<T> {
        Err(Error::new(op, kind, name.given(), ErrorKind::Unsupported)
            .with_detail("named sync objects exist on Linux and Windows only"))
    }

    /// Never constructed: every constructor fails.
    pub(crate) enum Never {}

    pub(crate) struct RawMutex(Never);
    pub(crate) struct RawSemaphore(Never);
    pub(crate) struct RawEvent(Never);

    impl RawMutex {
        pub(crate) fn create(name: &Name, _: &CreateSpec) -> Result<RawMutex> {
            unsupported(Operation::Create, ObjectKind::Mutex, name)
        }
        pub(crate) fn open(name: &Name) -> Result<RawMutex> {
            unsupported(Operation::Open, ObjectKind::Mutex, name)
        }
        pub(crate) fn lock(&self, _: Option<Instant>) -> Result<Wait> {
            match self.0 {}
        }
        pub(crate) fn unlock(&self) {
            match self.0 {}
        }
    }

    impl RawSemaphore {
        pub(crate) fn create(name: &Name, _: &CreateSpec, _: u32, _: u32) -> Result<RawSemaphore> {
            unsupported(Operation::Create, ObjectKind::Semaphore, name)
        }
        pub(crate) fn open(name: &Name) -> Result<RawSemaphore> {
            unsupported(Operation::Open, ObjectKind::Semaphore, name)
        }
        pub(crate) fn wait(&self, _: Option<Instant>) -> Result<Wait> {
            match self.0 {}
        }
        pub(crate) fn release(&self, _: u32) -> Result<u32> {
            match self.0 {}
        }
    }

    impl RawEvent {
        pub(crate) fn create(
            name: &Name,
            _: &CreateSpec,
            _: EventReset,
            _: bool,
        ) -> Result<RawEvent> {
            unsupported(Operation::Create, ObjectKind::Event, name)
        }
        pub(crate) fn open(name: &Name) -> Result<RawEvent> {
            unsupported(Operation::Open, ObjectKind::Event, name)
        }
        pub(crate) fn set(&self) -> Result<()> {
            match self.0 {}
        }
        pub(crate) fn reset(&self) -> Result<()> {
            match self.0 {}
        }
        pub(crate) fn wait(&self, _: Option<Instant>) -> Result<Wait> {
            match self.0 {}
        }
    }
}

pub(crate) use sync::{RawEvent, RawMutex, RawSemaphore};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_survive_case_folding_and_map_back() {
        assert_eq!(sidecar_file_name("psm_1a2b"), "psm_1a2b");
        assert_eq!(sidecar_file_name("MMFSharedData"), "mmfshareddata+0f02");
        assert_ne!(sidecar_file_name("Foo"), sidecar_file_name("foo"));
        let long = format!("{}Z", "A".repeat(199));
        for base in ["psm_1a2b", "MMFSharedData", "a.B-c_D@9", "x", long.as_str()] {
            let file = sidecar_file_name(base);
            assert!(file.len() <= 255, "{file}");
            assert!(!file.bytes().any(|c| c.is_ascii_uppercase()), "{file}");
            assert_eq!(base_from_sidecar(&file).as_deref(), Some(base));
        }
        for junk in [
            "Foo", "foo+", "foo+0", "foo+00", "foo+08", "foo++1", "a+0f02", "ab+zz",
        ] {
            assert_eq!(base_from_sidecar(junk), None, "{junk}");
        }
    }

    #[test]
    fn marks_round_trip() {
        for lifetime in [Lifetime::LastHandle, Lifetime::Persistent] {
            let mark = Mark {
                kind: ObjectKind::Region,
                lifetime,
            };
            assert_eq!(Mark::decode(mark.encode().as_bytes()), Some(mark));
        }
        assert_eq!(Mark::decode(b""), None);
        assert_eq!(Mark::decode(b"region;last-handlex"), None);
    }
}
