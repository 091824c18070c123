//! Async waits on a pollable doorbell (see `doorbell.rs`), through the
//! executor's own reactor: tokio's (`AsyncFd`) inside a tokio runtime,
//! else async-io's (`Async`, which smol uses, and which drives itself from
//! its own thread under any other executor, `futures::executor` included).
//! The task sleeps in the reactor's `epoll_wait`: no thread in between.

use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use super::doorbell::drain;
use crate::sys::layout::Bell;

/// A doorbell socket registered with a reactor (the one of the first
/// async wait on it; it stays there).
#[derive(Debug)]
pub(super) enum Listener {
    #[cfg(feature = "tokio")]
    Tokio(tokio::io::unix::AsyncFd<OwnedFd>),
    #[cfg(feature = "async-io")]
    AsyncIo(async_io::Async<OwnedFd>),
}

impl Listener {
    /// Registers `socket` with the current tokio runtime, or else with
    /// async-io's reactor.
    pub(super) fn register(socket: OwnedFd) -> io::Result<Listener> {
        #[cfg(feature = "tokio")]
        if tokio::runtime::Handle::try_current().is_ok() {
            let interest = tokio::io::Interest::READABLE;
            // SAFETY: an `OwnedFd` is a valid open descriptor that stays
            // open, and names the same one, until the `AsyncFd` drops it.
            let registered =
                unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, interest) };
            return registered
                .map(Listener::Tokio)
                .map_err(|e| e.into_parts().1);
        }
        #[cfg(feature = "async-io")]
        return async_io::Async::new(socket).map(Listener::AsyncIo);
        #[cfg(not(feature = "async-io"))]
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "an async wait outside a tokio runtime needs memlink's `async-io` feature",
        ))
    }

    /// Waits until the socket is readable (then empties it), the count
    /// moves off `seen`, or `recheck` passes.
    pub(super) async fn readable(
        &self,
        bell: &Bell,
        seen: u32,
        recheck: Duration,
    ) -> io::Result<()> {
        // SeqCst: read after the reactor has our waker (the future was
        // polled just before), so a ring this misses makes the socket
        // readable later and wakes us. Pairs with the ringer's SeqCst bump.
        let moved = || bell.count.load(Ordering::SeqCst) != seen;
        match self {
            #[cfg(feature = "tokio")]
            Listener::Tokio(fd) => {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(io::Error::other(
                        "this participant's async waits are registered with a tokio runtime; \
                         await them inside one",
                    ));
                }
                let mut ready = pin!(fd.readable());
                // The runtime must have its timer on (`enable_time`, part of
                // `enable_all` and of `#[tokio::main]`).
                let mut timer = pin!(tokio::time::sleep(recheck));
                poll_fn(|cx| {
                    if let Poll::Ready(guard) = ready.as_mut().poll(cx) {
                        let mut guard = guard?;
                        drain(fd.get_ref());
                        // Clears only the readiness this guard saw: a byte
                        // sent since is reported again.
                        guard.clear_ready();
                        return Poll::Ready(Ok(()));
                    }
                    if moved() || timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Pending
                })
                .await
            }
            #[cfg(feature = "async-io")]
            Listener::AsyncIo(socket) => {
                let mut ready = pin!(socket.readable());
                let mut timer = async_io::Timer::after(recheck);
                poll_fn(|cx| {
                    if let Poll::Ready(result) = ready.as_mut().poll(cx) {
                        result?;
                        drain(socket.get_ref());
                        return Poll::Ready(Ok(()));
                    }
                    if moved() || pin!(&mut timer).poll(cx).is_ready() {
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Pending
                })
                .await
            }
        }
    }
}
