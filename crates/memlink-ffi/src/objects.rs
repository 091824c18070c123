//! Listing, inspecting, removing and reaping named objects.

use std::ffi::{c_char, CString};

use memlink::{Lifetime, ObjectInfo, ObjectKind, State};

use crate::{call, clear, free, give, handle, invalid, out, string, MemlinkError};

/// What memlink made an object as.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemlinkObjectKind {
    /// Made by another program with the plain OS calls.
    Foreign = 0,
    /// A shared-memory region.
    Region = 1,
    /// A mutex.
    Mutex = 2,
    /// A semaphore.
    Semaphore = 3,
    /// An event.
    Event = 4,
    /// A publish/subscribe service.
    Service = 5,
    /// A kind this header does not know yet.
    Other = 6,
}

/// Whether a listed object is in use.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemlinkObjectState {
    /// Some live process holds it (or it is persistent or foreign).
    Alive = 0,
    /// All its holders died; the next create, open or reap removes it.
    Stale = 1,
    /// Its state could not be read (another user's object, say).
    Unknown = 2,
}

/// One entry of a `MemlinkObjectList`. Its pointers are valid until the
/// list is freed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MemlinkObjectInfo {
    /// The object's name (NUL-terminated UTF-8).
    pub name: *const c_char,
    /// What memlink made it as.
    pub kind: MemlinkObjectKind,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it lives until removed, rather than until its last handle.
    pub persistent: bool,
    /// Whether it is in use.
    pub state: MemlinkObjectState,
    /// Ids of the processes holding it, where the platform tells (Linux).
    pub holders: *const u32,
    /// How many entries `holders` has.
    pub holder_count: usize,
    /// Whether `mode` is known.
    pub has_mode: bool,
    /// Unix permission bits.
    pub mode: u32,
    /// A sync object's state in words ("unlocked", "count 2 of 5"), or NULL.
    pub detail: *const c_char,
}

/// The result of `memlink_list`, `memlink_inspect` or `memlink_reap`.
pub struct MemlinkObjectList {
    entries: Vec<Entry>,
}

struct Entry {
    info: ObjectInfo,
    name: CString,
    detail: Option<CString>,
}

fn c_string(s: &str) -> CString {
    // Names and details hold no NUL (names cannot); drop any, to be sure.
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

fn list_of(infos: Vec<ObjectInfo>) -> MemlinkObjectList {
    MemlinkObjectList {
        entries: infos
            .into_iter()
            .map(|info| Entry {
                name: c_string(&info.name),
                detail: info.detail.as_deref().map(c_string),
                info,
            })
            .collect(),
    }
}

/// Lists the named shared-memory objects on this machine, memlink's own
/// of every kind and foreign ones. `MEMLINK_ERROR_UNSUPPORTED` on Windows.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_list(list: *mut *mut MemlinkObjectList) -> MemlinkError {
    const F: &str = "memlink_list";
    clear(list);
    call(F, || {
        let out = out(list, F, "list")?;
        give(out, list_of(memlink::list()?));
        Ok(())
    })
}

/// What is known about the object `name`: a list of one entry.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_inspect(
    name: *const c_char,
    list: *mut *mut MemlinkObjectList,
) -> MemlinkError {
    const F: &str = "memlink_inspect";
    clear(list);
    call(F, || {
        let out = out(list, F, "list")?;
        // SAFETY: NULL or a C string, by the C contract.
        let name = unsafe { string(name, F, "name") }?;
        give(out, list_of(vec![memlink::inspect(name)?]));
        Ok(())
    })
}

/// Removes the stale objects left by processes that died; `*list` (may be
/// NULL: then nothing is returned) gets what was removed. Stale objects
/// this user may not remove (another user's) are left in place.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_reap(list: *mut *mut MemlinkObjectList) -> MemlinkError {
    const F: &str = "memlink_reap";
    clear(list);
    call(F, || {
        let reaped = memlink::reap()?;
        if let Some(out) = std::ptr::NonNull::new(list) {
            give(out, list_of(reaped.removed));
        }
        Ok(())
    })
}

/// Removes the name `name`, whoever holds it (as `shm_unlink`): holders
/// keep their handles, new opens fail with `MEMLINK_ERROR_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_remove(name: *const c_char) -> MemlinkError {
    const F: &str = "memlink_remove";
    call(F, || {
        // SAFETY: NULL or a C string, by the C contract.
        let name = unsafe { string(name, F, "name") }?;
        memlink::remove(name)?;
        Ok(())
    })
}

/// How many entries the list has.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_object_list_len(
    list: *const MemlinkObjectList,
    len: *mut usize,
) -> MemlinkError {
    const F: &str = "memlink_object_list_len";
    call(F, || {
        let len = out(len, F, "len")?;
        // SAFETY: NULL or a live handle, by the C contract.
        let list = unsafe { handle(list, F, "list") }?;
        // SAFETY: checked non-NULL above.
        unsafe { len.as_ptr().write(list.entries.len()) };
        Ok(())
    })
}

/// Entry `index` of the list (an index past the end is
/// `MEMLINK_ERROR_INVALID_ARGUMENT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_object_list_get(
    list: *const MemlinkObjectList,
    index: usize,
    info: *mut MemlinkObjectInfo,
) -> MemlinkError {
    const F: &str = "memlink_object_list_get";
    call(F, || {
        let info = out(info, F, "info")?;
        // SAFETY: NULL or a live handle, by the C contract.
        let list = unsafe { handle(list, F, "list") }?;
        let entry = list.entries.get(index).ok_or_else(|| {
            invalid(
                F,
                format_args!(
                    "index {index} is past the end ({} entries)",
                    list.entries.len()
                ),
            )
        })?;
        let i = &entry.info;
        let kind = match i.kind {
            None => MemlinkObjectKind::Foreign,
            Some(ObjectKind::Region) => MemlinkObjectKind::Region,
            Some(ObjectKind::Mutex) => MemlinkObjectKind::Mutex,
            Some(ObjectKind::Semaphore) => MemlinkObjectKind::Semaphore,
            Some(ObjectKind::Event) => MemlinkObjectKind::Event,
            Some(ObjectKind::Service) => MemlinkObjectKind::Service,
            Some(_) => MemlinkObjectKind::Other,
        };
        let state = match i.state {
            State::Alive => MemlinkObjectState::Alive,
            State::Stale => MemlinkObjectState::Stale,
            State::Unknown => MemlinkObjectState::Unknown,
        };
        let value = MemlinkObjectInfo {
            name: entry.name.as_ptr(),
            kind,
            size: i.size,
            persistent: i.lifetime == Lifetime::Persistent,
            state,
            holders: i.holders.as_ptr(),
            holder_count: i.holders.len(),
            has_mode: i.mode.is_some(),
            mode: i.mode.unwrap_or(0),
            detail: entry
                .detail
                .as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr()),
        };
        // SAFETY: checked non-NULL above.
        unsafe { info.as_ptr().write(value) };
        Ok(())
    })
}

/// Frees a list; the pointers of its entries are invalid afterwards.
/// NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_object_list_free(list: *mut MemlinkObjectList) -> MemlinkError {
    call("memlink_object_list_free", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(list) };
        Ok(())
    })
}
