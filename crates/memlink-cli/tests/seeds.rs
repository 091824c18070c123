//! The seeds' own programs against memlink, under Windows (Wine in CI):
//! `seedmap.exe` (ci/windows/seedmap.c, built by MinGW) does what the
//! seeds do, as a UNICODE build does it (wide strings), and each side reads
//! what the other wrote. ci/windows-test.sh builds it and names it in
//! MEMLINK_SEEDMAP.

#![cfg(windows)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;

use support::{run, unique, Held, DEADLINE};

fn seedmap() -> PathBuf {
    std::env::var_os("MEMLINK_SEEDMAP")
        .map(PathBuf::from)
        .expect(
            "MEMLINK_SEEDMAP names the seeds' programs (ci/windows/seedmap.c); \
         run these tests with ci/windows-test.sh, which builds it",
        )
}

/// A program that holds a mapping until dropped (its stdin closes), once
/// it has printed `ready`.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Holder {
    fn start(mut command: Command, ready: &str) -> Holder {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(DEADLINE) {
                Ok(line) if line.contains(ready) => break,
                Ok(line) => seen.push(line),
                Err(e) => panic!("no {ready:?} ({e:?}); it printed:\n{}", seen.join("\n")),
            }
        }
        let stdin = child.stdin.take();
        Holder { child, stdin }
    }

    /// The seed's server (its process 1): a wide `text` at `offset`.
    fn seed_server(name: &str, size: u64, offset: u64, text: &str) -> Holder {
        let mut command = Command::new(seedmap());
        command.args(["server", name, &size.to_string(), &offset.to_string(), text]);
        Holder::start(command, "ready")
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.child.wait();
    }
}

/// The seed's client (its process 2): the wide string at `offset`.
fn seed_client(name: &str, offset: u64) -> String {
    let out = Command::new(seedmap())
        .args(["client", name, &offset.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "seed client: {stdout}");
    stdout
}

#[test]
fn the_first_seeds_process_1_is_read_by_memlink() {
    let name = unique("seed1-p1");
    let _process_1 = Holder::seed_server(&name, 4096, 0, "Hello from process 1");
    assert_eq!(run(&["read", &name]).ok(), "Hello from process 1\n");
}

#[test]
fn memlink_create_is_read_by_the_first_seeds_process_2() {
    let name = unique("seed1-p2");
    let _held = Held::start(
        &[
            "create",
            &name,
            "--size",
            "4K",
            "--text",
            "Hello from memlink",
        ],
        "holding it",
    );
    assert_eq!(seed_client(&name, 0), "Hello from memlink\n");
}

#[test]
fn the_second_seeds_server_is_read_and_memlink_write_reaches_its_client() {
    let name = format!("Local\\{}", unique("seed2"));
    let _server = Holder::seed_server(&name, 65536, 0, "Message from the first process.");
    assert_eq!(
        run(&["read", &name]).ok(),
        "Message from the first process.\n"
    );
    run(&["write", &name, "--text", "Message from memlink, 你好"]).ok();
    assert_eq!(seed_client(&name, 0), "Message from memlink, 你好\n");
    // Its client reads at the server's offset too, past the first 64 KiB.
    let far = format!("Local\\{}", unique("seed2-far"));
    let _far = Holder::seed_server(&far, 3 << 16, 1 << 16, "at 64 KiB");
    assert_eq!(run(&["read", &far, "--offset", "64K"]).ok(), "at 64 KiB\n");
    run(&[
        "write",
        &far,
        "--offset",
        "0x10000",
        "--text",
        "memlink at 64 KiB",
    ])
    .ok();
    assert_eq!(seed_client(&far, 1 << 16), "memlink at 64 KiB\n");
}

/// An example of the library, built beside this test (cargo test builds
/// the examples of the packages it tests).
fn example(name: &str) -> Command {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
        .join(format!("{name}.exe"));
    assert!(
        path.exists(),
        "{} is missing: test with -p memlink -p memlink-cli",
        path.display()
    );
    Command::new(path)
}

/// The examples and the seed's programs share one name, so the two tests
/// that use it take turns.
static SAMPLE_MAP: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_example_server_is_read_by_the_seeds_client() {
    let _turn = SAMPLE_MAP.lock().unwrap_or_else(|e| e.into_inner());
    let _server = Holder::start(example("file_mapping_server"), "Press ENTER");
    assert_eq!(
        seed_client("Local\\SampleMap", 0),
        "Message from the first process.\n"
    );
}

#[test]
fn the_seeds_server_is_read_by_the_example_client() {
    let _turn = SAMPLE_MAP.lock().unwrap_or_else(|e| e.into_inner());
    let _server = Holder::seed_server("Local\\SampleMap", 65536, 0, "Message from the seed.");
    let out = example("file_mapping_client")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.ends_with("Read from the file mapping:\n\"Message from the seed.\"\n"),
        "{stdout}"
    );
}
