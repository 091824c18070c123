//! Windows: what the messaging layer needs beyond sections — participant
//! places whose liveness the kernel keeps, and doorbells to sleep on.
//!
//! **Places.** Participant place `index` of the service `NAME` is claimed
//! by creating the one-page section `NAME#p<index>` and holding it: a named
//! kernel object exists exactly while some handle to it is open, and the
//! kernel closes a dead process's handles. "The section exists" is then
//! "a live participant holds the place". Looking (`is_claimed`) opens it
//! for an instant, during which a claim of the same place fails and the
//! claimer tries another place. `#` is outside memlink's name syntax, so
//! these names never clash with objects users make.
//!
//! **Doorbells** (named auto-reset events) are in `doorbell.rs`.

use std::os::windows::io::{FromRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::{
    SetLastError, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, OpenFileMappingW, FILE_MAP_READ, PAGE_READWRITE,
};

use super::errors::{last_error, os_error};
use super::names::{kernel_name, open_named, wide};
use super::Handle;
use crate::error::{ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::{CreateSpec, Mapping};

/// Whether messaging works on this platform: it does.
pub(crate) fn messaging_supported(_name: &crate::name::Name) -> Result<()> {
    Ok(())
}

/// Whether `name` is one of the objects a service is made of besides its
/// section (its places and doorbells), which listings leave out.
pub(super) fn is_part_of_a_service(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(_, part)| {
        let digits = part.strip_prefix('p').or_else(|| part.strip_prefix('w'));
        digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    })
}

impl Handle {
    /// Creates the object and lets `init` set up its bytes. Windows has no
    /// nameless section to publish later, so others may open the section
    /// before `init` is done: callers publish readiness themselves (the
    /// service header's magic is written last).
    pub(crate) fn create_with(
        name: &Name,
        kind: ObjectKind,
        spec: &CreateSpec,
        init: &mut dyn FnMut(&Mapping) -> Result<()>,
    ) -> Result<Handle> {
        let handle = Handle::create(name, kind, spec)?;
        init(&handle.map(0, spec.size as usize, true)?)?;
        Ok(handle)
    }

    /// Claims participant place `index`; `Ok(None)` when it is held (or
    /// being looked at).
    pub(crate) fn claim(&self, index: u32) -> Result<Option<Claim>> {
        let place = wide(&format!("{}#p{index}", kernel_name(&self.name)));
        // SAFETY: a paging-file section of one page, default security; the
        // NUL-terminated name outlives the call. The last error is cleared
        // first so that ERROR_ALREADY_EXISTS is only seen when set by it.
        let (raw, code) = unsafe {
            SetLastError(0);
            let raw = CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                ptr::null(),
                PAGE_READWRITE,
                0,
                1,
                place.as_ptr(),
            );
            (raw, last_error())
        };
        if raw.is_null() {
            return Err(os_error(Operation::Connect, self.kind, &self.name, code));
        }
        // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
        let section = unsafe { OwnedHandle::from_raw_handle(raw) };
        if code == ERROR_ALREADY_EXISTS {
            return Ok(None); // dropping `section` closes our extra handle
        }
        Ok(Some(Claim { _section: section }))
    }

    /// Whether a live participant holds place `index`.
    pub(crate) fn is_claimed(&self, index: u32) -> Result<bool> {
        let place = wide(&format!("{}#p{index}", kernel_name(&self.name)));
        match open_named(OpenFileMappingW, &place, FILE_MAP_READ) {
            Ok(_) => Ok(true), // dropped: closed at once
            Err(ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND) => Ok(false),
            Err(code) => Err(os_error(Operation::Connect, self.kind, &self.name, code)),
        }
    }
}

/// A claimed participant place; dropping it closes the section, and the
/// place is free again.
#[derive(Debug)]
pub(crate) struct Claim {
    _section: OwnedHandle,
}
