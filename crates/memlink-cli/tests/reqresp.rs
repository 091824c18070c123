//! `memlink call` and `memlink serve` between real processes, and
//! request/response services in `ls` / `info`.

mod support;

use std::time::Instant;

use support::{run, run_with_input, unique, Held, DEADLINE};

/// Runs `memlink info NAME` until its output satisfies `done` (the state
/// another process is getting into), failing after the deadline.
fn info_until(name: &str, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let info = run(&["info", name]);
        if info.code == Some(0) && done(&info.stdout) {
            return info.stdout;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "info never got there:\n{}{}",
            info.stdout,
            info.stderr
        );
    }
}

#[test]
fn call_is_answered_by_serve_and_ls_and_info_show_both() {
    let name = unique("rpc");
    // A caller first: it makes the service and waits for a server.
    let mut caller = Held::start_quiet(&["call", &name, "--text", "early", "--timeout", "10s"]);
    let text = info_until(&name, |t| {
        t.contains("server     none") && !t.contains("clients    none")
    });
    let clients = text.lines().find(|l| l.starts_with("clients")).unwrap();
    assert!(clients.contains(&caller.pid().to_string()), "{text}");
    if !cfg!(windows) {
        assert!(clients.contains("call"), "{text}");
    }
    let mut server = Held::start_quiet(&["serve", &name, "--echo", "--count", "4"]);
    assert_eq!(caller.wait_exit(), Some(0));
    assert_eq!(caller.seen, ["early"]);
    let ls = run(&["ls"]);
    let line = ls
        .ok()
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} not in:\n{}", ls.stdout))
        .to_owned();
    if !cfg!(windows) {
        assert!(line.contains(" rpc "), "{line}");
    }
    assert!(line.contains("1 server, 0 clients, 0 in flight"), "{line}");
    let text = run(&["info", &name]).ok().to_owned();
    assert!(text.contains("slices of u8"), "{text}");
    let server_row = text.lines().find(|l| l.starts_with("server")).unwrap();
    assert!(server_row.contains(&server.pid().to_string()), "{text}");
    assert!(server_row.contains("received 1"), "{text}");
    if !cfg!(windows) {
        assert!(server_row.contains("serve"), "{text}");
    }
    // A text, standard input, JSON, a hex dump.
    assert_eq!(run(&["call", &name, "--text", "hello"]).ok(), "hello\n");
    assert_eq!(
        run_with_input(&["call", &name, "-", "--json"], b"from stdin").ok(),
        "{\"index\":0,\"bytes\":10,\"text\":\"from stdin\"}\n"
    );
    let hex = run(&["call", &name, "--text", "AB", "--hex"]);
    assert!(
        hex.ok().starts_with("response 0 (2 bytes)"),
        "{}",
        hex.stdout
    );
    assert!(hex.stdout.contains("4142"), "{}", hex.stdout);
    assert_eq!(server.wait_exit(), Some(0));
    assert_eq!(server.seen, ["early", "hello", "from stdin", "AB"]);
}

#[test]
fn bad_call_and_serve_input_says_what_is_wrong() {
    let name = unique("rpc-bad");
    let err = run(&["call", &name, "--text", "x", "--timeout", "50ms"]);
    assert!(
        err.fails(124).contains("no server came within 50ms"),
        "{}",
        err.stderr
    );
    let mut server = Held::start_quiet(&["serve", &name, "--echo", "--quiet"]);
    info_until(&name, |t| !t.contains("server     none"));
    let err = run(&["serve", &name, "--echo"]);
    let stderr = err.fails(1);
    assert!(stderr.contains("has a server already"), "{stderr}");
    assert!(stderr.contains(&name), "{stderr}");
    let too_big = vec![b'x'; 5000];
    let err = run_with_input(&["call", &name, "-"], &too_big);
    assert!(err.fails(1).contains("larger than"), "{}", err.stderr);
    let err = run(&["serve", &name]);
    assert!(err.fails(2).contains("--echo"), "{}", err.stderr);
    // A killed server is no server: the kernel freed its place.
    server.kill();
    let err = run(&["call", &name, "--text", "x", "--timeout", "300ms"]);
    assert!(err.fails(124).contains("no server came"), "{}", err.stderr);
}
