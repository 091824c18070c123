//! Linux doorbells: the futex word itself for threads, plus a pollable
//! descriptor for async tasks, found by name.
//!
//! **Threads** sleep on the bell's `count` with `FUTEX_WAIT` (not
//! `FUTEX_PRIVATE`: the word is shared between processes, which map it at
//! different addresses; the kernel keys it by the page). A wait set sleeps
//! on several counts at once with `futex_waitv` (Linux 5.16).
//!
//! **Async tasks** need a descriptor their reactor can poll. The waiter
//! binds an abstract-namespace Unix datagram socket named after the
//! service's file (device and inode of `/dev/shm/NAME`, so a service made
//! again under the same name never reaches the old one's waiters) and the
//! place index; it dies with its process, so nothing is left to clean up.
//! A ringer that sees the bell's `listening` word set sends one byte to
//! that name from one unbound socket per process (`MSG_DONTWAIT`: a full
//! buffer means the doorbell is rung already; nobody bound means the
//! listener is gone). The research notes measured such a socket at 5–6 µs
//! a round trip here, against ~50 µs for a helper thread turning futex
//! wake-ups into an eventfd.
//!
//! Pairing: the waiter raises `listening` (SeqCst) before it sets its
//! sleeping mark; the ringer loads `listening` (SeqCst) after it loaded the
//! mark. A ringer that saw the mark therefore sees `listening` too.
//! The waiter registers with its reactor first and reads the count after,
//! so a ring between its re-check and its registration changes the count
//! it reads, and a later one makes the socket readable.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Instant;

use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

use super::Handle;
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::layout::Bell;
use crate::sys::{Armed, Waiters};

/// How many doorbells one `futex_waitv` call can wait on.
pub(crate) const WAIT_ANY_MAX: usize = 128;

/// A participant's doorbell: where it sleeps, and how others ring it.
#[derive(Debug)]
pub(crate) struct Doorbell {
    /// The abstract socket name of this place's pollable doorbell.
    address: SocketAddrUnix,
    /// The bound socket, registered with the reactor of the first async
    /// wait of this process; `binding` lets one thread make it.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    listener: OnceLock<super::reactor::Listener>,
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    binding: std::sync::Mutex<()>,
    waiters: Waiters,
    /// For errors.
    kind: ObjectKind,
    name: Name,
}

impl Doorbell {
    /// The doorbell of place `index` of the object `handle` refers to.
    pub(crate) fn new(handle: &Handle, index: u32) -> Result<Doorbell> {
        let st = rustix::fs::fstat(&handle.fd).map_err(|e| {
            Error::os(
                Operation::Connect,
                handle.kind,
                handle.name.given(),
                e.into(),
            )
        })?;
        let tag = format!("memlink/{:x}/{:x}/{index}", st.st_dev, st.st_ino);
        let address = SocketAddrUnix::new_abstract_name(tag.as_bytes()).map_err(|e| {
            Error::os(
                Operation::Connect,
                handle.kind,
                handle.name.given(),
                e.into(),
            )
        })?;
        Ok(Doorbell {
            address,
            #[cfg(any(feature = "tokio", feature = "async-io"))]
            listener: OnceLock::new(),
            #[cfg(any(feature = "tokio", feature = "async-io"))]
            binding: std::sync::Mutex::new(()),
            waiters: Waiters::default(),
            kind: handle.kind,
            name: handle.name.clone(),
        })
    }

    /// The kind and name of the object, for errors.
    pub(crate) fn object(&self) -> (ObjectKind, &str) {
        (self.kind, self.name.given())
    }

    /// The threads and tasks of this process that wait on this doorbell.
    pub(crate) fn waiters(&self) -> &Waiters {
        &self.waiters
    }

    /// Sleeps while `bell.count` holds `seen`, until rung or `deadline`.
    /// Returns false once the deadline has passed; may return early
    /// (callers re-check their condition).
    pub(crate) fn wait(&self, bell: &Bell, seen: u32, deadline: Option<Instant>) -> bool {
        super::sync::futex_wait(&bell.count, seen, deadline)
    }

    /// Rings: bumps `bell.count`, wakes whoever sleeps on it, and signals
    /// the pollable doorbell if the participant listens there. SeqCst: a
    /// sleeper read the count before it set its sleeping mark and sleeps
    /// only while the count is unchanged, so either its futex wait sees
    /// this change or this wake finds it asleep; the `listening` load pairs
    /// as the module docs say.
    pub(crate) fn ring(&self, bell: &Bell) {
        bell.count.fetch_add(1, Ordering::SeqCst);
        super::sync::futex_wake(&bell.count, super::sync::WAKE_ALL);
        if bell.listening.load(Ordering::SeqCst) != 0 {
            if let Some(sender) = sender() {
                // EAGAIN: rung already (the byte before this one is still
                // there); ECONNREFUSED: nobody listens any more. Either way
                // there is nothing more to do.
                let _ = rustix::net::sendto(
                    sender,
                    &[1],
                    SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
                    &self.address,
                );
            }
        }
    }

    /// Sleeps until one of `members` is rung (its count is not the one
    /// seen) or `deadline` passes.
    pub(crate) fn wait_any(members: &[Armed<'_>], deadline: Option<Instant>) -> Result<()> {
        use rustix::thread::futex;
        let Some(first) = members.first() else {
            return Ok(());
        };
        let waits: Vec<futex::Wait> = members
            .iter()
            .map(|m| {
                let mut w = futex::Wait::new();
                w.val = u64::from(m.seen);
                w.uaddr = futex::WaitPtr::new(m.bell.count.as_ptr().cast());
                // 32-bit words, shared between processes (no PRIVATE).
                w.flags = futex::WaitFlags::SIZE_U32;
                w
            })
            .collect();
        // futex_waitv takes an absolute CLOCK_MONOTONIC time.
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            let nanos = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
            rustix::fs::Timespec {
                tv_sec: now
                    .tv_sec
                    .saturating_add(left.as_secs().min(i64::MAX as u64 / 2) as i64)
                    + (nanos / 1_000_000_000) as i64,
                tv_nsec: (nanos % 1_000_000_000) as _,
            }
        });
        match futex::waitv(
            &waits,
            futex::WaitvFlags::empty(),
            timeout.as_ref(),
            rustix::time::ClockId::Monotonic,
        ) {
            Ok(_) => Ok(()),
            // Rung before the sleep (a count moved), the deadline, a signal.
            Err(
                rustix::io::Errno::AGAIN | rustix::io::Errno::TIMEDOUT | rustix::io::Errno::INTR,
            ) => Ok(()),
            Err(rustix::io::Errno::NOSYS) => Err(Error::new(
                Operation::Wait,
                first.doorbell.kind,
                first.doorbell.name.given(),
                ErrorKind::Unsupported,
            )
            .with_detail("waiting on several at once needs futex_waitv (Linux 5.16 or later)")),
            Err(e) => Err(first.doorbell.error(e.into())),
        }
    }

    fn error(&self, e: io::Error) -> Error {
        Error::os(Operation::Wait, self.kind, self.name.given(), e)
    }

    /// The socket an async waiter polls, bound and registered with the
    /// current reactor on first use.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    fn listener(&self) -> Result<&super::reactor::Listener> {
        if let Some(listener) = self.listener.get() {
            return Ok(listener);
        }
        let _one = self
            .binding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(listener) = self.listener.get() {
            return Ok(listener);
        }
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .map_err(|e| self.error(e.into()))?;
        rustix::net::bind(&fd, &self.address).map_err(|e| {
            let taken = e == rustix::io::Errno::ADDRINUSE;
            let error = self.error(e.into());
            if taken {
                error.with_detail(
                    "another process holds the name of this participant's pollable doorbell",
                )
            } else {
                error
            }
        })?;
        let listener = super::reactor::Listener::register(fd).map_err(|e| {
            let unsupported = e.kind() == io::ErrorKind::Unsupported;
            let detail = e.to_string();
            let error = self.error(e);
            if unsupported {
                error.with_detail(detail)
            } else {
                error
            }
        })?;
        Ok(self.listener.get_or_init(|| listener))
    }

    /// Waits, as an async task, until this doorbell is rung (the count is
    /// no longer `seen`, or the socket had a byte) or `recheck` has passed.
    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub(crate) async fn rung(
        &self,
        bell: &Bell,
        seen: u32,
        recheck: std::time::Duration,
    ) -> Result<()> {
        self.listener()?
            .readable(bell, seen, recheck)
            .await
            .map_err(|e| self.error(e))
    }
}

/// Takes every byte waiting on `socket` (the rings since the last look).
#[cfg(any(feature = "tokio", feature = "async-io"))]
pub(super) fn drain(socket: impl std::os::fd::AsFd) {
    let mut buf = [0u8; 16];
    while rustix::net::recv(&socket, &mut buf, rustix::net::RecvFlags::DONTWAIT)
        .is_ok_and(|(n, _)| n > 0)
    {}
}

/// The one unbound socket this process rings pollable doorbells from.
fn sender() -> Option<&'static OwnedFd> {
    static SENDER: OnceLock<Option<OwnedFd>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::DGRAM,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )
            .ok()
        })
        .as_ref()
}
