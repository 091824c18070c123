//! Request/response across two hosts on one machine (mount namespaces with
//! their own `/dev/shm`, bridges joined by Zenoh over `tcp/127.0.0.1`):
//! the server on host A, `memlink call` on host B.
//!
//! Needs root (mount namespaces) and the `memlink` CLI built next to the
//! bridge (`cargo build -p memlink-cli`); skipped without root, except under
//! CI (`CI` set), where it fails.

#![cfg(target_os = "linux")]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use support::*;

const ROLE: &str = "MEMLINK_BRIDGE_RPC_TEST_ROLE";

/// The `memlink` CLI, built in the same target directory.
fn memlink() -> String {
    let exe = std::env::current_exe().unwrap();
    let dir: PathBuf = exe.parent().unwrap().parent().unwrap().into();
    let cli = dir.join("memlink");
    assert!(
        cli.exists(),
        "{} is missing: build it first (cargo build -p memlink-cli)",
        cli.display()
    );
    cli.to_str().unwrap().to_owned()
}

/// Runs `command` to its end, within `limit` (a failure past it).
fn run(command: &mut Command, limit: Duration) -> (Output, Duration) {
    let child = die_with_parent(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let pid = child.id();
    let started = Instant::now();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => (output.unwrap(), started.elapsed()),
        Err(_) => {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{command:?} did not end within {limit:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Two hosts, bridges on both carrying `name`, B's connected to A's.
struct Pair {
    a: Host,
    b: Host,
    bridge_a: Proc,
    bridge_b: Proc,
    name: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let (a, b) = (Host::new("A"), Host::new("B"));
        let name = unique(tag);
        let endpoint = listen(free_port());
        let bridge_a = a.bridge(&["--service", &name, "--listen", &endpoint]);
        let mut bridge_b = b.bridge(&["--service", &name, "--connect", &endpoint]);
        bridge_b.expect_log("remote bridge", STARTUP);
        Pair {
            a,
            b,
            bridge_a,
            bridge_b,
            name,
        }
    }

    /// Waits until A's bridge carries its server to the network.
    fn exported(&mut self) {
        let what = format!("rpc service {}: carrying", self.name);
        self.bridge_a.expect_log(&what, STARTUP);
    }

    /// `memlink call NAME --text TEXT` on host B.
    fn call(&self, text: &str, timeout: &str, limit: Duration) -> (Output, Duration) {
        let mut c = self.b.command(&memlink());
        c.args(["call", &self.name, "--text", text, "--timeout", timeout]);
        run(&mut c, limit)
    }

    /// A server on host A: `memlink serve` with `args`.
    fn serve(&self, args: &[&str]) -> Proc {
        let mut c = self.a.command(&memlink());
        c.args(["serve", &self.name]).args(args);
        Proc::spawn("server on A", &mut c)
    }

    /// This test binary as a server on host A, in `role`.
    fn helper(&self, role: &str) -> Proc {
        let label = format!("{role} server on A");
        self.a
            .helper(ROLE, &format!("{role} {}", self.name), &label)
    }
}

/// What a local server does, when this binary is started as one.
#[test]
fn helper_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return; // the ordinary test run: nothing to do
    };
    use memlink::reqresp::{RpcOptions, Server};
    let words: Vec<&str> = role.split(' ').collect();
    if words[0] == "bench-a" || words[0] == "bench-b" {
        return bench_role(&words);
    }
    let server = Server::<[u8], [u8]>::connect_any(words[1], &RpcOptions::new()).unwrap();
    println!("@ ready");
    loop {
        let mut request = server.recv().unwrap();
        match words[0] {
            // Answers with a stream of 200 responses.
            "stream" => {
                for i in 0..200 {
                    request.send_copy(format!("part {i}").as_bytes()).unwrap();
                }
                request.end();
            }
            // Takes the request and never answers.
            "hang" => {
                println!("@ took");
                loop {
                    std::thread::park();
                }
            }
            other => panic!("unknown role {other}"),
        }
    }
}

#[test]
fn a_call_on_b_is_answered_by_the_server_on_a_many_times_over() {
    if !root_or_skip("a_call_on_b_is_answered_by_the_server_on_a_many_times_over") {
        return;
    }
    let mut pair = Pair::new("echo");
    let _server = pair.serve(&["--echo", "--quiet"]);
    pair.exported();
    // The first call makes the service on B; B's bridge then serves it.
    let (out, _) = pair.call("hello", "30s", STARTUP * 2);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");
    pair.bridge_b.expect_log(
        &format!("rpc service {}: serving it here", pair.name),
        STARTUP,
    );
    for i in 0..30 {
        let message = format!("call {i} {}", "x".repeat(i * 7));
        let (out, _) = pair.call(&message, "10s", DELIVERY);
        assert!(out.status.success(), "call {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{message}\n"), "call {i}");
    }
    // B shows the bridge's server as a bridge, the service as bridged.
    let mut info = pair.b.command(&memlink());
    info.args(["info", &pair.name]);
    let (out, _) = run(&mut info, DELIVERY);
    assert!(
        text(&out.stdout).contains("(bridge)"),
        "{}",
        text(&out.stdout)
    );
    let mut ls = pair.b.command(&memlink());
    ls.arg("ls");
    let (out, _) = run(&mut ls, DELIVERY);
    let line = text(&out.stdout)
        .lines()
        .find(|l| l.contains(&pair.name))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains("bridged"), "{}", text(&out.stdout));
}

#[test]
fn a_streamed_answer_arrives_whole_and_in_order() {
    if !root_or_skip("a_streamed_answer_arrives_whole_and_in_order") {
        return;
    }
    let mut pair = Pair::new("stream");
    let _server = pair.helper("stream");
    pair.exported();
    let expected: String = (0..200).map(|i| format!("part {i}\n")).collect();
    for round in 0..3 {
        let (out, _) = pair.call("go", "30s", STARTUP * 2);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), expected, "round {round}");
    }
}

#[test]
fn the_server_on_a_killed_mid_request_ends_the_call_on_b_with_an_error() {
    if !root_or_skip("the_server_on_a_killed_mid_request_ends_the_call_on_b_with_an_error") {
        return;
    }
    let mut pair = Pair::new("kill");
    let mut server = pair.helper("hang");
    pair.exported();
    let mut c = pair.b.command(&memlink());
    c.args(["call", &pair.name, "--text", "wait", "--timeout", "60s"]);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(run(&mut c, Duration::from_secs(90)));
    });
    server.expect("took", STARTUP * 2);
    let killed = Instant::now();
    server.kill();
    let (out, _) = rx
        .recv_timeout(Duration::from_secs(90))
        .expect("the call ends");
    let after = killed.elapsed();
    let code = out.status.code();
    assert!(
        code != Some(0) && code != Some(124),
        "the call should fail, not succeed or time out: {code:?}; {}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("gone"), "{}", text(&out.stderr));
    assert!(
        after < Duration::from_secs(10),
        "the call ended {after:?} after the kill"
    );
    pair.bridge_a.expect_log("failed", STARTUP);
    pair.bridge_b
        .expect_log("failed on the remote side", STARTUP);
}

#[test]
fn a_request_larger_than_the_remote_service_takes_is_refused() {
    if !root_or_skip("a_request_larger_than_the_remote_service_takes_is_refused") {
        return;
    }
    let mut pair = Pair::new("big");
    // 64 bytes at most on A; B's service (made by the call) takes 4 KiB.
    let _server = pair.serve(&["--echo", "--quiet", "--max-size", "64"]);
    pair.exported();
    let (out, _) = pair.call("small", "30s", STARTUP * 2);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let big = "y".repeat(100);
    let (out, _) = pair.call(&big, "10s", DELIVERY);
    let code = out.status.code();
    assert!(code != Some(0) && code != Some(124), "{code:?}");
    let refused = pair
        .bridge_a
        .expect_log("refused a 100-byte request from the network", DELIVERY);
    assert!(refused.contains(&pair.name), "{refused}");
    assert!(refused.contains("largest, 64"), "{refused}");
    pair.bridge_b
        .expect_log("failed on the remote side", DELIVERY);
    // The bridges carry on.
    let (out, _) = pair.call("after", "10s", DELIVERY);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "after\n");
}

fn zenoh_session(listen: Option<&str>, connect: Option<&str>) -> zenoh::Session {
    use zenoh::Wait;
    let mut c = zenoh::Config::default();
    c.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    if let Some(l) = listen {
        c.insert_json5("listen/endpoints", &format!("[{l:?}]"))
            .unwrap();
    }
    if let Some(e) = connect {
        c.insert_json5("connect/endpoints", &format!("[{e:?}]"))
            .unwrap();
    }
    zenoh::open(c).wait().unwrap()
}

/// The round-trip measurement's two processes: on A, a memlink echo
/// server and a plain Zenoh echo queryable; on B, a memlink client (through
/// the bridges) and a plain Zenoh querier, timed in alternating batches.
fn bench_role(words: &[&str]) {
    use memlink::reqresp::{Client, RpcOptions, Server};
    use zenoh::query::ConsolidationMode;
    use zenoh::Wait;
    let (name, endpoint) = (words[1], words[2]);
    let key = format!("bench/{name}");
    if words[0] == "bench-a" {
        let session = zenoh_session(Some(endpoint), None);
        let _queryable = session
            .declare_queryable(&key)
            .callback(|q| {
                let payload = q
                    .payload()
                    .map(|p| p.to_bytes().to_vec())
                    .unwrap_or_default();
                q.reply(q.key_expr().clone(), payload).wait().unwrap();
            })
            .wait()
            .unwrap();
        let server = Server::<[u8], [u8]>::connect_any(name, &RpcOptions::new()).unwrap();
        println!("@ ready");
        loop {
            let request = server.recv().unwrap();
            let bytes = request.to_vec();
            request.respond(&bytes).unwrap();
        }
    }
    let session = zenoh_session(None, Some(endpoint));
    let querier = session
        .declare_querier(&key)
        .consolidation(ConsolidationMode::None)
        .wait()
        .unwrap();
    let client = Client::connect_any(name, &RpcOptions::new()).unwrap();
    let deadline = Instant::now() + STARTUP;
    while !client.has_server().unwrap() || !querier.matching_status().wait().unwrap().matching() {
        assert!(Instant::now() < deadline, "no route within {STARTUP:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("@ ready");
    let request = [7u8; 64];
    let bridged = || {
        let mut pending = client.send_copy_timeout(&request, DELIVERY).unwrap();
        let r = pending.recv_timeout(DELIVERY).unwrap().unwrap();
        assert_eq!(r.len(), 64);
        drop(r);
        assert!(pending.recv_timeout(DELIVERY).unwrap().is_none());
    };
    let plain = || {
        let replies = querier.get().payload(request.to_vec()).wait().unwrap();
        let mut n = 0;
        while let Ok(reply) = replies.recv() {
            assert_eq!(reply.result().unwrap().payload().len(), 64);
            n += 1;
        }
        assert_eq!(n, 1);
    };
    let batch = |f: &dyn Fn(), n: u32| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed() / n
    };
    batch(&bridged, 200);
    batch(&plain, 200);
    let (mut b, mut p) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        b.push(batch(&bridged, 300));
        p.push(batch(&plain, 300));
    }
    b.sort();
    p.sort();
    println!(
        "@ bridged {} plain {} (us per call, medians of 15 batches of 300; bridged range {}..{}, plain {}..{})",
        b[7].as_secs_f64() * 1e6,
        p[7].as_secs_f64() * 1e6,
        b[0].as_secs_f64() * 1e6,
        b[14].as_secs_f64() * 1e6,
        p[0].as_secs_f64() * 1e6,
        p[14].as_secs_f64() * 1e6
    );
}

/// The README's figure: `cargo test --release -p memlink-bridge --test
/// two_hosts_rpc -- --ignored --nocapture round_trip`.
#[test]
#[ignore = "a measurement, not a test"]
fn round_trip_figure() {
    if !root_or_skip("round_trip_figure") {
        return;
    }
    let pair = Pair::new("rtt");
    let endpoint = listen(free_port());
    let exe = std::env::current_exe().unwrap();
    let spawn = |host: &Host, role: &str, label: &str| {
        let mut c = host.command(exe.to_str().unwrap());
        c.args([
            "--exact",
            "helper_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, format!("{role} {} {endpoint}", pair.name));
        let mut p = Proc::spawn(label, &mut c);
        p.expect("ready", STARTUP * 2);
        p
    };
    let _a = spawn(&pair.a, "bench-a", "bench server on A");
    let mut b = spawn(&pair.b, "bench-b", "bench client on B");
    let line = b
        .next(Instant::now() + Duration::from_secs(300))
        .expect("a figure");
    eprintln!("round trip of 64 B, A->B->A: {line}");
}
