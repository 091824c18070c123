//! Linux: POSIX shared-memory objects in `/dev/shm`, with Windows lifetime
//! emulated by `flock`.
//!
//! # The protocol
//!
//! An object is the plain file `/dev/shm/NAME`; the user's bytes start at
//! offset 0 and nothing else is stored in them, so `shm_open("/NAME")` in C
//! and `multiprocessing.shared_memory.SharedMemory("NAME")` in Python see
//! the same bytes.
//!
//! **Marking.** memlink's objects carry the extended attribute
//! `user.memlink` = `KIND;LIFETIME` (`region;last-handle`, ...). tmpfs
//! supports `user.*` attributes from Linux 6.6. On older kernels the
//! fallback marks a last-handle object with the sticky bit (`S_ISVTX`,
//! which Linux ignores on regular files); a persistent object there is left
//! unmarked, which is harmless since unmarked objects are persistent anyway.
//! The fallback cannot record the kind of object; sync objects check the
//! header in their page instead, regions cannot. Objects without a mark are *foreign*: never reaped, only removed on
//! request.
//!
//! **Liveness.** Every handle holds a shared `flock` on its own open file
//! description. The kernel drops it when the handle is closed or the process
//! dies, so "a non-blocking exclusive `flock` succeeds" means "no live
//! handle". `flock` (not `fcntl` record locks, which a process loses when it
//! closes *any* descriptor of the file) is what makes this hold.
//!
//! **Create** makes the object nameless with `O_TMPFILE`, sets its mode,
//! mark and size (reserving the memory with `fallocate`, so a full
//! `/dev/shm` is `ENOSPC` now rather than `SIGBUS` later), takes its shared
//! lock, and only then gives it its name with `linkat`, which fails if the
//! name exists. Nobody can open a half-made object, a crash before `linkat`
//! leaves nothing behind, and of N racing creators exactly one `linkat`
//! wins. A creator that finds the name taken checks whether the holder is
//! stale (a last-handle object with no live handle): if so it removes the
//! name and tries again.
//!
//! **Close** of a last-handle object converts the shared lock to a
//! non-blocking exclusive one. Success means no other handle exists, so the
//! closer removes the name (after checking that the name still refers to
//! its inode). Two handles closing at once cannot both fail: the kernel
//! orders the two conversions, and the second sees the first one's lock
//! gone.
//!
//! **Open** first tries the exclusive lock: success on a last-handle object
//! means its holders are all dead, so it is removed and the open reports
//! `NotFound`, as on Windows. Otherwise it takes the shared lock and then
//! checks `st_nlink` with `fstat`: an opener that raced a closer (opened the
//! file just before the closer removed the name) finds a link count of 0
//! and starts again, so it never holds an object that no name refers to.
//!
//! **The rule that keeps all this sound**: whoever wins the exclusive lock
//! on a last-handle object removes its name before letting go (closer,
//! opener, creator, reaper alike). A prober that let go of a stale object
//! without removing it could hand an opener that was waiting for the lock
//! a dead object as if it were alive. So `list` and `inspect` read
//! liveness from `/proc/locks` (every handle's shared lock is there) and do
//! not probe; only `reap` probes, and removes. A creator that finds the
//! lock briefly held by such a process waits it out with a shared lock and
//! looks again, rather than reporting the name as taken.
//!
//! Known limits: `/proc/locks` shows only the locks of processes in the
//! caller's pid namespace, so a holder in another container sharing
//! `/dev/shm` makes `list` call a live object stale (reaping still checks
//! with the lock, and leaves it). Between a closer's check that the name
//! still refers to its inode and its `unlinkat`, a third process that
//! removes the name by force and creates a new object under it can lose
//! that new object; Linux has no conditional unlink. On kernels without
//! `user.*` xattrs on tmpfs, a foreign object that happens to carry the
//! sticky bit is taken for a memlink last-handle object.
//!
//! A handle must not be shared with a child made by `fork` (the child's
//! copy of the descriptor shares the lock); handles are close-on-exec.

mod messaging;
mod sync;

pub(crate) use messaging::{messaging_supported, Claim, Doorbell};
pub(crate) use sync::{RawEvent, RawMutex, RawSemaphore};

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rustix::fs::{self, AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

pub(crate) use super::unix::Handle;
use super::unix::{for_each_entry, map_fd, os_err, reserve_error, Mark, RACE_RETRIES};
use super::Mapping;
use super::{list_error, CreateSpec};
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::types::{Access, Lifetime, ObjectInfo, State};

const SHM_DIR: &str = "/dev/shm";
const MARK_ATTR: &str = "user.memlink";
const SHORTAGE: &str = "more than /dev/shm has free";

fn shm_dir() -> io::Result<BorrowedFd<'static>> {
    static DIR: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.as_fd());
    }
    let fd = fs::open(
        SHM_DIR,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(DIR.get_or_init(|| fd).as_fd())
}

/// Reads and writes the mark as the extended attribute `user.memlink`.
trait XattrMark: Sized {
    fn write(self, fd: BorrowedFd<'_>, mode: u32) -> io::Result<()>;
    fn read(fd: BorrowedFd<'_>, st_mode: u32, expected: ObjectKind) -> Option<Self>;
}

impl XattrMark for Mark {
    fn write(self, fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
        match fs::fsetxattr(
            fd,
            MARK_ATTR,
            self.encode().as_bytes(),
            fs::XattrFlags::empty(),
        ) {
            Ok(()) => Ok(()),
            Err(Errno::OPNOTSUPP) if self.lifetime == Lifetime::LastHandle => {
                fs::fchmod(fd, Mode::from_raw_mode(mode | libc::S_ISVTX))?;
                Ok(())
            }
            Err(Errno::OPNOTSUPP) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the mark; `None` means a foreign object. The sticky-bit
    /// fallback cannot tell kinds apart, so it reports `expected` (sync
    /// objects still check the header in their page).
    fn read(fd: BorrowedFd<'_>, st_mode: u32, expected: ObjectKind) -> Option<Mark> {
        let mut buf = [0u8; 64];
        match fs::fgetxattr(fd, MARK_ATTR, &mut buf) {
            Ok(n) => Mark::decode(&buf[..n]),
            Err(Errno::OPNOTSUPP) if st_mode & libc::S_ISVTX != 0 => Some(Mark {
                kind: expected,
                lifetime: Lifetime::LastHandle,
            }),
            Err(_) => None,
        }
    }
}

/// Sets up a new object's contents before it is published.
pub(super) type Initializer<'a> = &'a mut dyn FnMut(&Mapping) -> Result<()>;

impl Handle {
    pub(crate) fn create(name: &Name, kind: ObjectKind, spec: &CreateSpec) -> Result<Handle> {
        Handle::create_initialized(name, kind, spec, None)
    }

    /// Creates an object whose contents `init` sets up before the object
    /// gets its name, so no other process ever sees it uninitialized.
    pub(super) fn create_initialized(
        name: &Name,
        kind: ObjectKind,
        spec: &CreateSpec,
        init: Option<Initializer<'_>>,
    ) -> Result<Handle> {
        let op = Operation::Create;
        let err = |e: io::Error| os_err(op, kind, name, e);
        let dir = shm_dir().map_err(err)?;
        let mode = spec.mode & 0o777;
        let fd = fs::openat(
            dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| err(e.into()))?;
        // The umask may have narrowed the mode given to open.
        fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| err(e.into()))?;
        let mark = Mark {
            kind,
            lifetime: spec.lifetime,
        };
        mark.write(fd.as_fd(), mode).map_err(err)?;
        if spec.reserve {
            fs::fallocate(&fd, fs::FallocateFlags::empty(), 0, spec.size)
                .map_err(|e| reserve_error(name, kind, spec.size, e, SHORTAGE))?;
        } else {
            fs::ftruncate(&fd, spec.size)
                .map_err(|e| reserve_error(name, kind, spec.size, e, SHORTAGE))?;
        }
        // Cannot block: nobody else can reach a nameless file.
        fs::flock(&fd, FlockOperation::LockShared).map_err(|e| err(e.into()))?;
        let mut handle = Handle {
            fd,
            name: name.clone(),
            kind,
            size: spec.size,
            // Not until it has a name: there is nothing to remove before.
            remove_on_last_close: false,
        };
        if let Some(init) = init {
            init(&handle.map(0, spec.size as usize, true)?)?;
        }
        for _ in 0..RACE_RETRIES {
            match publish(&handle.fd, dir, name.base()) {
                Ok(()) => {
                    handle.remove_on_last_close = spec.lifetime == Lifetime::LastHandle;
                    return Ok(handle);
                }
                Err(Errno::EXIST) => {
                    if remove_if_stale(dir, name.base()).map_err(err)? == Taken::Held {
                        return Err(Error::new(op, kind, name.given(), ErrorKind::AlreadyExists));
                    }
                }
                Err(e) => return Err(err(e.into())),
            }
        }
        Err(Error::new(op, kind, name.given(), ErrorKind::AlreadyExists)
            .with_detail("the name kept being re-created while stale copies were removed"))
    }

    pub(crate) fn open(name: &Name, kind: ObjectKind, access: Access) -> Result<Handle> {
        let op = Operation::Open;
        let err = |e: io::Error| os_err(op, kind, name, e);
        let dir = shm_dir().map_err(err)?;
        let flags = match access {
            Access::ReadOnly => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        } | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            // Harmless on a regular file; keeps a FIFO under the name from
            // blocking the open until it is found not to be an object.
            | OFlags::NONBLOCK;
        for _ in 0..RACE_RETRIES {
            let fd = match fs::openat(dir, name.base(), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    return Err(Error::new(op, kind, name.given(), ErrorKind::NotFound))
                }
                Err(Errno::LOOP) => {
                    return Err(Error::new(op, kind, name.given(), ErrorKind::WrongKind)
                        .with_detail("it is a symbolic link, not a shared-memory object"))
                }
                Err(e) => return Err(err(e.into())),
            };
            let st = fs::fstat(&fd).map_err(|e| err(e.into()))?;
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err(Error::new(op, kind, name.given(), ErrorKind::WrongKind)
                    .with_detail("it is not a shared-memory object"));
            }
            let mark = Mark::read(fd.as_fd(), st.st_mode, kind);
            let last_handle = mark.is_some_and(|m| m.lifetime == Lifetime::LastHandle);
            match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) if last_handle => {
                    // Every holder is dead: the object is gone, as on
                    // Windows, whatever its kind.
                    unlink_if_same(dir, name.base(), &fd).map_err(err)?;
                    return Err(Error::new(op, kind, name.given(), ErrorKind::NotFound));
                }
                Ok(()) | Err(Errno::WOULDBLOCK) => {}
                Err(e) => return Err(err(e.into())),
            }
            if let Some(mark) = mark.filter(|m| m.kind != kind) {
                return Err(Error::new(op, kind, name.given(), ErrorKind::WrongKind)
                    .with_detail(format!("it is a {}", mark.kind)));
            }
            // Blocks only while another process briefly holds the exclusive
            // lock to close, probe or reap.
            fs::flock(&fd, FlockOperation::LockShared).map_err(|e| err(e.into()))?;
            let st = fs::fstat(&fd).map_err(|e| err(e.into()))?;
            if st.st_nlink == 0 {
                continue; // raced a closer that removed the name; look again
            }
            return Ok(Handle {
                fd,
                name: name.clone(),
                kind,
                size: st.st_size as u64,
                remove_on_last_close: last_handle,
            });
        }
        Err(Error::new(op, kind, name.given(), ErrorKind::NotFound)
            .with_detail("the name kept being removed and re-created"))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.remove_on_last_close {
            return;
        }
        if fs::flock(&self.fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
            if let Ok(dir) = shm_dir() {
                // Nothing to report to: a failure leaves a stale name, which
                // the next create/open/reap removes.
                let _ = unlink_if_same(dir, self.name.base(), &self.fd);
            }
        }
    }
}

/// Gives the nameless file `fd` the name `base` in `dir`; fails with
/// `EEXIST` if the name is taken.
///
/// `linkat(fd, "", AT_EMPTY_PATH)` is the direct way, but needs
/// `CAP_DAC_READ_SEARCH` on most kernels; the `/proc/self/fd` path works for
/// everyone and costs a procfs lookup. Which one works is learnt once.
fn publish(fd: &OwnedFd, dir: BorrowedFd<'_>, base: &str) -> Result<(), Errno> {
    // Relaxed: a cached hint guarding no other data; threads that race on
    // it at worst each try the direct way once.
    static EMPTY_PATH_REFUSED: AtomicBool = AtomicBool::new(false);
    if !EMPTY_PATH_REFUSED.load(Ordering::Relaxed) {
        match fs::linkat(fd, "", dir, base, AtFlags::EMPTY_PATH) {
            Err(Errno::NOENT) | Err(Errno::PERM) => {
                EMPTY_PATH_REFUSED.store(true, Ordering::Relaxed)
            }
            other => return other,
        }
    }
    let proc_path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect("no NUL in a formatted path");
    fs::linkat(
        fs::CWD,
        proc_path.as_c_str(),
        dir,
        base,
        AtFlags::SYMLINK_FOLLOW,
    )
}

/// Removes `base` from `dir` if it still names the inode open as `fd`.
/// The caller holds the exclusive lock, so no handle can appear meanwhile.
fn unlink_if_same(dir: BorrowedFd<'_>, base: &str, fd: &OwnedFd) -> io::Result<()> {
    let ours = fs::fstat(fd)?;
    if ours.st_nlink == 0 {
        return Ok(());
    }
    match fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(named) if named.st_dev == ours.st_dev && named.st_ino == ours.st_ino => {
            match fs::unlinkat(dir, base, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Ok(_) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens `base` read-only to look at it or lock it, never following a link
/// and never blocking (on a FIFO someone put there).
fn open_to_look(dir: BorrowedFd<'_>, base: &str) -> Result<OwnedFd, Errno> {
    fs::openat(
        dir,
        base,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
}

/// What became of a name that was found taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// It named a stale memlink object, which this call removed.
    Removed,
    /// The name went away meanwhile.
    Gone,
    /// A live handle holds it, or it is not a memlink last-handle object.
    Held,
}

/// If `base` names a memlink last-handle object with no live handle,
/// removes it.
fn remove_if_stale(dir: BorrowedFd<'_>, base: &str) -> io::Result<Taken> {
    let fd = match open_to_look(dir, base) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Taken::Gone),
        Err(Errno::ACCESS) | Err(Errno::LOOP) => return Ok(Taken::Held),
        Err(e) => return Err(e.into()),
    };
    let st = fs::fstat(&fd)?;
    let mark = Mark::read(fd.as_fd(), st.st_mode, ObjectKind::Region);
    if st.st_mode & libc::S_IFMT != libc::S_IFREG
        || !mark.is_some_and(|m| m.lifetime == Lifetime::LastHandle)
    {
        return Ok(Taken::Held);
    }
    match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => {
            // A live handle, or another process's brief exclusive lock on a
            // stale object (a reaper, an opener, a closer). Wait that out
            // with a shared lock, then look again: converting to exclusive
            // succeeds only if no handle is left.
            fs::flock(&fd, FlockOperation::LockShared)?;
            if fs::fstat(&fd)?.st_nlink == 0 {
                return Ok(Taken::Gone);
            }
            match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) => return Ok(Taken::Held),
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    }
    unlink_if_same(dir, base, &fd)?;
    Ok(Taken::Removed)
}

/// The holders of every shared flock in the system (every live handle has
/// one), keyed by (device, inode), from `/proc/locks`. Exclusive locks are
/// brief probes, not handles, and are left out.
fn flock_holders() -> Option<Vec<((u64, u64), u32)>> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  READ  1234 00:1a:5678 0 EOF"; blocked waiters
    // have a "->" after the number and are not holders.
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            fields.next()?;
            if fields.next()? != "FLOCK" {
                return None;
            }
            fields.next()?; // ADVISORY
            if fields.next()? != "READ" {
                return None;
            }
            let pid: u32 = fields.next()?.parse().ok()?;
            let mut dev_ino = fields.next()?.rsplitn(2, ':');
            let ino: u64 = dev_ino.next()?.parse().ok()?;
            let (major, minor) = dev_ino.next()?.split_once(':')?;
            let major = u32::from_str_radix(major, 16).ok()?;
            let minor = u32::from_str_radix(minor, 16).ok()?;
            Some(((libc::makedev(major, minor), ino), pid))
        })
        .collect::<Vec<_>>()
        .into()
}

/// What is known about the object `base`, without changing anything it
/// can avoid changing: liveness comes from `/proc/locks` (a handle's shared
/// lock), not from an exclusive probe, which could make an opener waiting
/// on it take a stale object for a live one. Only where `/proc/locks`
/// cannot be read does it probe, and then removes a stale object at once.
fn describe(
    dir: BorrowedFd<'_>,
    base: &str,
    holders: Option<&[((u64, u64), u32)]>,
) -> io::Result<Option<ObjectInfo>> {
    let st = match fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(None);
    }
    let mut info = ObjectInfo {
        name: base.to_owned(),
        kind: None,
        size: st.st_size as u64,
        lifetime: Lifetime::Persistent,
        state: State::Unknown,
        holders: Vec::new(),
        mode: Some(st.st_mode & 0o7777),
        detail: None,
    };
    let fd = match open_to_look(dir, base) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(_) => return Ok(Some(info)),
    };
    let st = fs::fstat(&fd)?;
    let key = (st.st_dev, st.st_ino);
    let holders_of = |all: &[((u64, u64), u32)]| {
        let mut pids: Vec<u32> = all
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|&(_, pid)| pid)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    };
    if let Some(all) = holders {
        info.holders = holders_of(all);
    }
    if let Some(mark) = Mark::read(fd.as_fd(), st.st_mode, ObjectKind::Region) {
        info.kind = Some(mark.kind);
        info.lifetime = mark.lifetime;
        if mark.kind != ObjectKind::Region {
            info.detail = map_fd(&fd, 0, info.size.min(4096) as usize, false)
                .ok()
                .and_then(|page| sync::describe_state(mark.kind, &page));
        }
    }
    if info.kind.is_none() || info.lifetime == Lifetime::Persistent {
        info.state = State::Alive;
        return Ok(Some(info));
    }
    info.state = match holders {
        Some(_) if !info.holders.is_empty() => State::Alive,
        // No handle in the snapshot: look again now, since a creator may
        // have published the object after the snapshot (it takes its lock
        // before the name appears, so a fresh look sees it).
        Some(_) => match flock_holders() {
            Some(now) if holders_of(&now).is_empty() => State::Stale,
            Some(now) => {
                info.holders = holders_of(&now);
                State::Alive
            }
            None => State::Unknown,
        },
        None => match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                unlink_if_same(dir, base, &fd)?;
                State::Stale
            }
            Err(Errno::WOULDBLOCK) => State::Alive,
            Err(_) => State::Unknown,
        },
    };
    Ok(Some(info))
}

fn for_each_object(
    operation: Operation,
    mut visit: impl FnMut(BorrowedFd<'_>, &str, ObjectInfo) -> io::Result<()>,
) -> Result<()> {
    let err = |e: io::Error| list_error(operation, e);
    let dir = shm_dir().map_err(err)?;
    let holders = flock_holders();
    for_each_entry(dir, |base| match describe(dir, base, holders.as_deref())? {
        Some(info) => visit(dir, base, info),
        None => Ok(()),
    })
    .map_err(err)
}

pub(crate) fn list() -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    for_each_object(Operation::List, |_, _, info| {
        out.push(info);
        Ok(())
    })?;
    Ok(out)
}

pub(crate) fn inspect(name: &Name) -> Result<ObjectInfo> {
    let err = |e: io::Error| os_err(Operation::Inspect, ObjectKind::Region, name, e);
    let dir = shm_dir().map_err(err)?;
    match describe(dir, name.base(), flock_holders().as_deref()).map_err(err)? {
        Some(info) => Ok(info),
        None => Err(Error::new(
            Operation::Inspect,
            ObjectKind::Region,
            name.given(),
            ErrorKind::NotFound,
        )),
    }
}

pub(crate) fn remove(name: &Name) -> Result<()> {
    let err = |e: io::Error| os_err(Operation::Remove, ObjectKind::Region, name, e);
    let dir = shm_dir().map_err(err)?;
    fs::unlinkat(dir, name.base(), AtFlags::empty()).map_err(|e| err(e.into()))
}

pub(crate) fn reap() -> Result<Vec<ObjectInfo>> {
    let mut reaped = Vec::new();
    for_each_object(Operation::Reap, |dir, base, info| {
        // The exclusive lock in remove_if_stale is the proof; the listing
        // only says where to look.
        if info.state == State::Stale && remove_if_stale(dir, base)? == Taken::Removed {
            reaped.push(info);
        }
        Ok(())
    })?;
    Ok(reaped)
}
