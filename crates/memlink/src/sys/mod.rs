//! The platform layer: the only place that knows which OS it runs on.
//!
//! Every backend provides the same small interface:
//!
//! - `Handle`: an open named object. `Handle::create(name, kind, spec)`
//!   publishes a fully made object atomically (exclusive; a stale one of
//!   the same name is reaped first), `Handle::open(name, kind, access)`
//!   opens one, `size()` tells its size, `map(offset, len, writable)` maps
//!   a view at any byte offset (the backend aligns the OS mapping). Dropping
//!   the handle closes it and, for [`Lifetime::LastHandle`] objects, removes
//!   the name when it was the last handle.
//! - `Mapping`: a mapped view; `as_ptr()`, `len()`, unmapped on drop.
//! - `list()`, `inspect(name)`, `remove(name)`, `reap()`.
//! - For messaging: `Handle::create_with(name, kind, spec, init)` (the
//!   contents set up before others use them), `Handle::claim(index)` /
//!   `Handle::is_claimed(index)` (numbered participant places whose
//!   liveness the kernel keeps: a claim ends when its process dies) and
//!   `Doorbell` (`new(handle, index)`, `wait(word, seen, deadline)`,
//!   `ring(word)`: sleep until another process rings, futex-style).
//!
//! [`Lifetime::LastHandle`]: crate::Lifetime::LastHandle

#[cfg(unix)]
mod unix;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
mod posix;
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
pub(crate) use posix::*;
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
mod no_messaging;
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
pub(crate) use no_messaging::{messaging_supported, Claim, Doorbell};

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    windows
)))]
compile_error!("memlink supports Linux, Windows, macOS and FreeBSD");

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
