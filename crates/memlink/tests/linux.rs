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
        // As `nobody`: opens another user's region, closes it last when
        // told, then says what an open and a create of the name do.
        ["open_close_look", name] => {
            let region = Region::open(name, Access::ReadWrite).unwrap();
            say("opened");
            assert_eq!(hear().as_deref(), Some("close"));
            drop(region);
            say(outcome(Region::open(name, Access::ReadOnly)));
            say(outcome(Region::create(name, 4096)));
        }
        // As `nobody`: says what an open and a create of the name do.
        ["look", name] => {
            say(outcome(Region::open(name, Access::ReadOnly)));
            say(outcome(Region::create(name, 4096)));
        }
        // As `nobody`: leaves a stale object of its own, then reaps.
        ["reap_beside", own, others] => {
            stale_object(own);
            let report = memlink::reap().unwrap();
            let removed: Vec<&str> = report.removed.iter().map(|i| i.name.as_str()).collect();
            say(format!("removed own: {}", removed.contains(own)));
            say(format!("removed other's: {}", removed.contains(others)));
            match report.skipped.iter().find(|(info, _)| info.name == *others) {
                Some((_, why)) => say(format!("skipped other's: {:?}: {why}", why.kind())),
                None => say("other's not reported"),
            }
        }
        ["create_sized", name, size] => {
            let _region = Region::create(name, size.parse().unwrap()).unwrap();
            say("created");
            hear();
        }
        // Re-creates, live, a name whose stale object it reaps first.
        ["recreate", name] => {
            memlink::reap().unwrap();
            let _region = Region::create(name, 4096).unwrap();
            say("created");
            hear();
        }
        // As `nobody`: what is known of another user's private object.
        ["inspect", name] => {
            let info = memlink::inspect(name).unwrap();
            say(format!("{:?} {:?}", info.origin, info.kind));
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Taken by the tests that reap as root and by those whose stale objects
/// must stay until another user looks at them: a root reap would remove
/// those in the middle of the look.
static REAPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn no_root_reaps() -> std::sync::MutexGuard<'static, ()> {
    REAPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An open's or a create's outcome in a line: `ok`, or the error's kind
/// and message.
fn outcome(result: memlink::Result<Region>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{:?}: {e}", e.kind()),
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
    let _reaps = no_root_reaps();
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

#[test]
fn another_users_last_close_leaves_the_name_gone_for_everyone() {
    let _reaps = no_root_reaps();
    let name = unique_name("last-close-nobody");
    let region = RegionOptions::new()
        .mode(0o666)
        .create(&name, 4096)
        .unwrap();
    let Some(mut child) = Child::spawn_as_nobody("open_close_look", &[&name]) else {
        return;
    };
    child.expect("opened");
    drop(region); // root's handle first: nobody's is the last
    child.tell("close");
    // The sticky /dev/shm keeps nobody from unlinking root's file, and the
    // name is gone all the same.
    assert_eq!(
        child.next_line(),
        format!("NotFound: cannot open region \"{name}\": not found")
    );
    let create = child.next_line();
    assert!(
        create.starts_with(&format!(
            "PermissionDenied: cannot create region \"{name}\": permission denied: \
             the name is held by a stale object (every holder died) of uid 0"
        )),
        "{create}"
    );
    child.finish();
    // Someone who may remove it comes by, and it goes.
    let err = Region::open(&name, Access::ReadOnly).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn another_users_dead_region_is_not_found_and_create_says_why_not() {
    let _reaps = no_root_reaps();
    let name = unique_name("dead-644");
    stale_object(&name);
    std::fs::set_permissions(
        format!("/dev/shm/{name}"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let Some(child) = Child::spawn_as_nobody("look", &[&name]) else {
        memlink::remove(&name).unwrap();
        return;
    };
    assert_eq!(
        child.next_line(),
        format!("NotFound: cannot open region \"{name}\": not found")
    );
    let create = child.next_line();
    assert!(
        create.starts_with("PermissionDenied: ") && create.contains("of uid 0"),
        "{create}"
    );
    child.finish();
    assert_eq!(
        Region::open(&name, Access::ReadOnly).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn reap_as_another_user_skips_what_it_may_not_remove_and_reports_its_own() {
    let _reaps = no_root_reaps();
    let others = unique_name("reap-root");
    stale_object(&others);
    std::fs::set_permissions(
        format!("/dev/shm/{others}"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let own = unique_name("reap-nobody");
    let Some(child) = Child::spawn_as_nobody("reap_beside", &[&own, &others]) else {
        memlink::remove(&others).unwrap();
        return;
    };
    assert_eq!(child.next_line(), "removed own: true");
    assert_eq!(child.next_line(), "removed other's: false");
    let skipped = child.next_line();
    assert!(
        skipped.starts_with(&format!(
            "skipped other's: PermissionDenied: cannot reap region \"{others}\": permission denied"
        )),
        "{skipped}"
    );
    child.finish();
    assert!(!std::path::Path::new(&format!("/dev/shm/{own}")).exists());
    let reaped = memlink::reap().unwrap();
    assert!(reaped.removed.iter().any(|i| i.name == others), "root may");
}

#[test]
fn another_users_private_object_is_of_unknown_origin() {
    let name = unique_name("origin-unknown");
    let _region = Region::create(&name, 4096).unwrap(); // 0600
    let Some(child) = Child::spawn_as_nobody("inspect", &[&name]) else {
        return;
    };
    assert_eq!(child.next_line(), "Unknown None");
    child.finish();
    let own = memlink::inspect(&name).unwrap();
    assert_eq!(own.origin, memlink::Origin::Memlink);
    let name = unique_name("origin-foreign");
    posix_create(&name, b"");
    assert_eq!(
        memlink::inspect(&name).unwrap().origin,
        memlink::Origin::Foreign
    );
    memlink::remove(&name).unwrap();
}

/// Puts something that is not a shared-memory object at `/dev/shm/NAME`;
/// returns what it is called in messages. The socket's listener is kept
/// in `keep`.
fn odd_file(
    kind: &str,
    name: &str,
    keep: &mut Vec<std::os::unix::net::UnixListener>,
) -> &'static str {
    let path = format!("/dev/shm/{name}");
    match kind {
        "fifo" => {
            let c_path = CString::new(path).unwrap();
            // SAFETY: a valid path for the call.
            assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
            "a FIFO"
        }
        "dir" => {
            std::fs::create_dir(path).unwrap();
            "a directory"
        }
        "symlink" => {
            std::os::unix::fs::symlink("/dev/null", path).unwrap();
            "a symbolic link"
        }
        "socket" => {
            keep.push(std::os::unix::net::UnixListener::bind(path).unwrap());
            "a socket"
        }
        _ => unreachable!(),
    }
}

#[test]
fn what_else_holds_a_name_is_named_by_every_operation_and_removable() {
    let mut listeners = Vec::new();
    for kind in ["fifo", "dir", "symlink", "socket"] {
        let name = unique_name(&format!("odd-{kind}"));
        let what = odd_file(kind, &name, &mut listeners);
        let detail = format!("{what}, not a shared-memory object");
        let create = Region::create(&name, 4096).unwrap_err();
        assert_eq!(create.kind(), ErrorKind::AlreadyExists, "{create}");
        assert!(create.to_string().ends_with(&detail), "{create}");
        for access in [Access::ReadOnly, Access::ReadWrite] {
            let open = Region::open(&name, access).unwrap_err();
            assert_eq!(open.kind(), ErrorKind::WrongKind, "{open}");
            assert!(open.to_string().ends_with(&detail), "{open}");
        }
        let inspect = memlink::inspect(&name).unwrap_err();
        assert_eq!(inspect.kind(), ErrorKind::WrongKind, "{inspect}");
        assert_eq!(
            inspect.to_string(),
            format!("cannot inspect object \"{name}\": the name belongs to another kind of object: it is {detail}")
        );
        memlink::remove(&name).unwrap();
        assert!(
            std::fs::symlink_metadata(format!("/dev/shm/{name}")).is_err(),
            "{kind} removed"
        );
        Region::create(&name, 4096).expect("the name is free again");
    }
}

#[test]
fn foreign_names_outside_the_portable_syntax_can_be_opened_inspected_removed() {
    for name in [
        format!("{} with space", unique_name("foreign")),
        format!(".{}", unique_name("hidden")),
    ] {
        posix_create(&name, b"theirs");
        let region = Region::open(&name, Access::ReadOnly).unwrap();
        assert_eq!(region.map(0..6).unwrap().to_vec(), b"theirs");
        drop(region);
        let info = memlink::inspect(&name).unwrap();
        assert_eq!(info.origin, memlink::Origin::Foreign);
        let create = Region::create(&format!("{name}-new"), 4096).unwrap_err();
        assert_eq!(create.kind(), ErrorKind::InvalidName, "portable to create");
        memlink::remove(&name).unwrap();
        assert_eq!(
            memlink::inspect(&name).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}

#[test]
fn remove_unheld_removes_only_the_unheld_object_that_was_looked_at() {
    // Held: refused, and the name stays.
    let held = unique_name("unheld-held");
    let region = Region::create(&held, 4096).unwrap();
    let seen = memlink::inspect(&held).unwrap();
    let err = memlink::remove_unheld(&seen).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InUse, "{err}");
    assert_eq!(
        err.to_string(),
        format!("cannot remove region \"{held}\": live processes hold it")
    );
    assert!(Region::open(&held, Access::ReadOnly).is_ok());
    drop(region);

    // Looked at while stale, then reaped and made anew by another process:
    // the new, live object is not removed in its place.
    let _reaps = no_root_reaps();
    let name = unique_name("unheld-recreated");
    stale_object(&name);
    let seen = memlink::inspect(&name).unwrap();
    assert_eq!(seen.state, State::Stale);
    let child = Child::spawn("recreate", &[&name]);
    child.expect("created");
    let err = memlink::remove_unheld(&seen).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        Region::open(&name, Access::ReadOnly).is_ok(),
        "the new one stays"
    );
    drop(child);

    // Unheld objects go: a stale one, a persistent one, a foreign one.
    let stale = unique_name("unheld-stale");
    stale_object(&stale);
    let persistent = unique_name("unheld-persistent");
    drop(
        RegionOptions::new()
            .lifetime(Lifetime::Persistent)
            .create(&persistent, 4096)
            .unwrap(),
    );
    let foreign = unique_name("unheld-foreign");
    posix_create(&foreign, b"");
    for name in [stale, persistent, foreign] {
        let seen = memlink::inspect(&name).unwrap();
        memlink::remove_unheld(&seen).unwrap();
        assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    }
}

#[test]
fn errors_about_names_say_which_kind_of_object() {
    let name = unique_name("kind-in-errors");
    let missing = memlink::remove(&name).unwrap_err();
    assert_eq!(
        missing.to_string(),
        format!("cannot remove object \"{name}\": not found")
    );
    assert_eq!(missing.object_kind(), None);
    let _mutex = memlink::Mutex::create(&name).unwrap();
    let seen = memlink::inspect(&name).unwrap();
    let held = memlink::remove_unheld(&seen).unwrap_err();
    assert_eq!(held.object_kind(), Some(ObjectKind::Mutex));
    assert!(
        held.to_string().starts_with("cannot remove mutex"),
        "{held}"
    );
}

/// The variable that tells a test it runs in a private, small /dev/shm.
const SMALL_SHM_VAR: &str = "MEMLINK_TEST_SMALL_DEV_SHM";

/// Runs the ignored test `inner` in a child with a private mount namespace
/// whose /dev/shm is a fresh tmpfs of `size` (never the real /dev/shm).
/// Skipped where that cannot be made (not root, no `unshare`).
fn in_small_dev_shm(size: &str, inner: &str) {
    if !rustix::process::getuid().is_root() {
        return eprintln!("not root: cannot mount a private /dev/shm; skipped");
    }
    let script = format!(
        "mount -t tmpfs -o size={size},mode=1777 memlink-test /dev/shm && \
         exec \"$0\" --ignored --exact {inner} --nocapture --test-threads=1"
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(std::env::current_exe().unwrap())
        .env(SMALL_SHM_VAR, size)
        .output();
    let Ok(out) = out else {
        return eprintln!("unshare not available; skipped");
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{inner} in a {size} /dev/shm: {}\n{stdout}\n{stderr}",
        out.status
    );
}

/// In an inner test: whether this runs in the small private /dev/shm that
/// `in_small_dev_shm` made (and not, by mistake, on the real one).
fn in_the_small_dev_shm() -> bool {
    if std::env::var_os(SMALL_SHM_VAR).is_none() {
        return false;
    }
    let st = rustix::fs::statvfs("/dev/shm").unwrap();
    let total = st.f_blocks * st.f_frsize;
    assert!(total <= 4 << 20, "not the small /dev/shm: {total} bytes");
    true
}

fn free_in_dev_shm() -> u64 {
    let st = rustix::fs::statvfs("/dev/shm").unwrap();
    st.f_bavail * st.f_frsize
}

#[test]
fn a_full_dev_shm_reaps_the_dead_first_and_names_what_holds_it() {
    in_small_dev_shm("1M", "full_dev_shm_inner");
}

#[test]
#[ignore = "run in a private 1 MiB /dev/shm by a_full_dev_shm_reaps_the_dead_first_and_names_what_holds_it"]
fn full_dev_shm_inner() {
    if !in_the_small_dev_shm() {
        return;
    }
    let size = (700 << 10).to_string();
    let stale = unique_name("space-stale");
    let child = Child::spawn("create_sized", &[&stale, &size]);
    child.expect("created");
    child.kill(); // its 700 KiB stay taken, by nobody alive
    let other = unique_name("space-other");
    let region = Region::create(&other, 700 << 10).expect("the dead's space is reaped for it");
    assert!(!std::path::Path::new(&format!("/dev/shm/{stale}")).exists());

    let third = unique_name("space-third");
    let err = Region::create(&third, 700 << 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("/dev/shm has "), "{msg}");
    assert!(
        msg.contains(&format!(
            "the most is held by \"{other}\" (700 KiB, held by pid {})",
            std::process::id()
        )),
        "{msg}"
    );
    drop(region);
}

#[test]
fn reads_take_no_space_and_writes_that_do_not_fit_are_errors() {
    in_small_dev_shm("1M", "sparse_region_inner");
}

#[test]
#[ignore = "run in a private 1 MiB /dev/shm by reads_take_no_space_and_writes_that_do_not_fit_are_errors"]
fn sparse_region_inner() {
    if !in_the_small_dev_shm() {
        return;
    }
    const MIB: usize = 1 << 20;
    let name = unique_name("sparse");
    let region = RegionOptions::new()
        .reserve(false)
        .create(&name, 16 * MIB as u64)
        .unwrap();
    let free = free_in_dev_shm();
    let mut chunk = vec![0xffu8; MIB];
    for i in 0..16 {
        region.read_at((i * MIB) as u64, &mut chunk).unwrap();
        assert!(chunk.iter().all(|&b| b == 0));
    }
    assert_eq!(
        free_in_dev_shm(),
        free,
        "reading 16 MiB of holes took no space"
    );

    let err = region.write_at(0, &vec![1u8; 2 * MIB]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    assert!(err.to_string().contains("/dev/shm is full: "), "{err}");
    let reader = Region::open(&name, Access::ReadOnly).unwrap();
    assert_eq!(
        reader.write_at(0, b"x").unwrap_err().kind(),
        ErrorKind::ReadOnly
    );
    let past = reader
        .read_at(16 * MIB as u64 - 1, &mut [0; 2])
        .unwrap_err();
    assert_eq!(past.kind(), ErrorKind::InvalidArgument, "{past}");
}
