//! Errors: Win32 and NT codes, and telling what holds a name when the one
//! asked for is not there (kernel objects of every type share a namespace).

use std::io;

use windows_sys::Win32::Foundation::{
    GetLastError, RtlNtStatusToDosError, ERROR_ACCESS_DENIED, ERROR_INVALID_HANDLE, NTSTATUS,
};
use windows_sys::Win32::System::Threading::{
    OpenEventW, OpenMutexW, OpenSemaphoreW, SYNCHRONIZATION_SYNCHRONIZE,
};

use super::names::{kernel_name, open_named, wide, OpenFn};
use crate::error::{Error, ErrorKind, ObjectKind, Operation};
use crate::name::Name;
use std::os::windows::io::OwnedHandle;

/// The calling thread's last Win32 error code.
pub(super) fn last_error() -> u32 {
    // SAFETY: reads the calling thread's last-error value; no preconditions.
    unsafe { GetLastError() }
}

/// An NT status code as the matching Win32 error.
pub(super) fn nt_error(status: NTSTATUS) -> io::Error {
    // SAFETY: a pure translation of a status code; no preconditions.
    io::Error::from_raw_os_error(unsafe { RtlNtStatusToDosError(status) } as i32)
}

/// The error of a failed call about `name`, from its Win32 error code.
pub(super) fn os_error(operation: Operation, kind: ObjectKind, name: &Name, code: u32) -> Error {
    Error::os(
        operation,
        kind,
        name.given(),
        io::Error::from_raw_os_error(code as i32),
    )
}

/// The error for a name that another kind of object holds: `WrongKind`
/// for an open, `AlreadyExists` for a create (the name is taken, as on
/// Linux). Says what holds it, where that can be told.
pub(super) fn kind_clash(
    operation: Operation,
    kind: ObjectKind,
    name: &Name,
    error: ErrorKind,
) -> Error {
    let holder = match sync_kind(&wide(&kernel_name(name))) {
        Some(other) => format!("it is a {other}"),
        None => String::from("it is a kernel object of another kind"),
    };
    Error::new(operation, kind, name.given(), error).with_detail(format!(
        "{holder}; sections, mutexes, events and semaphores share one namespace"
    ))
}

/// Whether the object called `name` (NUL-terminated) is a mutex, an event
/// or a semaphore: only the matching `Open*W` call finds it.
pub(super) fn sync_kind(name: &[u16]) -> Option<ObjectKind> {
    let kinds: [(OpenFn, ObjectKind); 3] = [
        (OpenMutexW, ObjectKind::Mutex),
        (OpenEventW, ObjectKind::Event),
        (OpenSemaphoreW, ObjectKind::Semaphore),
    ];
    kinds.into_iter().find_map(|(open, kind)| {
        // Opened (and closed again at once), or denied: the type matched.
        match open_named(open, name, SYNCHRONIZATION_SYNCHRONIZE) {
            Ok(_) | Err(ERROR_ACCESS_DENIED) => Some(kind),
            Err(_) => None,
        }
    })
}

/// Whether a look-only open of a name, made after a `Create*W` call for it
/// failed with `ERROR_ACCESS_DENIED`, shows that the name exists. A create
/// over an existing name of the same kind opens that object, so it is
/// denied when the object belongs to another user who did not share it;
/// but it is denied too when the creation itself is not allowed (a section
/// in `Global\` without SeCreateGlobalPrivilege), and then the name does
/// not exist. The probe is denied as well (or finds an object of another
/// kind, or even opens it) only in the first case.
pub(super) fn name_is_taken(probe: std::result::Result<OwnedHandle, u32>) -> bool {
    matches!(
        probe,
        Ok(_) | Err(ERROR_ACCESS_DENIED | ERROR_INVALID_HANDLE)
    )
}

/// A create refused because the name is another user's object (see
/// [`name_is_taken`]): the name is taken, as a create over any existing
/// name is.
pub(super) fn held_by_another_user(operation: Operation, kind: ObjectKind, name: &Name) -> Error {
    Error::new(operation, kind, name.given(), ErrorKind::AlreadyExists)
        .with_detail("held by another user, whose object this user may not open")
}
