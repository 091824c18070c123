//! Regions and their views.

use std::ffi::c_char;

use memlink::{Access, Disposition, Lifetime, Region, RegionOptions, View, ViewMut};

use crate::{call, clear, free, give, handle, invalid, out, put, string, MemlinkError};

/// A handle to a named shared-memory region.
pub struct MemlinkRegion(Region);

/// A mapped view of a region: `len` bytes at `ptr`, read-only or writable.
pub struct MemlinkView {
    ptr: *mut u8,
    len: usize,
    writable: bool,
    /// Keeps the mapping; the bytes are reached through `ptr` only.
    _mapping: Mapping,
}

enum Mapping {
    ReadOnly(#[allow(dead_code)] View),
    Writable(#[allow(dead_code)] ViewMut),
}

/// How to create a region; a zeroed struct means the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MemlinkRegionOptions {
    /// Unix permission bits of a new region; 0 means the default, 0600
    /// (the creating user only).
    pub mode: u32,
    /// Live until removed (POSIX style) instead of until the last handle
    /// closes; unsupported on Windows.
    pub persistent: bool,
    /// Do not reserve the memory up front: a large region costs nothing
    /// until written, but a shortage is a SIGBUS on first touch.
    pub no_reserve: bool,
}

/// # Safety
/// `options` is NULL or points at a valid options struct.
unsafe fn region_options(options: *const MemlinkRegionOptions) -> RegionOptions {
    // SAFETY: NULL or a valid options struct, by the caller's contract.
    let Some(o) = (unsafe { options.as_ref() }) else {
        return RegionOptions::new();
    };
    let mut r = RegionOptions::new().reserve(!o.no_reserve);
    if o.mode != 0 {
        r = r.mode(o.mode);
    }
    if o.persistent {
        r = r.lifetime(Lifetime::Persistent);
    }
    r
}

/// Creates the region `name` of `size` bytes (zero-filled); the name must
/// be free (else `MEMLINK_ERROR_ALREADY_EXISTS`). `options` may be NULL.
/// The region lives while some process holds a handle to it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_region_create(
    name: *const c_char,
    size: u64,
    options: *const MemlinkRegionOptions,
    region: *mut *mut MemlinkRegion,
) -> MemlinkError {
    const F: &str = "memlink_region_create";
    clear(region);
    call(F, || {
        let out = out(region, F, "region")?;
        // SAFETY: NULL or a C string, by the C contract.
        let name = unsafe { string(name, F, "name") }?;
        // SAFETY: NULL or a valid options struct, by the C contract.
        let options = unsafe { region_options(options) };
        give(out, MemlinkRegion(options.create(name, size)?));
        Ok(())
    })
}

/// Opens the existing region `name`, read-write or read-only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_region_open(
    name: *const c_char,
    writable: bool,
    region: *mut *mut MemlinkRegion,
) -> MemlinkError {
    const F: &str = "memlink_region_open";
    clear(region);
    call(F, || {
        let out = out(region, F, "region")?;
        // SAFETY: NULL or a C string, by the C contract.
        let name = unsafe { string(name, F, "name") }?;
        let access = if writable {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        give(out, MemlinkRegion(Region::open(name, access)?));
        Ok(())
    })
}

/// Creates the region `name`, or opens it read-write if it exists (its
/// size is then the existing one). `*created` (may be NULL) says which.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_region_create_or_open(
    name: *const c_char,
    size: u64,
    options: *const MemlinkRegionOptions,
    region: *mut *mut MemlinkRegion,
    created: *mut bool,
) -> MemlinkError {
    const F: &str = "memlink_region_create_or_open";
    clear(region);
    call(F, || {
        let out = out(region, F, "region")?;
        // SAFETY: NULL or a C string, by the C contract.
        let name = unsafe { string(name, F, "name") }?;
        // SAFETY: NULL or a valid options struct, by the C contract.
        let options = unsafe { region_options(options) };
        let (r, disposition) = options.create_or_open(name, size)?;
        give(out, MemlinkRegion(r));
        put(created, disposition == Disposition::Created);
        Ok(())
    })
}

/// The region's size in bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_region_size(
    region: *const MemlinkRegion,
    size: *mut u64,
) -> MemlinkError {
    const F: &str = "memlink_region_size";
    call(F, || {
        let size = out(size, F, "size")?;
        // SAFETY: NULL or a live handle, by the C contract.
        let region = unsafe { handle(region, F, "region") }?;
        // SAFETY: checked non-NULL above.
        unsafe { size.as_ptr().write(region.0.size()) };
        Ok(())
    })
}

/// Closes a region handle; views mapped from it stay valid until closed.
/// The region goes away with its last handle. NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_region_close(region: *mut MemlinkRegion) -> MemlinkError {
    call("memlink_region_close", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(region) };
        Ok(())
    })
}

/// Maps `len` bytes of the region from `offset` (`len` 0: up to the end,
/// as `MapViewOfFile` does), writable or read-only. A writable view of a
/// region opened read-only is `MEMLINK_ERROR_READ_ONLY`; a range past the
/// end is `MEMLINK_ERROR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_region_map(
    region: *const MemlinkRegion,
    offset: u64,
    len: u64,
    writable: bool,
    view: *mut *mut MemlinkView,
) -> MemlinkError {
    const F: &str = "memlink_region_map";
    clear(view);
    call(F, || {
        let out = out(view, F, "view")?;
        // SAFETY: NULL or a live handle, by the C contract.
        let region = &unsafe { handle(region, F, "region") }?.0;
        let end = if len == 0 {
            region.size()
        } else {
            offset
                .checked_add(len)
                .ok_or_else(|| invalid(F, format_args!("offset {offset} + len {len} overflows")))?
        };
        let v = if writable {
            let mut m = region.map_mut(offset..end)?;
            MemlinkView {
                ptr: m.as_mut_ptr(),
                len: m.len(),
                writable,
                _mapping: Mapping::Writable(m),
            }
        } else {
            let m = region.map(offset..end)?;
            MemlinkView {
                ptr: m.as_ptr().cast_mut(),
                len: m.len(),
                writable,
                _mapping: Mapping::ReadOnly(m),
            }
        };
        give(out, v);
        Ok(())
    })
}

/// The view's memory: `*len` bytes at `*data`, valid until the view is
/// closed. Writing through a read-only view's pointer faults; use
/// `memlink_view_data_mut` to get a writable one. Either out-parameter
/// may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_view_data(
    view: *const MemlinkView,
    data: *mut *const u8,
    len: *mut usize,
) -> MemlinkError {
    const F: &str = "memlink_view_data";
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let view = unsafe { handle(view, F, "view") }?;
        put(data, view.ptr.cast_const());
        put(len, view.len);
        Ok(())
    })
}

/// As `memlink_view_data`, for a writable view; a read-only view is
/// `MEMLINK_ERROR_READ_ONLY`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_view_data_mut(
    view: *const MemlinkView,
    data: *mut *mut u8,
    len: *mut usize,
) -> MemlinkError {
    const F: &str = "memlink_view_data_mut";
    clear(data);
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let view = unsafe { handle(view, F, "view") }?;
        if !view.writable {
            return Err(crate::Failure {
                code: MemlinkError::ReadOnly,
                message: format!("{F}: the view is read-only"),
            });
        }
        put(data, view.ptr);
        put(len, view.len);
        Ok(())
    })
}

/// Unmaps a view; its pointer is invalid afterwards. NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_view_close(view: *mut MemlinkView) -> MemlinkError {
    call("memlink_view_close", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(view) };
        Ok(())
    })
}
