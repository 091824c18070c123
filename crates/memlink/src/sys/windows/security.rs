//! Security: who may open a new object (the `mode` bits, as a DACL), and
//! the lifetimes Windows can give it.

use std::mem::size_of;
use std::ptr;

use windows_sys::Win32::Foundation::{LocalFree, FALSE};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};

use super::errors::{last_error, os_error};
use super::names::wide;
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::CreateSpec;
use crate::types::Lifetime;

/// Any bit for group or others opens a new object to every user.
const EVERYONE_SDDL: &str = "D:(A;;GA;;;WD)";

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
pub(super) struct SecurityDescriptor(pub(super) PSECURITY_DESCRIPTOR);

impl SecurityDescriptor {
    pub(super) fn from_sddl(sddl: &str) -> std::result::Result<SecurityDescriptor, u32> {
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
