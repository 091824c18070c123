//! Linux: what the messaging layer needs beyond regions — participant
//! places whose liveness the kernel keeps, and doorbells to sleep on.
//!
//! **Places.** A service is one object in `/dev/shm`; each participant
//! (publisher or subscriber) claims a numbered place in it by taking an
//! open-file-description lock (`F_OFD_SETLK`, Linux 3.15) on byte `index`
//! of the object, through its own descriptor. Like the `flock` that keeps
//! the object alive, the kernel drops the lock when the descriptor is closed
//! or the process dies, so "the byte is locked" means "a live participant
//! holds the place" — no pid, no heartbeat. OFD locks are independent of
//! `flock` (the object's own liveness) and, unlike classic `fcntl` record
//! locks, are not lost when the process closes some other descriptor of the
//! file. The locked bytes may lie past the end of the object: locks do not
//! need data there.
//!
//! **Doorbells** (futex words inside the service, and pollable sockets
//! for async waits) are in `doorbell.rs`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::io::Errno;

use super::{Handle, Mapping};
use crate::error::{Error, ObjectKind, Operation, Result};
use crate::sys::CreateSpec;

/// Whether messaging works on this platform: it does.
pub(crate) fn messaging_supported(_name: &crate::name::Name) -> Result<()> {
    Ok(())
}

impl Handle {
    /// Creates the object with `init` setting up its bytes before it gets
    /// its name: nobody ever sees it half made.
    pub(crate) fn create_with(
        name: &crate::name::Name,
        kind: ObjectKind,
        spec: &CreateSpec,
        init: &mut dyn FnMut(&Mapping) -> Result<()>,
    ) -> Result<Handle> {
        Handle::create_initialized(name, kind, spec, Some(init))
    }

    /// Claims participant place `index` for this handle. `Ok(None)` when a
    /// live handle (of any process, this one included) holds it. The claim
    /// lasts until the returned [`Claim`] is dropped, this handle's process
    /// dies, or the descriptor is closed.
    pub(crate) fn claim(&self, index: u32) -> Result<Option<Claim>> {
        let err = |e: Errno| self.messaging_error(e);
        // A duplicate shares the open file description, which owns the lock:
        // the claim then needs nothing from the handle to let go.
        let fd = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0).map_err(err)?;
        match ofd_lock(&fd, libc::F_OFD_SETLK, libc::F_WRLCK as i16, index) {
            Ok(_) => Ok(Some(Claim { fd, index })),
            Err(Errno::AGAIN | Errno::ACCESS) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Whether a live handle other than this one holds place `index`.
    pub(crate) fn is_claimed(&self, index: u32) -> Result<bool> {
        let found = ofd_lock(&self.fd, libc::F_OFD_GETLK, libc::F_WRLCK as i16, index)
            .map_err(|e| self.messaging_error(e))?;
        Ok(found != libc::F_UNLCK as i16)
    }

    fn messaging_error(&self, e: Errno) -> Error {
        Error::os(Operation::Connect, self.kind, self.name.given(), e.into())
    }
}

/// One open-file-description lock call on byte `index`; returns the lock
/// type the kernel reports back (for `F_OFD_GETLK`, the conflicting one).
fn ofd_lock(fd: &impl AsFd, cmd: i32, kind: i16, index: u32) -> Result<i16, Errno> {
    // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind;
    lock.l_whence = libc::SEEK_SET as i16;
    lock.l_start = i64::from(index);
    lock.l_len = 1;
    // l_pid must be 0 for OFD locks; zeroed() did that.
    // SAFETY: the descriptor is valid for the call and `lock` is a valid,
    // exclusively borrowed flock struct, as these commands require.
    let rc = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), cmd, &mut lock) };
    if rc == -1 {
        let code = std::io::Error::last_os_error().raw_os_error();
        return Err(Errno::from_raw_os_error(code.unwrap_or(libc::EIO)));
    }
    Ok(lock.l_type)
}

/// A claimed participant place; dropping it gives the place up.
#[derive(Debug)]
pub(crate) struct Claim {
    fd: OwnedFd,
    index: u32,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Explicitly: the handle's own descriptor shares the description and
        // stays open, so closing the duplicate alone would keep the lock.
        let _ = ofd_lock(
            &self.fd,
            libc::F_OFD_SETLK,
            libc::F_UNLCK as i16,
            self.index,
        );
    }
}
