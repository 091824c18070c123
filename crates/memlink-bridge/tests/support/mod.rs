//! The two-host harness shared by the bridge's tests: each "host" is a
//! mount namespace with its own tmpfs on `/dev/shm`, holding a bridge and
//! local processes; processes' output is read line by line with deadlines.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const BRIDGE: &str = env!("CARGO_BIN_EXE_memlink-bridge");
pub const STARTUP: Duration = Duration::from_secs(30);
pub const DELIVERY: Duration = Duration::from_secs(60);

pub fn listen(port: u16) -> String {
    format!("tcp/127.0.0.1:{port}")
}

pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root (mount namespaces), and CI runs as root");
    }
    eprintln!("{test}: skipped: needs root to make a mount namespace per simulated host");
    false
}

pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "mlbr-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

/// Kills the child when this test's thread goes, however it goes.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; it only sets a flag on the child.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A process with its output read line by line on threads.
pub struct Proc {
    pub label: String,
    pub child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    /// Every stderr line seen so far (for failure messages).
    pub err_seen: Vec<String>,
}

fn lines(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Proc {
    pub fn spawn(label: &str, command: &mut Command) -> Proc {
        let mut child = die_with_parent(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        let out = lines(child.stdout.take().unwrap());
        let err = lines(child.stderr.take().unwrap());
        Proc {
            label: label.to_owned(),
            stdin: child.stdin.take(),
            child,
            out,
            err,
            err_seen: Vec::new(),
        }
    }

    /// The next stdout line with "@ " (the helper's own output, after it),
    /// before `deadline`.
    pub fn next(&mut self, deadline: Instant) -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) => {
                    // libtest may have started the line ("test helper_process ... ").
                    if let Some(at) = line.find("@ ") {
                        return Some(line[at + 2..].to_owned());
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.drain_err();
                    panic!(
                        "{} ended early ({:?}); stderr:\n{}",
                        self.label,
                        self.child.try_wait(),
                        self.err_seen.join("\n")
                    );
                }
            }
        }
    }

    pub fn expect(&mut self, what: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while let Some(line) = self.next(deadline) {
            if line == what {
                return;
            }
        }
        self.drain_err();
        panic!(
            "{}: no {what:?} within {within:?}; stderr:\n{}",
            self.label,
            self.err_seen.join("\n")
        );
    }

    pub fn drain_err(&mut self) {
        while let Ok(line) = self.err.try_recv() {
            self.err_seen.push(line);
        }
    }

    /// Waits for a stderr line containing `text` (the bridge's log).
    pub fn expect_log(&mut self, text: &str, within: Duration) -> String {
        if let Some(line) = self.err_seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) => {
                    self.err_seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no log line with {text:?} within {within:?}; stderr:\n{}",
                    self.label,
                    self.err_seen.join("\n")
                ),
            }
        }
    }

    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("the helper reads its commands");
        stdin.flush().unwrap();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} did not die after SIGKILL", self.label);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("MEMLINK_BRIDGE_TEST_LOGS").is_some() {
            self.drain_err();
            eprintln!(
                "--- stderr of {}:\n{}",
                self.label,
                self.err_seen.join("\n")
            );
        }
    }
}

/// A simulated host: a mount namespace with a private tmpfs on `/dev/shm`,
/// kept alive by a holder process; others join it with `nsenter`.
pub struct Host {
    pub name: &'static str,
    holder: Proc,
}

impl Host {
    pub fn new(name: &'static str) -> Host {
        let mut holder = Proc::spawn(
            &format!("host {name}"),
            Command::new("unshare").args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                "mount -t tmpfs -o size=256m,mode=1777 memlink-test /dev/shm && echo '@ ready' && exec cat",
            ]),
        );
        holder.expect("ready", STARTUP);
        Host { name, holder }
    }

    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.child.id()))
            .arg("--")
            .arg(program);
        c
    }

    /// Starts this test binary on the host as a local process: its
    /// `helper_process` test, told what to do by `role` in the environment
    /// variable `role_var`; waits for its "ready".
    pub fn helper(&self, role_var: &str, role: &str, label: &str) -> Proc {
        let exe = std::env::current_exe().unwrap();
        let mut c = self.command(exe.to_str().unwrap());
        c.args([
            "--exact",
            "helper_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(role_var, role);
        let mut p = Proc::spawn(label, &mut c);
        p.expect("ready", STARTUP);
        p
    }

    pub fn bridge(&self, args: &[&str]) -> Proc {
        let mut c = self.command(BRIDGE);
        c.args(args).args(["--scan-interval", "100"]);
        Proc::spawn(&format!("bridge on {}", self.name), &mut c)
    }
}
