//! The C programs of `examples/c/`, compiled with the system C compiler
//! against the library cargo built, run as real processes: against each
//! other, against the `memlink` CLI and against this Rust process.
//! Every wait has a deadline.
//!
//! On Windows (under Wine in CI) the programs are compiled beforehand with
//! MinGW by `ci/windows-c-test.sh`, which names their directory in
//! `MEMLINK_C_EXAMPLES`.
#![cfg(any(target_os = "linux", windows))]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use memlink::pubsub::{Publisher, Subscriber};
use memlink::{Access, Event, EventReset, Region};

const DEADLINE: Duration = Duration::from_secs(30);

#[cfg(target_os = "linux")]
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the library and the CLI are, built for these tests by a cargo of
/// their own, in a target directory of their own: `cargo test` does not
/// rebuild a cdylib for integration tests (they cannot link it), so
/// target/debug/libmemlink.so may be missing or stale.
#[cfg(target_os = "linux")]
fn lib_dir() -> PathBuf {
    use std::sync::OnceLock;
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("build");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut child = Proc::new(
            Command::new(cargo)
                .args([
                    "build",
                    "-p",
                    "memlink-ffi",
                    "-p",
                    "memlink-cli",
                    "--target-dir",
                ])
                .arg(&target)
                .current_dir(repo())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn cargo build"),
        );
        let status = child.wait_for(Duration::from_secs(1200));
        assert!(
            status.success(),
            "cargo build -p memlink-ffi -p memlink-cli failed: {}",
            String::from_utf8_lossy(&child.stderr())
        );
        let dir = target.join("debug");
        assert!(
            dir.join("libmemlink.so").exists(),
            "{} has no libmemlink.so",
            dir.display()
        );
        dir
    })
    .clone()
}

fn unique(what: &str) -> String {
    format!("memlink-ffi-test-{what}-{}", std::process::id())
}

/// The program `examples/c/<program>.c`, compiled with MinGW by
/// `ci/windows-c-test.sh`.
#[cfg(windows)]
fn compile(program: &str, static_link: bool) -> PathBuf {
    assert!(!static_link, "the Windows build links memlink.dll");
    let dir = std::env::var_os("MEMLINK_C_EXAMPLES")
        .expect("MEMLINK_C_EXAMPLES names the C programs' directory (run ci/windows-c-test.sh)");
    let path = Path::new(&dir).join(format!("{program}.exe"));
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// Compiles `examples/c/<program>.c` once per test run; `static_link`
/// links libmemlink.a instead of libmemlink.so.
#[cfg(target_os = "linux")]
fn compile(program: &str, static_link: bool) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static BUILT: Mutex<Option<HashMap<(String, bool), PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(&(program.to_string(), static_link)) {
        return path.clone();
    }
    let lib = lib_dir();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{program}{}",
        if static_link { "-static" } else { "" }
    ));
    let mut cc = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()));
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(repo().join("crates/memlink-ffi/include"))
        .arg(repo().join(format!("examples/c/{program}.c")))
        .arg("-o")
        .arg(&out);
    if static_link {
        // What `rustc --print native-static-libs` lists for this target.
        cc.arg(lib.join("libmemlink.a")).args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ]);
    } else {
        cc.arg("-L").arg(&lib).arg("-lmemlink");
        // DT_RPATH, not DT_RUNPATH: it wins over the LD_LIBRARY_PATH that
        // cargo test sets (target/debug, which may hold a stale library).
        cc.arg(format!("-Wl,--disable-new-dtags,-rpath,{}", lib.display()));
    }
    let result = run(&mut cc);
    assert!(
        result.status.success(),
        "compiling {program}.c failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    built.insert((program.to_string(), static_link), out.clone());
    out
}

/// The `memlink` CLI binary, built beside the library.
#[cfg(target_os = "linux")]
fn cli() -> PathBuf {
    let path = lib_dir().join("memlink");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// Runs a command to its end, within the deadline.
fn run(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut proc = Proc::new(child);
    let status = proc.wait();
    Output {
        status,
        stdout: proc.rest_of_stdout().into_bytes(),
        stderr: proc.stderr(),
    }
}

/// A child process whose stdout is read line by line with a deadline.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Proc {
    fn spawn(command: &mut Command) -> Proc {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        Proc::new(child)
    }

    fn new(mut child: Child) -> Proc {
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stderr, &mut bytes);
            bytes
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line of output, waiting at most the deadline.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.child.kill();
                panic!(
                    "no line from the child ({e}); stderr: {}",
                    String::from_utf8_lossy(&self.stderr())
                )
            }
        }
    }

    /// Closes its stdin (the C programs that hold something let go then).
    fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    fn wait(&mut self) -> ExitStatus {
        self.wait_for(DEADLINE)
    }

    fn wait_for(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the child did not exit within {deadline:?}");
            }
            // Polling for the exit, not synchronising with it: the deadline
            // is what matters, the step only bounds the extra latency.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn rest_of_stdout(&mut self) -> String {
        let mut text = String::new();
        while let Ok(line) = self.lines.recv_timeout(DEADLINE) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    fn stderr(&mut self) -> Vec<u8> {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn api_test(static_link: bool) {
    let output = run(&mut Command::new(compile("api_test", static_link)));
    assert_success(&output, "api_test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("checks passed"), "{stdout}");
}

#[test]
fn c_api_test_passes() {
    api_test(false);
}

#[cfg(target_os = "linux")]
#[test]
fn c_api_test_passes_linked_statically() {
    api_test(true);
}

#[test]
fn seed_programs_talk_to_each_other() {
    let name = unique("seeds");
    let text = "Hi from the C process 1";
    let mut creator =
        Proc::spawn(Command::new(compile("create_mapping", false)).args([&name, text]));
    let ready = creator.line();
    assert!(ready.starts_with(&format!("created {name}")), "{ready}");

    let opened = run(Command::new(compile("open_mapping", false)).arg(&name));
    assert_success(&opened, "open_mapping");
    assert_eq!(String::from_utf8_lossy(&opened.stdout), format!("{text}\n"));

    // The seed's "a mapping of that name already exists".
    let second = run(Command::new(compile("create_mapping", false)).arg(&name));
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already exists"),
        "{second:?}"
    );

    creator.close_stdin();
    assert_eq!(creator.line(), format!("closed {name}"));
    assert!(creator.wait().success());

    // The creator's handle was the last: the name is gone.
    let gone = run(Command::new(compile("open_mapping", false)).arg(&name));
    assert_eq!(gone.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(
        stderr.contains("cannot open the mapping") && stderr.contains("not found"),
        "{stderr}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn c_programs_talk_to_the_cli() {
    // The CLI creates and holds, C reads.
    let name = unique("cli-create");
    let mut holder = Proc::spawn(Command::new(cli()).args([
        "create",
        &name,
        "--size",
        "4K",
        "--text",
        "hello from the CLI",
    ]));
    holder.line(); // it says what it made once the region exists
    let opened = run(Command::new(compile("open_mapping", false)).arg(&name));
    assert_success(&opened, "open_mapping");
    assert_eq!(
        String::from_utf8_lossy(&opened.stdout),
        "hello from the CLI\n"
    );
    // SAFETY: kill(2) on our own child's pid, which it still is (not waited).
    assert_eq!(
        unsafe { libc::kill(holder.child.id() as i32, libc::SIGTERM) },
        0
    );
    assert!(holder.wait().success());

    // C creates and holds, the CLI reads.
    let name = unique("c-create");
    let mut creator =
        Proc::spawn(Command::new(compile("create_mapping", false)).args([&name, "hello from C"]));
    creator.line();
    let read = run(Command::new(cli()).args(["read", &name]));
    assert_success(&read, "memlink read");
    assert_eq!(String::from_utf8_lossy(&read.stdout), "hello from C\n");
    creator.close_stdin();
    assert!(creator.wait().success());
    let gone = run(Command::new(cli()).args(["read", &name]));
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
}

#[test]
fn c_publisher_and_rust_subscriber_exchange_data_and_signals() {
    let (service, region_name, mutex_name, event_name) = (
        unique("pub-service"),
        unique("pub-region"),
        unique("pub-mutex"),
        unique("pub-event"),
    );
    let region = Region::create(&region_name, 4096).expect("region");
    let mutex = memlink::Mutex::create(&mutex_name).expect("mutex");
    let event = Event::create(&event_name, EventReset::Auto, false).expect("event");
    let subscriber = Subscriber::<[u8]>::connect(&service).expect("subscriber");
    let guard = mutex.lock().expect("lock");

    let count = 10;
    let mut publisher = Proc::spawn(Command::new(compile("c_publisher", false)).args([
        &service,
        &region_name,
        &mutex_name,
        &event_name,
        &count.to_string(),
    ]));
    // The C side says it waits for the mutex we hold...
    let waiting = subscriber
        .recv_timeout(DEADLINE)
        .expect("the C side's first sample");
    assert_eq!(&*waiting, b"waiting");
    drop(waiting);
    // ...we write under the lock, and let go...
    region
        .map_mut(..)
        .expect("map")
        .write_at(0, b"from Rust\0")
        .expect("write");
    drop(guard);
    // ...it checks our text, writes its own, and publishes.
    for i in 0..count {
        let sample = subscriber.recv_timeout(DEADLINE).expect("sample from C");
        assert_eq!(&*sample, format!("sample {i}").as_bytes());
        assert_eq!(sample.sequence(), i + 1);
    }
    event.wait_timeout(DEADLINE).expect("the C side's event");
    let _guard = mutex.lock_timeout(DEADLINE).expect("lock after C");
    let reader = Region::open(&region_name, Access::ReadOnly).expect("open");
    assert_eq!(reader.map(0..7).expect("map").to_vec(), b"from C\0");
    let status = publisher.wait();
    assert!(
        status.success(),
        "c_publisher: {status}: {}",
        String::from_utf8_lossy(&publisher.stderr())
    );
}

#[test]
fn rust_publisher_and_c_subscriber() {
    let service = unique("sub-service");
    let publisher = Publisher::<[u8]>::connect(&service).expect("publisher");
    let count = 5;
    let mut subscriber = Proc::spawn(
        Command::new(compile("c_subscriber", false)).args([&service, &count.to_string()]),
    );
    assert_eq!(subscriber.line(), "ready");
    for i in 0..count {
        publisher
            .send_copy(format!("from Rust {i}").as_bytes())
            .expect("send");
    }
    for i in 0..count {
        assert_eq!(subscriber.line(), format!("{i} from Rust {i}"));
    }
    let status = subscriber.wait();
    assert!(status.success(), "c_subscriber: {status}");
}

#[cfg(target_os = "linux")]
#[test]
fn installed_with_pkg_config_a_c_program_builds_and_runs() {
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("prefix"));
    let install = run(Command::new("bash")
        .arg(repo().join("crates/memlink-ffi/install.sh"))
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(lib_dir()));
    assert_success(&install, "install.sh");
    let flags = run(Command::new("pkg-config")
        .args(["--cflags", "--libs", "memlink"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")));
    assert_success(&flags, "pkg-config");
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    assert!(flags.contains("-lmemlink"), "{flags}");
    let program = prefix.join("open_mapping");
    let compiled = run(Command::new("cc")
        .arg(repo().join("examples/c/open_mapping.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&program));
    assert_success(&compiled, "cc with pkg-config's flags");

    let name = unique("pkg-config");
    let region = Region::create(&name, 4096).expect("region");
    region
        .map_mut(..)
        .expect("map")
        .write_at(0, b"via pkg-config\0")
        .expect("write");
    let opened = run(Command::new(&program)
        .arg(&name)
        .env("LD_LIBRARY_PATH", prefix.join("lib")));
    assert_success(&opened, "open_mapping");
    assert_eq!(String::from_utf8_lossy(&opened.stdout), "via pkg-config\n");
    std::fs::remove_dir_all(&prefix).expect("remove the prefix");
}

#[test]
fn a_c_holder_killed_holding_the_mutex_leaves_it_abandoned() {
    let name = unique("abandoned");
    let mutex = memlink::Mutex::create(&name).expect("mutex");
    let mut holder = Proc::spawn(Command::new(compile("hold_mutex", false)).arg(&name));
    assert_eq!(holder.line(), "locked");
    assert!(
        mutex.try_lock().expect("try_lock").is_none(),
        "the C process holds it"
    );
    holder.child.kill().expect("kill the holder");
    holder.wait();
    let guard = mutex
        .lock_timeout(DEADLINE)
        .expect("lock after the holder died");
    assert!(guard.was_abandoned());
}
