//! Kernel-object names: how a memlink name becomes one, and opening an
//! object by it.

use std::os::windows::io::{FromRawHandle, OwnedHandle};

use windows_sys::core::{BOOL, PCWSTR};
use windows_sys::Win32::Foundation::{FALSE, HANDLE};

use super::errors::last_error;
use crate::name::{Name, NAMESPACE_PREFIXES};

/// The signature shared by the `Open*W` calls: `OpenFileMappingW`,
/// `OpenMutexW`, `OpenSemaphoreW` and `OpenEventW`.
pub(super) type OpenFn = unsafe extern "system" fn(u32, BOOL, PCWSTR) -> HANDLE;

/// The kernel-object name of `name`: its base name, after the `Global\` or
/// `Local\` prefix the caller wrote (if any). A POSIX-style leading `/` is
/// not part of it.
pub(super) fn kernel_name(name: &Name) -> String {
    match name.given().strip_suffix(name.base()) {
        Some(prefix) if NAMESPACE_PREFIXES.contains(&prefix) => name.given().to_owned(),
        _ => name.base().to_owned(),
    }
}

/// A NUL-terminated UTF-16 copy of `s`.
pub(super) fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// Opens the object called `name` (NUL-terminated) with `open`, the
/// `Open*W` call of its type, asking for `access`; the error is the Win32
/// error code.
pub(super) fn open_named(
    open: OpenFn,
    name: &[u16],
    access: u32,
) -> std::result::Result<OwnedHandle, u32> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let raw = unsafe { open(access, FALSE, name.as_ptr()) };
    if raw.is_null() {
        return Err(last_error());
    }
    // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(raw) })
}
