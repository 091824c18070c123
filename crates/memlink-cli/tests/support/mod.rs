//! Runs the real `memlink` binary. Every wait has a deadline, so a bug
//! fails a test instead of hanging it; no test sleeps to synchronise.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// How long any single wait may take (Wine starts processes slowly).
pub const DEADLINE: Duration = Duration::from_secs(if cfg!(windows) { 60 } else { 15 });

pub const BIN: &str = env!("CARGO_BIN_EXE_memlink");

/// A name for one test's objects: unique to the test and the run.
pub fn unique(tag: &str) -> String {
    format!("memlink-cli-test-{tag}-{}", std::process::id())
}

/// A `memlink` command with the environment of a script: no colour.
pub fn memlink(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE");
    command
}

/// What a finished `memlink` run gave.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub bytes: Vec<u8>,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            bytes: out.stdout,
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts the exit code and returns stderr without its newline.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.stderr.trim_end()
    }
}

/// Runs `memlink args...` to the end (these commands never wait).
pub fn run(args: &[&str]) -> Run {
    Run::from(memlink(args).stdin(Stdio::null()).output().unwrap())
}

/// Runs `memlink args...` with the reading end of its stdout closed before
/// it writes anything, as `memlink ... | head -1` leaves it once `head` has
/// seen enough: every write then fails with EPIPE.
pub fn run_with_output_closed(args: &[&str]) -> std::process::Output {
    let mut child = memlink(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// Runs `memlink args...` with `input` on its standard input.
pub fn run_with_input(args: &[&str], input: &[u8]) -> Run {
    use std::io::Write;
    let mut child = memlink(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    match child.stdin.take().unwrap().write_all(input) {
        // memlink may stop reading early (input that cannot fit).
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        result => result.unwrap(),
    }
    Run::from(child.wait_with_output().unwrap())
}

/// A `memlink` process that keeps running (`create` holding its region),
/// with its stdout read line by line on a thread. Killed when dropped.
pub struct Held {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Held {
    /// Starts `memlink args...` and waits for a line containing `ready`.
    pub fn start(args: &[&str], ready: &str) -> Held {
        let mut held = Held::start_quiet(args);
        held.wait_for(ready);
        held
    }

    /// Starts `memlink args...` without waiting for anything.
    pub fn start_quiet(args: &[&str]) -> Held {
        let mut child = memlink(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Held {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `text`; returns it.
    #[track_caller]
    pub fn wait_for(&mut self, text: &str) -> String {
        loop {
            match self.lines.recv_timeout(DEADLINE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {text:?} from memlink ({e:?}); it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits (with the deadline) for the process to close its stdout and
    /// end; returns its exit code.
    #[track_caller]
    pub fn wait_exit(&mut self) -> Option<i32> {
        loop {
            match self.lines.recv_timeout(DEADLINE) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!(
                    "memlink did not end ({e:?}); it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
        self.child.wait().unwrap().code()
    }

    /// Kills the process (SIGKILL on Unix, TerminateProcess on Windows:
    /// no chance to clean up) and waits for it to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Held {
    /// Ends the process the way a user would (SIGTERM, so a held region is
    /// closed and leaves no stale name behind); kills it if that fails.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        #[cfg(unix)]
        {
            // SAFETY: kill(2) on our own child's pid with a valid signal.
            let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) } == 0;
            if sent && !std::thread::panicking() {
                self.wait_exit();
                return;
            }
        }
        self.kill();
    }
}
