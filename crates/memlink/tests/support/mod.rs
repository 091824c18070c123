//! Runs roles of a test in child processes: the test binary re-runs itself
//! with `--ignored --exact child_entry` and the role in the environment.
//! Parent and child talk over the child's stdin/stdout, line by line, and
//! every wait has a deadline so a bug fails the test instead of hanging it.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// How long any single wait in a test may take before the test fails
/// (longer under Windows, where the tests run under Wine: a loaded machine
/// slows its process start-up and wineserver round trips many times over).
pub const DEADLINE: Duration = Duration::from_secs(if cfg!(windows) { 60 } else { 15 });

pub const ROLE_VAR: &str = "MEMLINK_TEST_ROLE";

/// Starts a child's line to its parent; libtest may have written
/// `test child_entry ... ` on the same line before it.
const MARKER: &str = "<<memlink>>";

/// A unique name for one test's objects, so tests can run in parallel.
pub fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "memlink-test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The role and its arguments, when this process is a child.
pub fn role() -> Option<Vec<String>> {
    let spec = std::env::var(ROLE_VAR).ok()?;
    Some(spec.split('\u{1f}').map(str::to_owned).collect())
}

/// In a child: tells the parent something.
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARKER}{}", line.as_ref()).unwrap();
    out.flush().unwrap();
}

/// In a child: waits for the parent's next line (EOF gives `None`).
pub fn hear() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_owned()),
    }
}

/// Waits until every child says "ready", then tells them all "go", so
/// that they start their work as close together as processes can.
pub fn go_together(children: &mut [Child]) {
    for child in children.iter() {
        child.expect("ready");
    }
    for child in children.iter_mut() {
        child.tell("go");
    }
}

pub struct Child {
    process: std::process::Child,
    lines: Receiver<String>,
    stdin: Option<std::process::ChildStdin>,
    role: String,
}

impl Child {
    /// Starts a child running `role` with `args`.
    pub fn spawn(role: &str, args: &[&str]) -> Child {
        Child::spawn_with(Command::new(std::env::current_exe().unwrap()), role, args)
    }

    /// Starts a child running `role` as the user `nobody` (uid 65534),
    /// through `setpriv`; `None` where that cannot be done (not root, or no
    /// `setpriv`), and the caller skips what needs it.
    #[cfg(unix)]
    pub fn spawn_as_nobody(role: &str, args: &[&str]) -> Option<Child> {
        if !rustix::process::getuid().is_root() {
            eprintln!("not root: cannot run a child as another user; skipped");
            return None;
        }
        let setpriv_works = Command::new("setpriv")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !setpriv_works {
            eprintln!("setpriv not available; skipped");
            return None;
        }
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(std::env::current_exe().unwrap());
        Some(Child::spawn_with(command, role, args))
    }

    fn spawn_with(mut command: Command, role: &str, args: &[&str]) -> Child {
        let mut spec = vec![role];
        spec.extend_from_slice(args);
        command
            .args([
                "--ignored",
                "--exact",
                "child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE_VAR, spec.join("\u{1f}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Wine's CreateProcess now and then fails with ERROR_INTERNAL_ERROR
        // (1359) when many processes start at once; nothing was started, so
        // trying again is safe. Any other failure, or a third one, is the
        // test's.
        let mut attempts = 0;
        let mut process = loop {
            match command.spawn() {
                Ok(process) => break process,
                Err(e) if cfg!(windows) && e.raw_os_error() == Some(1359) && attempts < 2 => {
                    attempts += 1;
                }
                Err(e) => panic!("spawn the test binary as a child: {e}"),
            }
        };
        let stdout = process.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Only our own lines: libtest prints its own chatter too.
                if let Some((_, ours)) = line.split_once(MARKER) {
                    if tx.send(ours.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let stdin = process.stdin.take();
        Child {
            process,
            lines,
            stdin,
            role: role.to_owned(),
        }
    }

    /// The child's next line; fails the test if none comes in time.
    pub fn next_line(&self) -> String {
        match self.lines.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("child {} said nothing in time", self.role),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("child {} ended without saying anything", self.role)
            }
        }
    }

    /// The child's next line if it comes within `timeout` (for reading
    /// several children in turn); fails the test if the child ended.
    pub fn line_within(&self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("child {} ended", self.role),
        }
    }

    /// Waits for the child to say exactly `expected`.
    pub fn expect(&self, expected: &str) {
        let line = self.next_line();
        assert_eq!(line, expected, "child {} said something else", self.role);
    }

    /// Sends the child a line.
    pub fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the child's stdin: children take it as "finish now".
    pub fn release(&mut self) {
        self.stdin = None;
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Kills the child hard (SIGKILL / TerminateProcess) and reaps it.
    pub fn kill(mut self) {
        self.process.kill().unwrap();
        self.wait();
    }

    /// Kills the child hard and reaps it, keeping what it said before it
    /// died for [`Child::remaining_lines`].
    pub fn kill_in_place(&mut self) {
        self.process.kill().unwrap();
        self.wait();
    }

    /// Every line not read yet, up to the end of the child's output (the
    /// child must be ending).
    pub fn remaining_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.lines.recv_timeout(DEADLINE) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("child {}'s output did not end in time", self.role)
                }
            }
        }
    }

    /// Waits for the child to end, within the deadline.
    pub fn wait(&mut self) -> ExitStatus {
        self.stdin = None;
        let pid = self.process.id();
        let (tx, rx) = mpsc::channel();
        // try_wait in a loop would need a sleep; a watchdog thread doesn't.
        let watchdog = std::thread::spawn(move || {
            let timed_out = rx.recv_timeout(DEADLINE) == Err(RecvTimeoutError::Timeout);
            if timed_out {
                kill_pid(pid);
            }
            timed_out
        });
        let status = self.process.wait().unwrap();
        let _ = tx.send(());
        assert!(
            !watchdog.join().unwrap(),
            "child {} did not end in time",
            self.role
        );
        status
    }

    /// Waits for the child and checks that it succeeded.
    pub fn finish(mut self) {
        let status = self.wait();
        assert!(status.success(), "child {} failed: {status}", self.role);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn kill_pid(pid: u32) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    #[cfg(windows)]
    {
        let _ = Command::new("taskkill")
            .args(["/F", "/PID", &pid.to_string()])
            .status();
    }
}
