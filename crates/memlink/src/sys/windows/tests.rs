//! The Windows backend against the plain calls the seeds use.

use super::names::open_named;
use super::security::SecurityDescriptor;
use super::*;
use crate::types::{Lifetime, State};
use crate::Region;
use windows_sys::Win32::Foundation::{SetLastError, FALSE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
use windows_sys::Win32::System::Threading::CreateMutexW;

fn unique(tag: &str) -> String {
    format!("memlink-win-{tag}-{}", std::process::id())
}

#[test]
fn kernel_names_keep_the_namespace_prefix_only() {
    let parse = |s| Name::parse(s, Operation::Open, ObjectKind::Region).unwrap();
    assert_eq!(kernel_name(&parse("Global\\abc")), "Global\\abc");
    assert_eq!(kernel_name(&parse("Local\\abc")), "Local\\abc");
    assert_eq!(kernel_name(&parse("/abc")), "abc");
    assert_eq!(kernel_name(&parse("abc")), "abc");
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
    let opened = open_named(OpenFileMappingW, &wide(&ours), FILE_MAP_READ).unwrap();
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
        let opened = open_named(OpenFileMappingW, &wide(&global), FILE_MAP_READ).unwrap();
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
