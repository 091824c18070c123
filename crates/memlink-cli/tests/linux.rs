//! The command-line tool on Linux: signals, crashed holders and reaping,
//! foreign segments (plain `shm_open`, Python), holders from `/proc`, and
//! `watch` in a real terminal (tmux).

#![cfg(target_os = "linux")]

mod support;

use std::ffi::CString;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{run, unique, Held, BIN, DEADLINE};

/// Every `ls` and `reap` in this file scans all objects, and a scan probes
/// each one with a short exclusive `flock`: a stale name probed by one scan
/// looks held to another scan running at that moment, and a `reap` may
/// remove it. The test that follows a stale name takes this for its whole
/// run; the other tests take it around each of their scans.
static SCANNING: Mutex<()> = Mutex::new(());

fn scanning() -> std::sync::MutexGuard<'static, ()> {
    SCANNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// `memlink ls|reap args...`, in turn with the other scans.
fn scan(args: &[&str]) -> support::Run {
    let _turn = scanning();
    run(args)
}

/// `ls --json --all`'s entry for `name`, if listed (call with the scanning
/// turn held).
fn listed_in_turn(name: &str) -> Option<Value> {
    let json: Value = serde_json::from_str(run(&["ls", "--all", "--json"]).ok()).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .cloned()
}

/// `ls --json --all`'s entry for `name`, if listed.
fn listed(name: &str) -> Option<Value> {
    let _turn = scanning();
    listed_in_turn(name)
}

fn pids(holders: &Value) -> Vec<u64> {
    holders
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_u64().unwrap())
        .collect()
}

#[test]
fn sigterm_closes_a_held_region_cleanly() {
    let name = unique("sigterm");
    let mut held = Held::start(&["create", &name, "--size", "1M"], "holding it");
    // SAFETY: kill(2) with a pid of our own child and a valid signal.
    assert_eq!(unsafe { libc::kill(held.pid() as i32, libc::SIGTERM) }, 0);
    let line = held.wait_for("closed region");
    assert_eq!(
        line,
        format!("closed region \"{name}\"; that was the last handle, the name is gone")
    );
    assert_eq!(held.wait_exit(), Some(0));
    run(&["read", &name]).fails(1);
}

#[test]
fn info_and_ls_name_the_holders_with_their_command_lines() {
    let name = unique("holders");
    let held = Held::start(
        &["create", &name, "--size", "4K", "--mode", "640"],
        "holding it",
    );
    let reader = Held::start(&["watch", &name, "--interval", "1s"], "memlink watch");

    let info: Value = serde_json::from_str(run(&["info", &name, "--json"]).ok()).unwrap();
    assert_eq!(info["mode"], "0640");
    assert_eq!(info["path"], format!("/dev/shm/{name}"));
    // The creator holds a handle; the watcher opens it only for each look.
    assert_eq!(pids(&info["holders"]), [u64::from(held.pid())]);
    let command = info["holders"][0]["command"].as_str().unwrap();
    assert!(
        command.ends_with(&format!("create {name} --size 4K --mode 640")),
        "{command}"
    );

    let text = run(&["info", &name]);
    let text = text.ok();
    assert!(
        text.contains(&format!("holders    {:<7} {BIN} create", held.pid())),
        "{text}"
    );
    assert!(text.contains("mode       0640 (rw-r-----)"), "{text}");

    let ls = scan(&["ls"]);
    let line = ls
        .ok()
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{}", ls.stdout))
        .to_owned();
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            name.as_str(),
            "region",
            "memlink",
            "4",
            "KiB",
            "last-handle",
            "alive",
            &held.pid().to_string(),
            "(memlink)"
        ]
    );
    assert!(ls.stdout.starts_with("NAME "), "{}", ls.stdout);
    drop(reader);
}

#[test]
fn a_killed_holder_leaves_a_stale_name_that_reap_removes() {
    let name = unique("stale");
    let _turn = scanning();
    let mut held = Held::start(
        &["create", &name, "--size", "64", "--text", "x"],
        "holding it",
    );
    held.kill(); // SIGKILL: no chance to clean up

    // Listing never removes anything: the name is stale (or already gone,
    // if something reaped it meanwhile).
    if let Some(entry) = listed_in_turn(&name) {
        assert_eq!(entry["state"], "stale", "{entry}");
        assert_eq!(entry["holders"], Value::Array(vec![]));
        let dry = run(&["reap", "--dry-run"]);
        assert!(
            dry.ok()
                .contains(&format!("would remove stale region \"{name}\" (64 B)")),
            "{}",
            dry.stdout
        );
        assert!(listed_in_turn(&name).is_some(), "--dry-run removed it");

        let reaped = run(&["reap"]);
        assert!(
            reaped
                .ok()
                .contains(&format!("removed stale region \"{name}\" (64 B)")),
            "{}",
            reaped.stdout
        );
    }
    assert!(listed_in_turn(&name).is_none());
    assert_eq!(
        run(&["read", &name]).fails(1),
        format!("memlink: cannot open region \"{name}\": not found")
    );
    // And the name is free again.
    drop(Held::start(
        &["create", &name, "--size", "64"],
        "holding it",
    ));
}

/// A segment made with plain `shm_open`, as a C program would; unlinked
/// when dropped (if still there).
struct Foreign {
    name: String,
    file: File,
}

impl Foreign {
    fn create(name: &str, size: u64) -> Foreign {
        let path = CString::new(format!("/{name}")).unwrap();
        // SAFETY: a valid NUL-terminated name; the result is checked.
        let fd = unsafe {
            libc::shm_open(
                path.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600,
            )
        };
        assert!(fd >= 0, "shm_open: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size).unwrap();
        Foreign {
            name: name.to_owned(),
            file,
        }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let path = CString::new(format!("/{}", self.name)).unwrap();
        // SAFETY: a valid NUL-terminated name.
        unsafe { libc::shm_unlink(path.as_ptr()) };
    }
}

#[test]
fn a_foreign_segment_is_read_listed_and_never_reaped() {
    let name = unique("foreign");
    let foreign = Foreign::create(&name, 8192);
    foreign.file.write_all_at(b"made by shm_open\0", 0).unwrap();

    assert_eq!(run(&["read", &name]).ok(), "made by shm_open\n");
    run(&["write", &name, "--offset", "8", "--text", "memlink"]).ok();
    let mut back = [0u8; 16];
    foreign.file.read_exact_at(&mut back, 0).unwrap();
    assert_eq!(&back, b"made by memlink\0");

    let entry = listed(&name).expect("ls shows the foreign segment");
    assert_eq!(entry["kind"], Value::Null);
    assert_eq!(entry["origin"], "foreign");
    assert_eq!(entry["size"], 8192);
    assert_eq!(entry["lifetime"], "persistent");
    assert_eq!(entry["state"], "alive");
    // This test process has it open: /proc tells.
    assert!(
        pids(&entry["holders"]).contains(&u64::from(std::process::id())),
        "{entry}"
    );
    let ls = scan(&["ls"]);
    assert!(
        ls.ok()
            .lines()
            .any(|l| l.starts_with(&name) && l.contains(" foreign ")),
        "{}",
        ls.stdout
    );
    let info = run(&["info", &name]);
    assert!(
        info.ok()
            .contains("kind       shared memory, made by another program (foreign)"),
        "{}",
        info.stdout
    );

    // Nobody holds it the memlink way, and still reap leaves it alone.
    let reaped = scan(&["reap"]);
    assert!(!reaped.ok().contains(&name), "{}", reaped.stdout);
    let dry = scan(&["reap", "--dry-run", "--json"]);
    assert!(!dry.ok().contains(&name), "{}", dry.stdout);
    assert!(listed(&name).is_some());

    // rm removes it on request, without --force.
    assert_eq!(run(&["rm", &name]).ok(), "");
    assert!(listed(&name).is_none());
    assert_eq!(
        run(&["rm", &name]).fails(1),
        format!("memlink: cannot remove object \"{name}\": not found")
    );
}

#[test]
fn python_shared_memory_is_foreign_and_readable() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let name = unique("python");
    let script = format!(
        "import sys\n\
         from multiprocessing import shared_memory\n\
         shm = shared_memory.SharedMemory(name={name:?}, create=True, size=4096)\n\
         shm.buf[:10] = b'from py!\\0\\0'\n\
         print('ready', flush=True)\n\
         sys.stdin.readline()\n\
         print(bytes(shm.buf[:16]).split(b'\\0')[0].decode(), flush=True)\n\
         shm.close()\n\
         shm.unlink()\n"
    );
    let mut python = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = python.stdin.take().unwrap();
    let stdout = python.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    assert_eq!(lines.recv_timeout(DEADLINE).unwrap(), "ready");

    assert_eq!(run(&["read", &name]).ok(), "from py!\n");
    let entry = listed(&name).expect("ls shows Python's segment");
    assert_eq!(entry["origin"], "foreign");
    let info: Value = serde_json::from_str(run(&["info", &name, "--json"]).ok()).unwrap();
    assert!(
        pids(&info["mapped_by"]).contains(&u64::from(python.id())),
        "{info}"
    );
    assert!(!scan(&["reap"]).ok().contains(&name));

    run(&["write", &name, "--text", "from memlink"]).ok();
    use std::io::Write;
    writeln!(stdin).unwrap();
    assert_eq!(lines.recv_timeout(DEADLINE).unwrap(), "from memlink");
    drop(stdin);
    assert!(python.wait().unwrap().success());
    assert!(listed(&name).is_none());
}

#[test]
fn rm_needs_force_for_a_held_region() {
    let name = unique("rmheld");
    let held = Held::start(&["create", &name, "--size", "4K"], "holding it");
    let stderr = run(&["rm", &name]).fails(1).to_owned();
    assert!(
        stderr.starts_with(&format!(
            "memlink: cannot remove region \"{name}\": it is held by {} ({BIN} create {name} --size 4K)",
            held.pid()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(listed(&name).is_some());
    run(&["rm", &name, "--force"]).ok();
    assert!(listed(&name).is_none());
    // The holder still has its memory; a new region may take the name.
    drop(Held::start(
        &["create", &name, "--size", "4K"],
        "holding it",
    ));
}

#[test]
fn write_checks_the_range_before_and_whatever_the_input() {
    let name = unique("writebounds");
    let _held = Held::start(&["create", &name, "--size", "16"], "holding it");
    // An empty input writes nothing, but a bad offset is still an error.
    let err = support::run_with_input(&["write", &name, "--offset", "1T", "-"], b"")
        .fails(1)
        .to_owned();
    assert!(err.contains("past the end"), "{err}");
    // Input longer than the room is refused without reading it all.
    let big = vec![b'x'; 1 << 20];
    let err = support::run_with_input(&["write", &name, "--offset", "10", "-"], &big)
        .fails(1)
        .to_owned();
    assert!(
        err.contains("the input is more than the 6 bytes that fit at offset 10 (the region's size is 16 bytes)"),
        "{err}"
    );
    support::run_with_input(&["write", &name, "--offset", "10", "-"], b"abcdef").ok();
    assert_eq!(
        run(&["read", &name, "--offset", "10", "--raw"]).ok(),
        "abcdef"
    );
}

#[test]
fn watch_refuses_to_follow_more_than_it_can_hold_into_a_pipe() {
    let name = unique("watchbig");
    let _held = Held::start(&["create", &name, "--size", "4M"], "holding it");
    let err = run(&["watch", &name, "--len", "2M"]).fails(1).to_owned();
    assert!(
        err.contains("more than the 1048576 bytes watch follows at once"),
        "{err}"
    );
}

#[test]
fn persistent_regions_outlive_their_creator_until_removed() {
    let name = unique("persist");
    let out = run(&[
        "create",
        &name,
        "--size",
        "2K",
        "--text",
        "still here",
        "--persistent",
    ]);
    assert_eq!(
        out.ok(),
        format!(
            "created region \"{name}\": 2 KiB (2048 bytes), lifetime persistent, mode 0600 (rw-------)\n\
             wrote 11 bytes (the text and its NUL) at offset 0\n\
             it stays until `memlink rm {name}`\n"
        )
    );
    assert_eq!(run(&["read", &name]).ok(), "still here\n");
    let entry = listed(&name).unwrap();
    assert_eq!(entry["lifetime"], "persistent");
    assert_eq!(entry["state"], "alive");
    assert!(!scan(&["reap"]).ok().contains(&name));
    run(&["rm", &name]).ok();
    run(&["read", &name]).fails(1);
}

#[test]
fn ls_hides_posix_semaphores_unless_all() {
    let name = format!("sem.{}", unique("sem"));
    let path = format!("/dev/shm/{name}");
    std::fs::write(&path, [0u8; 32]).unwrap();
    let plain: Value = serde_json::from_str(scan(&["ls", "--json"]).ok()).unwrap();
    assert!(!plain
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == name.as_str()));
    assert!(listed(&name).is_some(), "--all shows it");
    let ls = scan(&["ls"]);
    assert!(ls.stderr.contains("POSIX semaphore"), "{}", ls.stderr);
    std::fs::remove_file(&path).unwrap();
}

/// A tmux server of our own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start() -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        Some(Tmux {
            socket: unique("tmux"),
        })
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `command` in a new 100x20 session; the pane stays after it ends.
    fn session(&self, session: &str, command: &str) {
        let command = format!("{command}; echo \"watch exited with $?\"; sleep 600");
        self.tmux(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "100",
            "-y",
            "20",
            &command,
        ]);
    }

    /// The pane's text, with `-e` its styles as escape sequences.
    fn capture(&self, session: &str, styles: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", session];
        if styles {
            args.push("-e");
        }
        self.tmux(&args)
    }

    /// Polls the pane until `ready` holds, within the deadline. There is no
    /// event to wait on for what a terminal shows.
    #[track_caller]
    fn wait_for(
        &self,
        session: &str,
        styles: bool,
        what: &str,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let pane = self.capture(session, styles);
            if ready(&pane) {
                return pane;
            }
            assert!(
                Instant::now() < until,
                "the pane never showed {what}:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn watch_redraws_in_a_terminal_and_marks_a_change_by_another_process() {
    let Some(tmux) = Tmux::start() else { return };
    let name = unique("watch");
    let mut held = Held::start(
        &["create", &name, "--size", "100", "--text", "before"],
        "holding it",
    );
    let watch = format!("{BIN} watch {name} --interval 50ms");
    tmux.session(
        "colour",
        &format!("env -u NO_COLOR -u CLICOLOR -u CLICOLOR_FORCE TERM=xterm-256color {watch}"),
    );
    tmux.session("plain", &format!("env NO_COLOR=1 {watch}"));
    for session in ["colour", "plain"] {
        tmux.wait_for(session, false, "the first frame", |p| {
            p.contains("memlink watch: region") && p.contains("|before..........|")
        });
    }

    // Another process writes; both views show it, marked.
    run(&["write", &name, "--offset", "1", "--text", "AF", "--no-nul"]).ok();
    let pane = tmux.wait_for("plain", false, "the change, marked with *", |p| {
        p.contains("00000000  62*41*46 6f 72 65 00 00") && p.contains("|bAFore..........|")
    });
    assert!(pane.contains("last change: 2 bytes"), "{pane}");
    let pane = tmux.wait_for("colour", true, "the change in reverse video", |p| {
        p.contains("AF") && p.contains("7m41")
    });
    assert!(!pane.contains("*41"), "{pane}");
    // Redrawn in place: one header, not one per frame.
    let pane = tmux.capture("colour", false);
    assert_eq!(pane.matches("memlink watch: region").count(), 1, "{pane}");

    // Ctrl-C ends it cleanly.
    tmux.tmux(&["send-keys", "-t", "colour", "C-c"]);
    tmux.wait_for("colour", false, "a clean exit", |p| {
        p.contains("watch exited with 0")
    });

    // The region going away ends the other one, with a message.
    // SAFETY: kill(2) with a pid of our own child and a valid signal.
    assert_eq!(unsafe { libc::kill(held.pid() as i32, libc::SIGTERM) }, 0);
    assert_eq!(held.wait_exit(), Some(0));
    let pane = tmux.wait_for("plain", false, "the end of the region", |p| {
        p.contains("watch exited with 0")
    });
    assert!(
        pane.contains(&format!("memlink: region \"{name}\" went away")),
        "{pane}"
    );
}

#[test]
fn watch_prints_frames_on_changes_when_piped() {
    let name = unique("watchpipe");
    let _held = Held::start(
        &["create", &name, "--size", "32", "--text", "one"],
        "holding it",
    );
    let mut watch = Held::start(&["watch", &name, "--interval", "20ms"], "memlink watch");
    watch.wait_for("|one.............|");
    run(&["write", &name, "--text", "two"]).ok();
    let line = watch.wait_for("|two.............|");
    assert!(line.starts_with("00000000 *74*77*6f 00 00"), "{line}");
    drop(watch);
}

#[test]
fn other_memlink_objects_are_listed_with_their_kind_and_state() {
    let name = unique("mutex");
    let mutex = memlink::Mutex::create(&name).unwrap();
    let entry = listed(&name).expect("ls shows the mutex");
    assert_eq!(entry["kind"], "mutex", "{entry}");
    assert_eq!(entry["origin"], "memlink");
    assert_eq!(entry["state"], "alive");
    assert_eq!(entry["detail"], "unlocked");
    assert_eq!(pids(&entry["holders"]), [u64::from(std::process::id())]);
    let info = run(&["info", &name]);
    let text = info.ok();
    assert!(text.contains("mutex, made by memlink"), "{text}");
    assert!(text.contains("alive (unlocked)"), "{text}");

    let sem_name = unique("sem");
    let _sem = memlink::Semaphore::create(&sem_name, 2, 5).unwrap();
    assert_eq!(listed(&sem_name).unwrap()["detail"], "count 2 of 5");
    let table = run(&["ls"]);
    let row = table
        .ok()
        .lines()
        .find(|l| l.starts_with(&sem_name))
        .unwrap_or_else(|| panic!("no row for the semaphore in {}", table.stdout));
    assert!(
        row.contains("semaphore") && row.contains("alive (count 2 of 5)"),
        "{row}"
    );
    // It is not a region: read says so.
    let stderr = run(&["read", &name]).fails(1).to_owned();
    assert!(stderr.contains(&format!("\"{name}\"")), "{stderr}");
    drop(mutex);
    assert!(listed(&name).is_none());
}

/// `memlink args...` as the user `nobody`, through `setpriv`; `None` where
/// that cannot be done (not root, no `setpriv`).
fn run_as_nobody(args: &[&str]) -> Option<support::Run> {
    // SAFETY: getuid(2) cannot fail.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("not root: cannot run as another user; skipped");
        return None;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) => Some(support::Run::from(out)),
        Err(e) => {
            eprintln!("setpriv not available ({e}); skipped");
            None
        }
    }
}

/// Leaves `/dev/shm/NAME` as a `kill -9` leaves a memlink region: marked
/// as memlink's and last-handle, held by nobody; with permission bits
/// `mode`, owned by the caller.
fn leave_stale(path: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, [0u8; 4096]).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    let c_path = CString::new(path).unwrap();
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
fn reap_as_another_user_says_what_it_left_and_what_it_removed() {
    let _turn = scanning();
    let others = unique("reap-roots");
    leave_stale(&format!("/dev/shm/{others}"), 0o644);
    let own = unique("reap-nobodys");
    // nobody's own stale object, made by nobody.
    let Some(made) = run_as_nobody(&["create", &own, "--size", "4K", "--persistent"]) else {
        return;
    };
    made.ok();
    // Turn it into a dead last-handle object of nobody's.
    let c_path = CString::new(format!("/dev/shm/{own}")).unwrap();
    let mark = b"region;last-handle";
    // SAFETY: a path and a value that outlive the call.
    assert_eq!(
        unsafe {
            libc::setxattr(
                c_path.as_ptr(),
                c"user.memlink".as_ptr(),
                mark.as_ptr().cast(),
                mark.len(),
                0,
            )
        },
        0
    );
    let reaped = run_as_nobody(&["reap"]).unwrap();
    let stdout = reaped.ok();
    assert!(
        stdout.contains(&format!("removed stale region \"{own}\"")),
        "{stdout}"
    );
    assert!(!stdout.contains(&others), "{stdout}");
    assert!(
        reaped.stderr.contains(&format!(
            "memlink: left in place: cannot reap region \"{others}\": permission denied"
        )),
        "{}",
        reaped.stderr
    );
    // Root may.
    assert!(run(&["reap"]).ok().contains(&others));
}

#[test]
fn another_users_private_region_is_of_unknown_origin() {
    let name = unique("origin-unknown");
    let _held = Held::start(&["create", &name, "--size", "4K"], "holding it");
    let Some(info) = run_as_nobody(&["info", &name]) else {
        return;
    };
    let stdout = info.ok();
    assert!(
        stdout.contains("made by memlink or another program (unknown)"),
        "{stdout}"
    );
    let _turn = scanning();
    let json: Value =
        serde_json::from_str(run_as_nobody(&["ls", "--all", "--json"]).unwrap().ok()).unwrap();
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name.as_str())
        .cloned()
        .expect("listed with --all");
    assert_eq!(entry["origin"], "unknown");
}

#[test]
fn a_fifo_in_the_way_is_named_by_every_command_and_cleared_by_rm() {
    let name = unique("fifo-in-the-way");
    let c_path = CString::new(format!("/dev/shm/{name}")).unwrap();
    // SAFETY: a valid path for the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let what = "it is a FIFO, not a shared-memory object";
    for (args, op) in [
        (vec!["info", &name], "inspect object"),
        (vec!["read", &name], "open region"),
        (vec!["write", &name, "--text", "x"], "open region"),
        (vec!["create", &name, "--size", "4K"], "create region"),
    ] {
        let stderr = run(&args).fails(1).to_owned();
        assert!(
            stderr.starts_with(&format!("memlink: cannot {op} \"{name}\": "))
                && stderr.ends_with(what),
            "{args:?}: {stderr}"
        );
    }
    run(&["rm", &name]).ok();
    assert!(std::fs::symlink_metadata(format!("/dev/shm/{name}")).is_err());
    run(&["create", &name, "--size", "4K", "--persistent"]).ok();
    run(&["rm", &name]).ok();
}
