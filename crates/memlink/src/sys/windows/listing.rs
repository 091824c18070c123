//! `list`, `inspect`, `remove`, `remove_unheld` and `reap`: reading the NT object
//! directories that hold named objects.

use std::io;
use std::mem::size_of;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{NtOpenDirectoryObject, NtQueryDirectoryObject};
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, ERROR_INVALID_HANDLE, ERROR_PATH_NOT_FOUND, HANDLE,
    OBJ_CASE_INSENSITIVE, STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL, STATUS_NO_MORE_ENTRIES,
    UNICODE_STRING,
};
use windows_sys::Win32::System::Memory::{OpenFileMappingW, FILE_MAP_READ, SECTION_QUERY};
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;

use super::errors::{kind_clash, nt_error, os_error, sync_kind};
use super::messaging::is_part_of_a_service;
use super::names::{kernel_name, open_named, wide};
use super::section_size;
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::list_error;
use crate::types::{Lifetime, ObjectInfo, ReapReport, State};

/// The `DIRECTORY_QUERY` access right of an object directory.
const DIRECTORY_QUERY: u32 = 1;
/// The access that lets `NtQuerySection` read a section's size: Windows
/// needs `SECTION_QUERY`, Wine also `SECTION_MAP_READ`.
const QUERY_ACCESS: u32 = SECTION_QUERY | FILE_MAP_READ;

/// One entry of an object directory, as `NtQueryDirectoryObject` returns
/// it; the strings point into the same buffer.
#[repr(C)]
struct ObjectDirectoryInformation {
    name: UNICODE_STRING,
    type_name: UNICODE_STRING,
}

/// The object directories that hold named objects, with the prefix that
/// reaches each from the Win32 calls: the session's own (no prefix) and the
/// machine's (`Global\`). In session 0 they are one and the same.
fn named_object_directories() -> Vec<(&'static str, String)> {
    let mut session = 0u32;
    // SAFETY: `session` is a writable u32.
    let ok = unsafe { ProcessIdToSessionId(std::process::id(), &mut session) } != 0;
    let global = ("Global\\", String::from("\\BaseNamedObjects"));
    if ok && session != 0 {
        let local = ("", format!("\\Sessions\\{session}\\BaseNamedObjects"));
        vec![local, global]
    } else {
        vec![("", global.1)]
    }
}

/// The entries of an object directory: (name, type name).
fn read_directory(path: &str) -> io::Result<Vec<(String, String)>> {
    let path: Vec<u16> = path.encode_utf16().collect();
    let path_bytes = (path.len() * 2) as u16;
    let object_name = UNICODE_STRING {
        Length: path_bytes,
        MaximumLength: path_bytes,
        Buffer: path.as_ptr().cast_mut(),
    };
    let attributes = OBJECT_ATTRIBUTES {
        Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: ptr::null_mut(),
        ObjectName: &object_name,
        Attributes: OBJ_CASE_INSENSITIVE,
        SecurityDescriptor: ptr::null(),
        SecurityQualityOfService: ptr::null(),
    };
    let mut raw: HANDLE = ptr::null_mut();
    // SAFETY: the attributes and the name they point to outlive the call,
    // which only reads them; `raw` receives the handle.
    let status = unsafe { NtOpenDirectoryObject(&mut raw, DIRECTORY_QUERY, &attributes) };
    if status < 0 {
        return Err(nt_error(status));
    }
    // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
    let directory = unsafe { OwnedHandle::from_raw_handle(raw) };

    // u64 elements keep the buffer aligned for the pointers in the entry.
    let mut buffer = vec![0u64; 128];
    let mut context = 0u32;
    let mut restart = true;
    let mut entries = Vec::new();
    loop {
        let mut needed = 0u32;
        let buffer_bytes = (buffer.len() * 8) as u32;
        // SAFETY: the handle is valid and the buffer writable for the length
        // given. One entry at a time, which every version of Wine supports.
        let status = unsafe {
            NtQueryDirectoryObject(
                directory.as_raw_handle(),
                buffer.as_mut_ptr().cast(),
                buffer_bytes,
                true,
                restart,
                &mut context,
                &mut needed,
            )
        };
        match status {
            STATUS_NO_MORE_ENTRIES => return Ok(entries),
            STATUS_BUFFER_TOO_SMALL | STATUS_BUFFER_OVERFLOW
                if needed > buffer_bytes && needed < 1 << 20 =>
            {
                buffer.resize((needed as usize).div_ceil(8), 0);
                continue;
            }
            status if status < 0 => return Err(nt_error(status)),
            _ => {}
        }
        // SAFETY: on success the buffer starts with one entry whose strings
        // point into the buffer, which is alive and unchanged meanwhile.
        let (name, type_name) = unsafe {
            let entry = &*buffer.as_ptr().cast::<ObjectDirectoryInformation>();
            (from_unicode(&entry.name), from_unicode(&entry.type_name))
        };
        entries.push((name, type_name));
        restart = false;
    }
}

/// # Safety
///
/// `s.Buffer` must point to `s.Length` readable bytes (or be null).
unsafe fn from_unicode(s: &UNICODE_STRING) -> String {
    if s.Buffer.is_null() {
        return String::new();
    }
    // SAFETY: the caller promises `Length` bytes at `Buffer`.
    let units = unsafe { std::slice::from_raw_parts(s.Buffer, usize::from(s.Length) / 2) };
    String::from_utf16_lossy(units)
}

fn kind_of_type(type_name: &str) -> Option<ObjectKind> {
    Some(match type_name {
        "Section" => ObjectKind::Region,
        "Mutant" => ObjectKind::Mutex,
        "Event" => ObjectKind::Event,
        "Semaphore" => ObjectKind::Semaphore,
        _ => return None,
    })
}

/// What is known of a named object of `kind`. Its origin is unknown:
/// memlink makes the plain kernel objects, which carry no mark.
fn object_info(name: String, kind: ObjectKind, size: u64, state: State) -> ObjectInfo {
    let mut info = ObjectInfo::named(name);
    info.kind = Some(kind);
    info.size = size;
    info.lifetime = Lifetime::LastHandle;
    info.state = state;
    info
}

/// What is known of a named object of the given kind, by its Win32 name.
fn describe(name: String, kind: ObjectKind) -> ObjectInfo {
    let mut info = object_info(name, kind, 0, State::Alive);
    if kind == ObjectKind::Region {
        match open_named(OpenFileMappingW, &wide(&info.name), QUERY_ACCESS)
            .map(|s| section_size(&s))
        {
            Ok(Ok(size)) => info.size = size,
            _ => info.state = State::Unknown,
        }
    }
    info
}

pub(crate) fn list() -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    for (prefix, path) in named_object_directories() {
        let entries = match read_directory(&path) {
            Ok(entries) => entries,
            // A session without objects of its own yet.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !prefix.is_empty() => continue,
            Err(e) => {
                return Err(list_error(Operation::List, e)
                    .with_detail(format!("cannot read the object directory {path}")))
            }
        };
        for (name, type_name) in entries {
            // A service's participant places and doorbells (`NAME#p3`,
            // `NAME#w3`) are parts of the service, not objects of their own.
            if is_part_of_a_service(&name) {
                continue;
            }
            if let Some(kind) = kind_of_type(&type_name) {
                out.push(describe(format!("{prefix}{name}"), kind));
            }
        }
    }
    Ok(out)
}

pub(crate) fn inspect(name: &Name) -> Result<ObjectInfo> {
    let op = Operation::Inspect;
    let kind = ObjectKind::Region;
    let wide_name = wide(&kernel_name(name));
    let info = |kind, size, state| object_info(name.given().to_owned(), kind, size, state);
    match open_named(OpenFileMappingW, &wide_name, QUERY_ACCESS) {
        Ok(section) => {
            let size = section_size(&section)
                .map_err(|e| Error::os(op, kind, name.given(), e).of_any_kind())?;
            return Ok(info(ObjectKind::Region, size, State::Alive));
        }
        // The type is checked before access, so this is a section.
        Err(ERROR_ACCESS_DENIED) => return Ok(info(ObjectKind::Region, 0, State::Unknown)),
        Err(ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND) => {
            return Err(Error::new(op, kind, name.given(), ErrorKind::NotFound).of_any_kind())
        }
        Err(ERROR_INVALID_HANDLE) => {} // another type
        Err(code) => return Err(os_error(op, kind, name, code).of_any_kind()),
    }
    match sync_kind(&wide_name) {
        Some(other) => Ok(info(other, 0, State::Alive)),
        None => Err(kind_clash(op, kind, name, ErrorKind::WrongKind).of_any_kind()),
    }
}

pub(crate) fn remove(name: &Name) -> Result<()> {
    let info = inspect(name).map_err(|e| e.reframe(Operation::Remove))?;
    Err(cannot_remove(name, info.kind))
}

/// Windows cannot remove a name before its last handle is closed.
fn cannot_remove(name: &Name, kind: Option<ObjectKind>) -> Error {
    Error::new(
        Operation::Remove,
        ObjectKind::Region,
        name.given(),
        ErrorKind::Unsupported,
    )
    .of_kind(kind)
    .with_detail(
        "Windows removes a name when the last handle to its object is closed, \
                 and not before",
    )
}

pub(crate) fn remove_unheld(name: &Name, seen: &ObjectInfo) -> Result<()> {
    // A named object exists only while some handle holds it.
    let info = inspect(name).map_err(|e| e.reframe(Operation::Remove))?;
    Err(cannot_remove(name, info.kind.or(seen.kind)))
}

pub(crate) fn reap() -> Result<ReapReport> {
    // The kernel closes the handles of a process that dies, so no stale
    // object can exist.
    Ok(ReapReport::default())
}
