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
//! **Doorbells** are the named auto-reset events `NAME#w<index>`, made or
//! opened by the sleeper and by everyone who rings it (the same object for
//! all of them while any of them holds it). An auto-reset event keeps a
//! ring that came before the wait, so none is lost. `WaitOnAddress` cannot
//! be used: it wakes only threads of the same process.

use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use windows_sys::Win32::Foundation::{
    SetLastError, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, FALSE,
    INVALID_HANDLE_VALUE, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, OpenFileMappingW, FILE_MAP_READ, PAGE_READWRITE,
};
use windows_sys::Win32::System::Threading::{CreateEventW, SetEvent, WaitForSingleObject};

use super::errors::{last_error, os_error};
use super::names::{kernel_name, open_named, wide};
use super::sync::millis_until;
use super::Handle;
use crate::error::{ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::layout::Bell;
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

/// A participant's doorbell: its named auto-reset event.
#[derive(Debug)]
pub(crate) struct Doorbell {
    event: OwnedHandle,
}

impl Doorbell {
    /// The doorbell of place `index` of the object `handle` refers to.
    pub(crate) fn new(handle: &Handle, index: u32) -> Result<Doorbell> {
        let name = wide(&format!("{}#w{index}", kernel_name(&handle.name)));
        // SAFETY: default security, auto-reset, initially clear; the
        // NUL-terminated name outlives the call. Opens the event if it exists.
        let raw = unsafe { CreateEventW(ptr::null(), FALSE, FALSE, name.as_ptr()) };
        if raw.is_null() {
            return Err(os_error(
                Operation::Connect,
                handle.kind,
                &handle.name,
                last_error(),
            ));
        }
        // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
        let event = unsafe { OwnedHandle::from_raw_handle(raw) };
        Ok(Doorbell { event })
    }

    /// Sleeps while `bell.count` holds `seen`, until rung or `deadline`.
    /// Returns false once the deadline has passed; may return early.
    pub(crate) fn wait(&self, bell: &Bell, seen: u32, deadline: Option<Instant>) -> bool {
        // Acquire pairs with the ringer's SeqCst increment: a ring already
        // made is seen here without sleeping (the event would say so too).
        if bell.count.load(Ordering::Acquire) != seen {
            return true;
        }
        // SAFETY: the handle is valid for the call and has SYNCHRONIZE.
        let outcome =
            unsafe { WaitForSingleObject(self.event.as_raw_handle(), millis_until(deadline)) };
        match outcome {
            WAIT_OBJECT_0 => true,
            WAIT_TIMEOUT => deadline.is_none_or(|d| Instant::now() < d),
            // A failed wait is treated as a spurious wake-up; the caller's
            // deadline still bounds it.
            _ => true,
        }
    }

    /// Rings: bumps `bell.count` (SeqCst, so a sleeper that read it before
    /// setting its sleeping mark sees the change), then sets the event.
    pub(crate) fn ring(&self, bell: &Bell) {
        bell.count.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the handle is valid and was opened with all access.
        let _ = unsafe { SetEvent(self.event.as_raw_handle()) };
    }
}
