//! Linux specifics: interop with plain `shm_open` and Python, the marks in
//! `/dev/shm`, listing and reaping, a full `/dev/shm`, permissions.
#![cfg(target_os = "linux")]

mod support;

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use memlink::{Access, ErrorKind, Lifetime, ObjectKind, Region, RegionOptions, State};
use support::{hear, role, say, unique_name, Child};

/// Not a test: the entry point of the child processes the tests start.
#[test]
#[ignore = "entry point for child processes, run by the other tests"]
fn child_entry() {
    let Some(args) = role() else { return };
    match &args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["create", name] => {
            let _region = Region::create(name, 4096).unwrap();
            say("created");
            hear();
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Makes an object with the bare POSIX calls, as a C program would.
fn posix_create(name: &str, bytes: &[u8]) {
    let c_name = CString::new(format!("/{name}")).unwrap();
    // SAFETY: plain libc calls on a private name with checked results; the
    // mapping is written within its length and unmapped.
    unsafe {
        let fd = libc::shm_open(
            c_name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            0o600,
        );
        assert!(fd >= 0, "shm_open: {}", std::io::Error::last_os_error());
        assert_eq!(libc::ftruncate(fd, 4096), 0);
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(ptr, libc::MAP_FAILED);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.cast(), bytes.len());
        libc::munmap(ptr, 4096);
        libc::close(fd);
    }
}

/// Reads an object with the bare POSIX calls.
fn posix_read(name: &str, len: usize) -> Vec<u8> {
    let c_name = CString::new(format!("/{name}")).unwrap();
    // SAFETY: as in posix_create; `len` is within the 4 KiB objects used here.
    unsafe {
        let fd = libc::shm_open(c_name.as_ptr(), libc::O_RDONLY, 0);
        assert!(fd >= 0, "shm_open: {}", std::io::Error::last_os_error());
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(ptr, libc::MAP_FAILED);
        let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec();
        libc::munmap(ptr, len);
        libc::close(fd);
        bytes
    }
}

#[test]
fn plain_shm_open_and_memlink_see_the_same_bytes() {
    let name = unique_name("posix");
    posix_create(&name, b"from C\0");
    let region = Region::open(&name, Access::ReadWrite).unwrap();
    assert_eq!(region.size(), 4096);
    assert_eq!(region.map(0..7).unwrap().to_vec(), b"from C\0");
    region
        .map_mut(..)
        .unwrap()
        .write_at(0, b"from Rust")
        .unwrap();
    drop(region);
    // A foreign object is persistent: closing our handle leaves it.
    assert_eq!(posix_read(&name, 9), b"from Rust");
    memlink::remove(&name).unwrap();

    let region = Region::create(&name, 4096).unwrap();
    region.map_mut(..).unwrap().write_at(0, b"memlnk").unwrap();
    assert_eq!(
        posix_read(&name, 6),
        b"memlnk",
        "data at offset 0, no header"
    );
}

fn python_available() -> bool {
    Command::new("python3")
        .args(["-c", "import multiprocessing.shared_memory"])
        .status()
        .is_ok_and(|s| s.success())
}

fn python(script: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_shared_memory_interoperates_both_ways() {
    if !python_available() {
        eprintln!("python3 with multiprocessing.shared_memory not found; skipped");
        return;
    }
    // Python's resource tracker unlinks what it has seen when the script
    // ends; unregister so the object's fate stays ours to decide.
    let name = unique_name("py");
    python(&format!(
        "from multiprocessing import shared_memory, resource_tracker\n\
         m = shared_memory.SharedMemory('{name}', create=True, size=4096)\n\
         m.buf[:11] = b'from Python'\n\
         resource_tracker.unregister(m._name, 'shared_memory')\n\
         m.close()"
    ));
    let region = Region::open(&name, Access::ReadOnly).unwrap();
    assert_eq!(region.map(0..11).unwrap().to_vec(), b"from Python");
    drop(region);
    memlink::remove(&name).unwrap();

    let region = Region::create(&name, 4096).unwrap();
    region
        .map_mut(..)
        .unwrap()
        .write_at(0, b"from Rust")
        .unwrap();
    let seen = python(&format!(
        "from multiprocessing import shared_memory, resource_tracker\n\
         m = shared_memory.SharedMemory('{name}')\n\
         resource_tracker.unregister(m._name, 'shared_memory')\n\
         print(bytes(m.buf[:9]).decode(), m.size)\n\
         m.close()"
    ));
    assert_eq!(seen.trim(), "from Rust 4096");
}

#[test]
fn listing_tells_memlink_objects_from_foreign_and_stale_ones() {
    let alive = unique_name("ls-alive");
    let foreign = unique_name("ls-foreign");
    let stale = unique_name("ls-stale");
    let region = Region::create(&alive, 4096).unwrap();
    posix_create(&foreign, b"x");
    let child = Child::spawn("create", &[&stale]);
    child.expect("created");
    child.kill();

    let objects = memlink::list().unwrap();
    let find = |name: &str| objects.iter().find(|o| o.name == name).unwrap().clone();
    let a = find(&alive);
    assert_eq!(a.kind, Some(ObjectKind::Region));
    assert_eq!(a.lifetime, Lifetime::LastHandle);
    assert_eq!(a.state, State::Alive);
    assert_eq!(a.holders, vec![std::process::id()]);
    assert_eq!(a.mode, Some(0o600));
    let f = find(&foreign);
    assert_eq!(f.kind, None);
    assert!(!f.is_memlink());
    assert_eq!(f.lifetime, Lifetime::Persistent);
    let s = find(&stale);
    assert_eq!(s.state, State::Stale);
    assert!(s.holders.is_empty());
    assert_eq!(memlink::inspect(&stale).unwrap().state, State::Stale);

    let reaped = memlink::reap().unwrap().removed;
    let reaped: Vec<&str> = reaped.iter().map(|o| o.name.as_str()).collect();
    assert!(reaped.contains(&stale.as_str()), "{reaped:?}");
    assert!(
        !reaped.contains(&foreign.as_str()),
        "foreign objects are never reaped"
    );
    assert!(!reaped.contains(&alive.as_str()));
    assert_eq!(
        memlink::inspect(&stale).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(memlink::inspect(&foreign).is_ok());
    assert_eq!(region.map(0..1).unwrap().to_vec(), &[0]);
    memlink::remove(&foreign).unwrap();
    assert_eq!(
        memlink::remove(&foreign).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn objects_are_marked_without_touching_the_bytes() {
    let name = unique_name("mark");
    let _region = Region::create(&name, 4096).unwrap();
    let path = format!("/dev/shm/{name}");
    let c_path = CString::new(path.clone()).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: a path and a buffer that outlive the call.
    let n = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c"user.memlink".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n >= 0 {
        assert_eq!(&buf[..n as usize], b"region;last-handle");
    } else {
        // Kernels before 6.6 have no user xattrs on tmpfs: the sticky bit.
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_ne!(mode & libc::S_ISVTX, 0);
    }
    assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; 4096]);
}

#[test]
fn new_objects_are_private_unless_widened() {
    let private = unique_name("private");
    let shared = unique_name("shared");
    let _a = Region::create(&private, 4096).unwrap();
    let _b = RegionOptions::new()
        .mode(0o644)
        .create(&shared, 4096)
        .unwrap();
    let mode = |n: &str| {
        std::fs::metadata(format!("/dev/shm/{n}"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&private), 0o600);
    assert_eq!(
        mode(&shared),
        0o644,
        "the umask does not narrow an explicit mode"
    );
}

#[test]
fn asking_for_more_than_dev_shm_holds_fails_at_create() {
    let name = unique_name("huge");
    let stat = rustix::fs::statvfs("/dev/shm").unwrap();
    let free = stat.f_bavail * stat.f_frsize;
    let err = Region::create(&name, free + (1 << 30)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot create region \"{name}\": not enough shared memory"
        )),
        "{msg}"
    );
    assert!(
        !std::path::Path::new(&format!("/dev/shm/{name}")).exists(),
        "nothing left behind"
    );
    // Without reserving, the same size is accepted (and costs nothing).
    let sparse = RegionOptions::new()
        .reserve(false)
        .create(&name, free + (1 << 30));
    assert!(sparse.is_ok());
}

#[test]
fn an_object_of_another_kind_or_a_directory_is_not_a_region() {
    let name = unique_name("dir");
    std::fs::create_dir(format!("/dev/shm/{name}")).unwrap();
    let err = Region::open(&name, Access::ReadOnly).unwrap_err();
    std::fs::remove_dir(format!("/dev/shm/{name}")).unwrap();
    assert_eq!(err.kind(), ErrorKind::WrongKind, "{err}");

    let name = unique_name("kind");
    posix_create(&name, b"");
    let c_path = CString::new(format!("/dev/shm/{name}")).unwrap();
    // SAFETY: a path and a value that outlive the call.
    let rc = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c"user.memlink".as_ptr(),
            b"mutex;persistent".as_ptr().cast(),
            16,
            0,
        )
    };
    if rc == 0 {
        let err = Region::open(&name, Access::ReadOnly).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKind);
        assert_eq!(err.to_string(), format!("cannot open region \"{name}\": the name belongs to another kind of object: it is a mutex"));
    }
    memlink::remove(&name).unwrap();
}

#[test]
fn permission_denied_is_reported_as_such() {
    // Root ignores file modes, so only meaningful for other users; checked
    // by dropping to `nobody` in a child where that is possible.
    let name = unique_name("perm");
    let _region = Region::create(&name, 4096).unwrap();
    if rustix::process::getuid().is_root() {
        let exe = std::env::current_exe().unwrap();
        let status = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(exe)
            .args(["--ignored", "--exact", "open_as_other_user", "--nocapture"])
            .env("MEMLINK_PERM_NAME", &name)
            .output();
        let Ok(out) = status else {
            eprintln!("setpriv not available; skipped");
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("permission denied as expected"), "{stdout}");
    }
}

/// Not a test on its own: run by `permission_denied_is_reported_as_such`
/// as another user.
#[test]
#[ignore = "run as another user by permission_denied_is_reported_as_such"]
fn open_as_other_user() {
    let Ok(name) = std::env::var("MEMLINK_PERM_NAME") else {
        return;
    };
    let err = Region::open(&name, Access::ReadOnly).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_eq!(
        err.to_string(),
        format!("cannot open region \"{name}\": permission denied")
    );
    // An unprivileged user publishes through /proc/self/fd instead.
    let own = format!("{name}-own");
    let region = Region::create(&own, 4096).unwrap();
    assert_eq!(Region::open(&own, Access::ReadOnly).unwrap().size(), 4096);
    drop(region);
    println!("permission denied as expected");
}

#[test]
fn a_fifo_under_the_name_is_refused_not_waited_on() {
    let name = unique_name("fifo");
    let path = CString::new(format!("/dev/shm/{name}")).unwrap();
    // SAFETY: a valid path for the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let opener = name.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Region::open(&opener, Access::ReadOnly).map(|_| ()));
    });
    let result = rx.recv_timeout(support::DEADLINE);
    std::fs::remove_file(format!("/dev/shm/{name}")).unwrap();
    let err = result.expect("open returned").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKind, "{err}");
}

/// An object whose holders all died, as a `kill -9` leaves it: marked as
/// memlink's, last-handle, and held by nobody.
fn stale_object(name: &str) {
    posix_create(name, b"dead");
    let c_path = CString::new(format!("/dev/shm/{name}")).unwrap();
    let mark = b"region;last-handle";
    // SAFETY: a path and a value that outlive the call.
    let rc = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c"user.memlink".as_ptr(),
            mark.as_ptr().cast(),
            mark.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn listing_never_brings_a_stale_object_back_to_life() {
    // An opener racing inspect() on a stale object must say NotFound, never
    // hand out the dead object.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let current = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (flag, looked_at) = (stop.clone(), current.clone());
    let inspector = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let name = looked_at.lock().unwrap().clone();
            if !name.is_empty() {
                let _ = memlink::inspect(&name);
            }
        }
    });
    let mut revived = 0;
    for i in 0..2000 {
        let name = unique_name(&format!("revive-{i}"));
        stale_object(&name);
        *current.lock().unwrap() = name.clone();
        match Region::open(&name, Access::ReadOnly) {
            Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "{e}"),
            Ok(_) => {
                revived += 1;
                memlink::remove(&name).unwrap();
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    inspector.join().unwrap();
    assert_eq!(revived, 0, "stale objects opened as if alive");
}
