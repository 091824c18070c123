//! Windows: named sections backed by the paging file, the seeds' own objects.
//!
//! A region is what `CreateFileMappingW(INVALID_HANDLE_VALUE, ...,
//! PAGE_READWRITE | SEC_COMMIT, ...)` makes, so any program using the plain
//! calls with the same name sees the same bytes. The kernel keeps the
//! Windows lifetime rules itself: the name lives while a handle is open,
//! nothing is left behind by a crash, and creation is atomic (the loser of a
//! race gets `ERROR_ALREADY_EXISTS`). There is nothing to emulate, so
//! `reap` has nothing to do and `remove` cannot be done.
//!
//! Names without a prefix (or with `Local\`) live in the session's
//! namespace, `Global\` ones in the machine's; all kernel objects (sections,
//! mutexes, events, semaphores) share these namespaces. A create over a name
//! that another kind of object holds is [`ErrorKind::AlreadyExists`] (the
//! name is taken, as on Linux), an open of it [`ErrorKind::WrongKind`].
//!
//! The size of an opened section comes from `NtQuerySection`, or from
//! `VirtualQuery` of a view when the handle may not query. Either gives the
//! size rounded up to a page: the kernel keeps no other size for a
//! paging-file section (Windows and Wine alike; ReactOS's NtQuerySection
//! test records 0x123 bytes as 0x1000). The creator's handle reports the
//! size it asked for.

mod doorbell;
mod errors;
mod listing;
mod messaging;
mod names;
mod security;
mod sync;
#[cfg(test)]
mod tests;

pub(crate) use doorbell::{Doorbell, WAIT_ANY_MAX};
pub(crate) use listing::{inspect, list, reap, remove, remove_unheld};
pub(crate) use messaging::{messaging_supported, Claim};
pub(crate) use sync::{RawEvent, RawMutex, RawSemaphore};

use std::ffi::c_void;
use std::io;
use std::mem::size_of;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::{
    GetLastError, SetLastError, ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_COMMITMENT_LIMIT,
    ERROR_DISK_FULL, ERROR_FILE_NOT_FOUND, ERROR_INVALID_HANDLE, ERROR_NOT_ENOUGH_MEMORY,
    ERROR_NO_SYSTEM_RESOURCES, ERROR_OUTOFMEMORY, ERROR_PATH_NOT_FOUND, HANDLE,
    INVALID_HANDLE_VALUE, NTSTATUS,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualQuery,
    FILE_MAP_READ, FILE_MAP_WRITE, MEMORY_BASIC_INFORMATION, MEMORY_MAPPED_VIEW_ADDRESS,
    PAGE_READWRITE, SECTION_QUERY, SEC_COMMIT,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};

use super::{CreateSpec, Mapping};
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::types::Access;
use errors::{held_by_another_user, kind_clash, last_error, name_is_taken, nt_error, os_error};
use names::{kernel_name, open_named, wide};
use security::CreationSecurity;

/// The character that cannot be in a name: it separates the directories
/// of the kernel's object namespace.
pub(crate) const NAME_SEPARATOR: char = '\\';
/// Windows does not tell (without a handle census of every process).
pub(crate) const HOLDERS_KNOWN: bool = false;
/// The kernel removes a name only with the last handle to its object.
pub(crate) const REMOVE_WHILE_HELD: bool = false;

/// Which object a name referred to: Windows gives no identity to compare
/// (a named object exists only while held, so it never needs one here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity;

/// `SectionBasicInformation`, the information class of `NtQuerySection`.
const SECTION_BASIC_INFORMATION_CLASS: u32 = 0;
/// What `NtQuerySection` returns for `SectionBasicInformation`.
#[repr(C)]
struct SectionBasicInformation {
    base_address: *mut c_void,
    allocation_attributes: u32,
    maximum_size: i64,
}

// windows-sys does not declare `NtQuerySection` (the WDK documents it as
// `ZwQuerySection`); it is exported by ntdll since NT 3.1, and by Wine.
#[link(name = "ntdll.dll", kind = "raw-dylib", modifiers = "+verbatim")]
extern "system" {
    fn NtQuerySection(
        section: HANDLE,
        class: u32,
        info: *mut c_void,
        len: usize,
        returned: *mut usize,
    ) -> NTSTATUS;
}

/// The size of a section (rounded up to a page by the kernel).
pub(super) fn section_size(section: &OwnedHandle) -> io::Result<u64> {
    let mut info = SectionBasicInformation {
        base_address: ptr::null_mut(),
        allocation_attributes: 0,
        maximum_size: 0,
    };
    // SAFETY: the handle is valid, `info` is a writable buffer of the size
    // given, and the returned-length pointer may be null.
    let status = unsafe {
        NtQuerySection(
            section.as_raw_handle(),
            SECTION_BASIC_INFORMATION_CLASS,
            ptr::addr_of_mut!(info).cast(),
            size_of::<SectionBasicInformation>(),
            ptr::null_mut(),
        )
    };
    if status < 0 {
        return Err(nt_error(status));
    }
    Ok(info.maximum_size as u64)
}

/// The size of a section as seen through a view of all of it: rounded up to
/// a page. For handles that may map but not query.
fn view_size(section: &OwnedHandle, access: u32) -> io::Result<u64> {
    // SAFETY: the handle is valid; a view at an address the system picks
    // aliases no Rust object, and it is unmapped below.
    let view = unsafe { MapViewOfFile(section.as_raw_handle(), access, 0, 0, 0) };
    if view.Value.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: MEMORY_BASIC_INFORMATION is plain data; all zeroes is valid.
    let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is writable and of the size given; the address is the
    // view just mapped.
    let filled =
        unsafe { VirtualQuery(view.Value, &mut info, size_of::<MEMORY_BASIC_INFORMATION>()) };
    // Read now: the unmapping below may change the thread's last error.
    let query_error = (filled == 0).then(io::Error::last_os_error);
    // SAFETY: `view` is the address MapViewOfFile returned, used no more.
    unsafe { UnmapViewOfFile(view) };
    match query_error {
        Some(e) => Err(e),
        None => Ok(info.RegionSize as u64),
    }
}

/// An open section handle.
#[derive(Debug)]
pub(crate) struct Handle {
    section: OwnedHandle,
    name: Name,
    kind: ObjectKind,
    size: u64,
}

impl Handle {
    pub(crate) fn create(name: &Name, kind: ObjectKind, spec: &CreateSpec) -> Result<Handle> {
        let op = Operation::Create;
        let security = CreationSecurity::new(name, kind, spec)?;
        let attributes_ptr = security.as_ptr();
        let wide_name = wide(&kernel_name(name));
        // SEC_COMMIT charges the whole size against the commit limit now, so
        // a shortage is an error here, never a fault later. `spec.reserve`
        // cannot turn that off: with SEC_RESERVE every program mapping the
        // section would have to commit pages itself, which the plain
        // callers (the seeds' programs) do not.
        // SAFETY: INVALID_HANDLE_VALUE asks for a paging-file backed
        // section; the attributes (if any) and their descriptor and the
        // NUL-terminated name outlive the call. The last error is cleared
        // first so that ERROR_ALREADY_EXISTS is only seen when set by it.
        let (raw, code) = unsafe {
            SetLastError(0);
            let raw = CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                attributes_ptr,
                PAGE_READWRITE | SEC_COMMIT,
                (spec.size >> 32) as u32,
                spec.size as u32,
                wide_name.as_ptr(),
            );
            (raw, GetLastError())
        };
        if raw.is_null() {
            return Err(create_error(name, kind, spec.size, code));
        }
        // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
        let section = unsafe { OwnedHandle::from_raw_handle(raw) };
        if code == ERROR_ALREADY_EXISTS {
            // `section` is the existing object's; dropping it closes it.
            return Err(Error::new(op, kind, name.given(), ErrorKind::AlreadyExists));
        }
        Ok(Handle {
            section,
            name: name.clone(),
            kind,
            size: spec.size,
        })
    }

    pub(crate) fn open(name: &Name, kind: ObjectKind, access: Access) -> Result<Handle> {
        let op = Operation::Open;
        let map_access = match access {
            Access::ReadOnly => FILE_MAP_READ,
            Access::ReadWrite => FILE_MAP_READ | FILE_MAP_WRITE,
        };
        let wide_name = wide(&kernel_name(name));
        // Ask for the right to query the size too; an object whose DACL
        // grants mapping but not querying is opened without it.
        let mut can_query = true;
        let section =
            open_named(OpenFileMappingW, &wide_name, map_access | SECTION_QUERY).or_else(|code| {
                match code {
                    ERROR_ACCESS_DENIED => {
                        can_query = false;
                        open_named(OpenFileMappingW, &wide_name, map_access)
                    }
                    code => Err(code),
                }
            });
        let section = section.map_err(|code| match code {
            ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND => {
                Error::new(op, kind, name.given(), ErrorKind::NotFound)
            }
            ERROR_INVALID_HANDLE => kind_clash(op, kind, name, ErrorKind::WrongKind),
            code => os_error(op, kind, name, code),
        })?;
        let size = if can_query {
            section_size(&section).or_else(|_| view_size(&section, map_access))
        } else {
            view_size(&section, map_access)
        };
        let size = size.map_err(|e| {
            Error::os(op, kind, name.given(), e).with_detail("its size cannot be read")
        })?;
        Ok(Handle {
            section,
            name: name.clone(),
            kind,
            size,
        })
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Fills `buf` from `offset`, through a temporary view: a section is
    /// committed whole when it is made, so a read takes no memory.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let view = self.map(offset, buf.len(), false)?;
        // SAFETY: the view is `buf.len()` readable bytes that live until
        // the end of this function; `buf` is not inside it.
        unsafe { std::ptr::copy_nonoverlapping(view.as_ptr(), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Writes `data` at `offset`, through a temporary view: the section's
    /// memory is committed already, so the write cannot run out of it.
    pub(crate) fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let view = self.map(offset, data.len(), true)?;
        // SAFETY: the view is `data.len()` writable bytes that live until
        // the end of this function; `data` is not inside it.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), view.as_ptr(), data.len()) };
        Ok(())
    }

    pub(crate) fn map(&self, offset: u64, len: usize, writable: bool) -> Result<Mapping> {
        let access = if writable {
            FILE_MAP_READ | FILE_MAP_WRITE
        } else {
            FILE_MAP_READ
        };
        let too_large = || {
            Error::new(
                Operation::Map,
                self.kind,
                self.name.given(),
                ErrorKind::InvalidArgument,
            )
            .with_detail("the view does not fit in the address space")
        };
        let map = |start: u64, map_len| {
            // SAFETY: the handle is valid for the call, and a view at an
            // address the system picks aliases no Rust object.
            let view = unsafe {
                MapViewOfFile(
                    self.section.as_raw_handle(),
                    access,
                    (start >> 32) as u32,
                    start as u32,
                    map_len,
                )
            };
            NonNull::new(view.Value.cast::<u8>())
                .ok_or_else(|| os_error(Operation::Map, self.kind, &self.name, last_error()))
        };
        // SAFETY: `map` returns a fresh view of `map_len` bytes, which only
        // the Mapping unmaps.
        unsafe { Mapping::new(offset, len, allocation_granularity(), too_large, map) }
    }
}

fn create_error(name: &Name, kind: ObjectKind, size: u64, code: u32) -> Error {
    let op = Operation::Create;
    let os = io::Error::from_raw_os_error(code as i32);
    match code {
        ERROR_INVALID_HANDLE => kind_clash(op, kind, name, ErrorKind::AlreadyExists),
        ERROR_NOT_ENOUGH_MEMORY
        | ERROR_OUTOFMEMORY
        | ERROR_COMMITMENT_LIMIT
        | ERROR_NO_SYSTEM_RESOURCES
        | ERROR_DISK_FULL => Error::new(op, kind, name.given(), ErrorKind::OutOfMemory)
            .with_detail(format!(
                "{size} bytes asked, more than the system can commit ({os})"
            )),
        ERROR_ACCESS_DENIED
            if name_is_taken(open_named(
                OpenFileMappingW,
                &wide(&kernel_name(name)),
                SECTION_QUERY,
            )) =>
        {
            held_by_another_user(op, kind, name)
        }
        ERROR_ACCESS_DENIED if kernel_name(name).starts_with("Global\\") => {
            Error::os(op, kind, name.given(), os).with_detail(
                "creating a section in the Global\\ namespace needs the \
                 SeCreateGlobalPrivilege privilege",
            )
        }
        _ => Error::os(op, kind, name.given(), os),
    }
}

/// The alignment MapViewOfFile requires of offsets (64 KiB in practice).
fn allocation_granularity() -> u64 {
    static GRANULARITY: OnceLock<u64> = OnceLock::new();
    *GRANULARITY.get_or_init(|| {
        // SAFETY: SYSTEM_INFO is plain data; all zeroes is valid.
        let mut info: SYSTEM_INFO = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a writable SYSTEM_INFO.
        unsafe { GetSystemInfo(&mut info) };
        u64::from(info.dwAllocationGranularity).max(1)
    })
}

/// Unmaps a view that `MapViewOfFile` made.
///
/// # Safety
///
/// `base` is the address of a view that nothing uses any more.
pub(super) unsafe fn unmap(base: NonNull<u8>, _len: usize) {
    let view = MEMORY_MAPPED_VIEW_ADDRESS {
        Value: base.as_ptr().cast(),
    };
    // SAFETY: as the caller promises. Nothing to report a failure to.
    unsafe { UnmapViewOfFile(view) };
}
