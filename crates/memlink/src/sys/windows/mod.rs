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

mod messaging;
mod sync;

pub(crate) use messaging::{messaging_supported, Claim, Doorbell};
pub(crate) use sync::{RawEvent, RawMutex, RawSemaphore};

use std::ffi::c_void;
use std::io;
use std::mem::size_of;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{NtOpenDirectoryObject, NtQueryDirectoryObject};
use windows_sys::Win32::Foundation::{
    GetLastError, LocalFree, RtlNtStatusToDosError, SetLastError, ERROR_ACCESS_DENIED,
    ERROR_ALREADY_EXISTS, ERROR_COMMITMENT_LIMIT, ERROR_DISK_FULL, ERROR_FILE_NOT_FOUND,
    ERROR_INVALID_HANDLE, ERROR_NOT_ENOUGH_MEMORY, ERROR_NO_SYSTEM_RESOURCES, ERROR_OUTOFMEMORY,
    ERROR_PATH_NOT_FOUND, FALSE, HANDLE, INVALID_HANDLE_VALUE, NTSTATUS, OBJ_CASE_INSENSITIVE,
    STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL, STATUS_NO_MORE_ENTRIES, UNICODE_STRING,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualQuery,
    FILE_MAP_READ, FILE_MAP_WRITE, MEMORY_BASIC_INFORMATION, MEMORY_MAPPED_VIEW_ADDRESS,
    PAGE_READWRITE, SECTION_QUERY, SEC_COMMIT,
};
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};
use windows_sys::Win32::System::Threading::{
    OpenEventW, OpenMutexW, OpenSemaphoreW, SYNCHRONIZATION_SYNCHRONIZE,
};

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::object::{list_error, Access, CreateSpec, Lifetime, ObjectInfo, ReapReport, State};

/// `SectionBasicInformation`, the information class of `NtQuerySection`.
const SECTION_BASIC_INFORMATION_CLASS: u32 = 0;
/// The `DIRECTORY_QUERY` access right of an object directory.
const DIRECTORY_QUERY: u32 = 1;
/// The access that lets `NtQuerySection` read a section's size: Windows
/// needs `SECTION_QUERY`, Wine also `SECTION_MAP_READ`.
const QUERY_ACCESS: u32 = SECTION_QUERY | FILE_MAP_READ;
/// Any bit for group or others opens a new object to every user.
const EVERYONE_SDDL: &str = "D:(A;;GA;;;WD)";

/// What `NtQuerySection` returns for `SectionBasicInformation`.
#[repr(C)]
struct SectionBasicInformation {
    base_address: *mut c_void,
    allocation_attributes: u32,
    maximum_size: i64,
}

/// One entry of an object directory, as `NtQueryDirectoryObject` returns
/// it; the strings point into the same buffer.
#[repr(C)]
struct ObjectDirectoryInformation {
    name: UNICODE_STRING,
    type_name: UNICODE_STRING,
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

pub(super) fn last_error() -> u32 {
    // SAFETY: reads the calling thread's last-error value; no preconditions.
    unsafe { GetLastError() }
}

fn nt_error(status: NTSTATUS) -> io::Error {
    // SAFETY: a pure translation of a status code; no preconditions.
    io::Error::from_raw_os_error(unsafe { RtlNtStatusToDosError(status) } as i32)
}

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
    let holder = match sync_kind(&wide(&name.windows_name())) {
        Some(other) => format!("it is a {other}"),
        None => String::from("it is a kernel object of another kind"),
    };
    Error::new(operation, kind, name.given(), error).with_detail(format!(
        "{holder}; sections, mutexes, events and semaphores share one namespace"
    ))
}

/// Whether the object called `name` (NUL-terminated) is a mutex, an event
/// or a semaphore: only the matching `Open*W` call finds it.
fn sync_kind(name: &[u16]) -> Option<ObjectKind> {
    type OpenFn = unsafe extern "system" fn(u32, i32, *const u16) -> HANDLE;
    let kinds: [(OpenFn, ObjectKind); 3] = [
        (OpenMutexW, ObjectKind::Mutex),
        (OpenEventW, ObjectKind::Event),
        (OpenSemaphoreW, ObjectKind::Semaphore),
    ];
    kinds.into_iter().find_map(|(open, kind)| {
        // SAFETY: the name is NUL-terminated and outlives the call.
        let raw = unsafe { open(SYNCHRONIZATION_SYNCHRONIZE, FALSE, name.as_ptr()) };
        if raw.is_null() {
            // Denied access means the type matched.
            return (last_error() == ERROR_ACCESS_DENIED).then_some(kind);
        }
        // SAFETY: `raw` is a fresh handle that nothing else owns; dropping
        // it closes it at once.
        drop(unsafe { OwnedHandle::from_raw_handle(raw) });
        Some(kind)
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

/// A NUL-terminated UTF-16 copy of `s`.
pub(super) fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// Opens the section called `name` (NUL-terminated) with `access`; the
/// error is the Win32 error code.
fn open_section(name: &[u16], access: u32) -> std::result::Result<OwnedHandle, u32> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let raw = unsafe { OpenFileMappingW(access, FALSE, name.as_ptr()) };
    if raw.is_null() {
        return Err(last_error());
    }
    // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(raw) })
}

/// The size of a section (rounded up to a page by the kernel).
fn section_size(section: &OwnedHandle) -> io::Result<u64> {
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

/// What a new object of any kind is created with: the security attributes
/// for `spec.mode` (null for the default DACL), after checking that the
/// lifetime asked for can be had.
pub(super) struct CreationSecurity {
    attributes: Option<SECURITY_ATTRIBUTES>,
    // Owns the descriptor `attributes` points to (a LocalAlloc'd block,
    // which does not move with this value).
    _descriptor: Option<SecurityDescriptor>,
}

impl CreationSecurity {
    pub(super) fn new(
        name: &Name,
        kind: ObjectKind,
        spec: &CreateSpec,
    ) -> Result<CreationSecurity> {
        let op = Operation::Create;
        if spec.lifetime == Lifetime::Persistent {
            return Err(
                Error::new(op, kind, name.given(), ErrorKind::Unsupported).with_detail(
                    "Windows objects live only while a handle to them is open; \
                     Lifetime::Persistent cannot be had",
                ),
            );
        }
        let descriptor = if spec.mode & 0o077 != 0 {
            Some(
                SecurityDescriptor::from_sddl(EVERYONE_SDDL)
                    .map_err(|c| os_error(op, kind, name, c))?,
            )
        } else {
            None // the default DACL: the creating user (and the system)
        };
        let attributes = descriptor.as_ref().map(|sd| SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: sd.0,
            bInheritHandle: FALSE,
        });
        Ok(CreationSecurity {
            attributes,
            _descriptor: descriptor,
        })
    }

    /// The attributes to pass to a `Create*W` call, valid while `self` is.
    pub(super) fn as_ptr(&self) -> *const SECURITY_ATTRIBUTES {
        self.attributes
            .as_ref()
            .map_or(ptr::null(), |a| a as *const _)
    }
}

/// A security descriptor made from SDDL, freed with `LocalFree`.
struct SecurityDescriptor(PSECURITY_DESCRIPTOR);

impl SecurityDescriptor {
    fn from_sddl(sddl: &str) -> std::result::Result<SecurityDescriptor, u32> {
        let sddl = wide(sddl);
        let mut sd: PSECURITY_DESCRIPTOR = ptr::null_mut();
        // SAFETY: `sddl` is NUL-terminated; `sd` receives a LocalAlloc'd
        // descriptor that this value owns; the size pointer may be null.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        Ok(SecurityDescriptor(sd))
    }
}

impl Drop for SecurityDescriptor {
    fn drop(&mut self) {
        // SAFETY: the descriptor was allocated by the conversion above, for
        // this value alone, and is freed once.
        unsafe { LocalFree(self.0) };
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
        let wide_name = wide(&name.windows_name());
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
        let wide_name = wide(&name.windows_name());
        // Ask for the right to query the size too; an object whose DACL
        // grants mapping but not querying is opened without it.
        let mut can_query = true;
        let section =
            open_section(&wide_name, map_access | SECTION_QUERY).or_else(|code| match code {
                ERROR_ACCESS_DENIED => {
                    can_query = false;
                    open_section(&wide_name, map_access)
                }
                code => Err(code),
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
        let granularity = allocation_granularity();
        let aligned = offset - offset % granularity;
        let lead = (offset - aligned) as usize;
        let map_len = len.checked_add(lead).ok_or_else(|| {
            Error::new(
                Operation::Map,
                self.kind,
                self.name.given(),
                ErrorKind::InvalidArgument,
            )
            .with_detail("the view does not fit in the address space")
        })?;
        let access = if writable {
            FILE_MAP_READ | FILE_MAP_WRITE
        } else {
            FILE_MAP_READ
        };
        // SAFETY: the handle is valid for the call, and a view at an address
        // the system picks aliases no Rust object.
        let view = unsafe {
            MapViewOfFile(
                self.section.as_raw_handle(),
                access,
                (aligned >> 32) as u32,
                aligned as u32,
                map_len,
            )
        };
        let Some(base) = NonNull::new(view.Value.cast::<u8>()) else {
            return Err(os_error(
                Operation::Map,
                self.kind,
                &self.name,
                last_error(),
            ));
        };
        Ok(Mapping { base, lead, len })
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
            if name_is_taken(open_section(&wide(&name.windows_name()), SECTION_QUERY)) =>
        {
            held_by_another_user(op, kind, name)
        }
        ERROR_ACCESS_DENIED if name.windows_name().starts_with("Global\\") => {
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

/// A mapped view. The system's view starts `lead` bytes before it, at the
/// allocation-granularity boundary MapViewOfFile requires.
#[derive(Debug)]
pub(crate) struct Mapping {
    base: NonNull<u8>,
    lead: usize,
    len: usize,
}

// SAFETY: a Mapping is an address range owned by this value alone; the
// memory behind it is shared memory, valid from any thread until unmapped.
unsafe impl Send for Mapping {}
// SAFETY: &Mapping gives only the address; access rules are the caller's.
unsafe impl Sync for Mapping {}

impl Mapping {
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        // SAFETY: the view is `lead + len` bytes long, so base + lead stays
        // inside it.
        unsafe { self.base.as_ptr().add(self.lead) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let view = MEMORY_MAPPED_VIEW_ADDRESS {
            Value: self.base.as_ptr().cast(),
        };
        // SAFETY: `base` is what MapViewOfFile returned, and nothing can use
        // the view after the Mapping is gone.
        unsafe { UnmapViewOfFile(view) };
    }
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
        match open_section(&wide(&info.name), QUERY_ACCESS).map(|s| section_size(&s)) {
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
            if messaging::is_part_of_a_service(&name) {
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
    let wide_name = wide(&name.windows_name());
    let info = |kind, size, state| object_info(name.given().to_owned(), kind, size, state);
    match open_section(&wide_name, QUERY_ACCESS) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Region;
    use windows_sys::Win32::System::Threading::CreateMutexW;

    fn unique(tag: &str) -> String {
        format!("memlink-win-{tag}-{}", std::process::id())
    }

    /// A view made with the plain calls, as the seeds' programs do.
    struct RawView(MEMORY_MAPPED_VIEW_ADDRESS);

    impl RawView {
        fn new(section: &OwnedHandle, access: u32) -> RawView {
            // SAFETY: a valid handle; the system picks the address.
            let view = unsafe { MapViewOfFile(section.as_raw_handle(), access, 0, 0, 0) };
            assert!(!view.Value.is_null(), "{}", io::Error::last_os_error());
            RawView(view)
        }

        fn bytes(&self, at: usize, len: usize) -> Vec<u8> {
            // SAFETY: the tests stay inside the section they mapped.
            unsafe { std::slice::from_raw_parts(self.0.Value.cast::<u8>().add(at), len) }.to_vec()
        }

        fn write(&self, at: usize, bytes: &[u8]) {
            // SAFETY: as above, on a view mapped with FILE_MAP_WRITE.
            unsafe {
                ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.0.Value.cast::<u8>().add(at),
                    bytes.len(),
                )
            }
        }
    }

    impl Drop for RawView {
        fn drop(&mut self) {
            // SAFETY: the address MapViewOfFile returned, used no more.
            unsafe { UnmapViewOfFile(self.0) };
        }
    }

    /// `CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0,
    /// size, name)`, exactly as in the seeds.
    fn seeds_create(name: &str, size: u32) -> OwnedHandle {
        let name = wide(name);
        // SAFETY: a paging-file backed section with a NUL-terminated name.
        let raw = unsafe {
            SetLastError(0);
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                ptr::null(),
                PAGE_READWRITE,
                0,
                size,
                name.as_ptr(),
            )
        };
        assert!(!raw.is_null(), "{}", io::Error::last_os_error());
        assert_ne!(last_error(), ERROR_ALREADY_EXISTS);
        // SAFETY: a fresh handle owned by nobody else.
        unsafe { OwnedHandle::from_raw_handle(raw) }
    }

    #[test]
    fn a_section_made_by_the_plain_calls_is_a_region_both_ways() {
        let name = unique("seeds");
        let section = seeds_create(&name, 4096);
        let raw = RawView::new(&section, FILE_MAP_READ | FILE_MAP_WRITE);
        raw.write(0, b"hello from C\0");

        let region = Region::open(&name, Access::ReadWrite).unwrap();
        assert_eq!(region.size(), 4096);
        assert_eq!(region.map(0..12).unwrap().to_vec(), b"hello from C");
        region
            .map_mut(4000..4005)
            .unwrap()
            .write_at(0, b"back!")
            .unwrap();
        assert_eq!(raw.bytes(4000, 5), b"back!");

        // And the other way: a region opened by the plain calls.
        let ours = unique("ours");
        let region = Region::create(&ours, 8192).unwrap();
        region
            .map_mut(5000..5010)
            .unwrap()
            .write_at(0, b"from Rust\0")
            .unwrap();
        let opened = open_section(&wide(&ours), FILE_MAP_READ).unwrap();
        assert_eq!(
            RawView::new(&opened, FILE_MAP_READ).bytes(5000, 9),
            b"from Rust"
        );
        drop((region, opened));
        let err = Region::open(&ours, Access::ReadOnly).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn open_reports_the_size_rounded_up_to_a_page() {
        let name = unique("size");
        let _section = seeds_create(&name, 100);
        let region = Region::open(&name, Access::ReadOnly).unwrap();
        assert_eq!(region.size(), 4096);
        assert_eq!(region.map(..).unwrap().len(), 4096);
        let created = Region::create(&unique("size-c"), 100).unwrap();
        assert_eq!(
            created.size(),
            100,
            "the creator keeps the size it asked for"
        );
    }

    #[test]
    fn global_and_local_prefixes_select_the_namespace() {
        let name = unique("ns");
        let global = format!("Global\\{name}");
        let region = match Region::create(&global, 4096) {
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                eprintln!("skipped Global\\: {e}");
                None
            }
            r => Some(r.unwrap()),
        };
        if let Some(region) = &region {
            region
                .map_mut(0..6)
                .unwrap()
                .write_at(0, b"global")
                .unwrap();
            let opened = open_section(&wide(&global), FILE_MAP_READ).unwrap();
            assert_eq!(RawView::new(&opened, FILE_MAP_READ).bytes(0, 6), b"global");
            let again = Region::open(&global, Access::ReadOnly).unwrap();
            assert_eq!(again.map(0..6).unwrap().to_vec(), b"global");
        }

        // `Local\NAME` is the session's NAME.
        let local = format!("Local\\{name}-l");
        let region = Region::create(&local, 4096).unwrap();
        region.map_mut(0..5).unwrap().write_at(0, b"local").unwrap();
        let plain = Region::open(&format!("{name}-l"), Access::ReadOnly).unwrap();
        assert_eq!(plain.map(0..5).unwrap().to_vec(), b"local");
        let err = Region::create(&format!("{name}-l"), 4096).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    }

    #[test]
    fn a_region_over_4_gib_maps_views_past_the_32_bit_boundary() {
        let name = unique("big");
        let size = 5u64 << 30;
        let region = match Region::create(&name, size) {
            Err(e) if e.kind() == ErrorKind::OutOfMemory => {
                return eprintln!("skipped: the system cannot commit 5 GiB: {e}")
            }
            r => r.unwrap(),
        };
        assert_eq!(region.size(), size);
        let near_end = size - 70_001; // not a multiple of 64 KiB
        region
            .map_mut(near_end..near_end + 11)
            .unwrap()
            .write_at(0, b"far, far in")
            .unwrap();
        let across = (4u64 << 30) - 3; // spans the high/low DWORD split
        region
            .map_mut(across..across + 6)
            .unwrap()
            .write_at(0, b"4 GiB!")
            .unwrap();

        let reader = Region::open(&name, Access::ReadOnly).unwrap();
        assert_eq!(reader.size(), size);
        assert_eq!(
            reader.map(near_end..near_end + 11).unwrap().to_vec(),
            b"far, far in"
        );
        assert_eq!(reader.map(across..across + 6).unwrap().to_vec(), b"4 GiB!");
        assert_eq!(reader.map(size - 1..).unwrap().to_vec()[0], 0);
    }

    #[test]
    fn an_impossible_size_is_an_error_at_create() {
        let name = unique("huge");
        let err = Region::create(&name, 1 << 62).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::OutOfMemory | ErrorKind::InvalidArgument
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("cannot create region"), "{err}");
        assert_eq!(
            Region::open(&name, Access::ReadOnly).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn create_of_a_taken_name_is_already_exists_and_leaves_it_alone() {
        let name = unique("taken");
        let region = Region::create(&name, 4096).unwrap();
        region.map_mut(0..4).unwrap().write_at(0, b"mine").unwrap();
        let err = Region::create(&name, 8192).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(
            err.to_string(),
            format!("cannot create region \"{name}\": already exists")
        );
        let reader = Region::open(&name, Access::ReadOnly).unwrap();
        assert_eq!(reader.size(), 4096);
        assert_eq!(reader.map(0..4).unwrap().to_vec(), b"mine");
    }

    #[test]
    fn a_name_held_by_a_mutex_is_taken_and_of_the_wrong_kind() {
        let name = unique("mutex");
        let wide_name = wide(&name);
        // SAFETY: default security, not owned, NUL-terminated name.
        let raw = unsafe { CreateMutexW(ptr::null(), FALSE, wide_name.as_ptr()) };
        assert!(!raw.is_null(), "{}", io::Error::last_os_error());
        // SAFETY: a fresh handle owned by nobody else.
        let _mutex = unsafe { OwnedHandle::from_raw_handle(raw) };

        let err = Region::create(&name, 4096).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        assert!(
            err.to_string().ends_with(
                "already exists: it is a mutex; sections, \
            mutexes, events and semaphores share one namespace"
            ),
            "{err}"
        );
        let err = Region::open(&name, Access::ReadWrite).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKind, "{err}");
        assert!(err.to_string().contains("it is a mutex"), "{err}");
        let err = Region::create_or_open(&name, 4096).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKind, "{err}");
        let info = crate::inspect(&name).unwrap();
        assert_eq!(info.kind, Some(ObjectKind::Mutex));
    }

    #[test]
    fn a_name_another_user_holds_is_taken() {
        // An empty DACL lets nobody but the creator's own handle in, as an
        // object another user made without sharing it looks to this one.
        let nobody = SecurityDescriptor::from_sddl("D:").unwrap();
        let attributes = SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: nobody.0,
            bInheritHandle: FALSE,
        };
        let name = unique("theirs");
        let wide_name = wide(&name);
        // SAFETY: a paging-file backed section; the attributes, their
        // descriptor and the NUL-terminated name outlive the call.
        let raw = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                &attributes,
                PAGE_READWRITE,
                0,
                4096,
                wide_name.as_ptr(),
            )
        };
        assert!(!raw.is_null(), "{}", io::Error::last_os_error());
        // SAFETY: a fresh handle owned by nobody else.
        let _section = unsafe { OwnedHandle::from_raw_handle(raw) };
        let err = Region::open(&name, Access::ReadOnly).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        let err = Region::create(&name, 4096).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot create region \"{name}\": already exists: held by another user, \
                 whose object this user may not open"
            )
        );

        let name = unique("theirs-m");
        let wide_name = wide(&name);
        // SAFETY: as above; not owned.
        let raw = unsafe { CreateMutexW(&attributes, FALSE, wide_name.as_ptr()) };
        assert!(!raw.is_null(), "{}", io::Error::last_os_error());
        // SAFETY: a fresh handle owned by nobody else.
        let _mutex = unsafe { OwnedHandle::from_raw_handle(raw) };
        let err = crate::Mutex::create(&name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        assert!(err.to_string().contains("held by another user"), "{err}");
        let err = crate::Mutex::open(&name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    }

    #[test]
    fn a_read_only_handle_cannot_map_for_writing() {
        let name = unique("ro");
        let _region = Region::create(&name, 4096).unwrap();
        let parsed = Name::parse(&name, Operation::Open, ObjectKind::Region).unwrap();
        let handle = Handle::open(&parsed, ObjectKind::Region, Access::ReadOnly).unwrap();
        let err = handle.map(0, 1, true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(handle.map(0, 1, false).is_ok());
    }

    #[test]
    fn a_region_open_to_everyone_is_made_and_opened() {
        let name = unique("everyone");
        let region = crate::RegionOptions::new()
            .mode(0o666)
            .create(&name, 4096)
            .unwrap();
        region.map_mut(0..2).unwrap().write_at(0, b"ok").unwrap();
        let reader = Region::open(&name, Access::ReadWrite).unwrap();
        assert_eq!(reader.map(0..2).unwrap().to_vec(), b"ok");
    }

    #[test]
    fn what_windows_cannot_do_is_unsupported() {
        let name = unique("unsupported");
        let err = crate::RegionOptions::new()
            .lifetime(Lifetime::Persistent)
            .create(&name, 4096)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("only while a handle"), "{err}");

        assert_eq!(
            crate::remove(&name).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let _region = Region::create(&name, 4096).unwrap();
        let err = crate::remove(&name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().starts_with("cannot remove region"), "{err}");
        let seen = crate::inspect(&name).unwrap();
        assert!(!seen.removable_while_held && !seen.holders_known);
        let err = crate::remove_unheld(&seen).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        let report = crate::reap().unwrap();
        assert!(report.removed.is_empty() && report.skipped.is_empty());
    }

    #[test]
    fn list_and_inspect_show_sections_with_their_size() {
        let name = unique("listed");
        let _region = Region::create(&name, 12345).unwrap();
        let info = crate::inspect(&name).unwrap();
        assert_eq!(info.kind, Some(ObjectKind::Region));
        assert_eq!(info.size, 16384, "rounded up to a page");
        assert_eq!(info.state, State::Alive);
        // Sections carry no mark: memlink's look like anyone else's.
        assert_eq!(info.origin, crate::Origin::Unknown);
        let err = crate::inspect(&unique("absent")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            err.to_string().starts_with("cannot inspect object"),
            "{err}"
        );

        let listed = crate::list().unwrap();
        let ours = listed.iter().find(|o| o.name == name).expect("listed");
        assert_eq!(ours.kind, Some(ObjectKind::Region));
        assert_eq!(ours.size, 16384);
        assert_eq!(ours.origin, crate::Origin::Unknown);
        let seeds = unique("seeds");
        let _section = seeds_create(&seeds, 4096);
        let listed = crate::list().unwrap();
        let theirs = listed.iter().find(|o| o.name == seeds).expect("listed");
        assert_eq!(
            theirs.origin,
            crate::Origin::Unknown,
            "not called memlink's"
        );

        // A name outside memlink's syntax, as the seeds' programs may use.
        let spaced = format!("{} Map 2", unique("probeW"));
        let _spaced_section = seeds_create(&spaced, 4096);
        assert_eq!(crate::inspect(&spaced).unwrap().size, 4096);
        assert_eq!(
            Region::open(&spaced, Access::ReadOnly).unwrap().size(),
            4096
        );
        assert_eq!(
            Region::create(&spaced, 4096).unwrap_err().kind(),
            ErrorKind::InvalidName,
            "memlink creates only portable names"
        );
    }
}
