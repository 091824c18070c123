//! `memlink pub` and `memlink sub` between real processes, as a script uses
//! them (these also run under Wine), and services in `ls` / `info`.

mod support;

use std::process::Stdio;

use support::{memlink, run, run_with_input, unique, Held};

/// Starts `memlink sub args...`; its output is read when it ends.
fn subscriber(args: &[&str]) -> Held {
    let mut all = vec!["sub"];
    all.extend_from_slice(args);
    Held::start_quiet(&all)
}

#[test]
fn pub_reaches_a_subscriber_that_prints_text_json_and_hex() {
    let name = unique("text");
    let mut sub = subscriber(&[&name, "--count", "3"]);
    run(&[
        "pub",
        &name,
        "--text",
        "hello",
        "-n",
        "2",
        "--wait-subscribers",
        "1",
    ])
    .ok();
    run_with_input(&["pub", &name, "-"], b"from stdin\r\nnot this\n").ok();
    assert_eq!(sub.wait_exit(), Some(0));
    assert_eq!(sub.seen, ["hello", "hello", "from stdin"]);

    let mut sub = subscriber(&[&name, "--json", "--count", "2"]);
    run(&["pub", &name, "--text", "x y", "--wait-subscribers", "1"]).ok();
    run(&["pub", &name, "--file", env!("CARGO_MANIFEST_DIR")]).fails(1);
    assert_eq!(
        sub.child.try_wait().unwrap(),
        None,
        "an error sends nothing"
    );
    run_with_input(&["pub", &name, "-"], b"\xff\x00\n").ok();
    assert_eq!(sub.wait_exit(), Some(0));
    let first: serde_json::Value = serde_json::from_str(&sub.seen[0]).unwrap();
    assert_eq!(first["text"], "x y");
    assert_eq!(first["bytes"], 3);
    assert_eq!(first["missed"], 0);
    let second: serde_json::Value = serde_json::from_str(&sub.seen[1]).unwrap();
    assert_eq!(
        second["hex"], "ff00",
        "bytes that are not UTF-8 come as hex"
    );
    assert_eq!(
        second["sequence"], 1,
        "a later publisher in the same place goes on with its numbering"
    );

    let mut sub = subscriber(&[&name, "--hex", "--count", "1"]);
    run(&["pub", &name, "--text", "AB", "--wait-subscribers", "1"]).ok();
    assert_eq!(sub.wait_exit(), Some(0));
    assert!(sub.seen[0].ends_with("(2 bytes)"), "{:?}", sub.seen);
    assert_eq!(
        sub.seen[1],
        "00000000: 4142                                     AB"
    );
}

#[test]
fn services_show_in_ls_and_info_with_their_participants() {
    let name = unique("listed");
    let _sub = subscriber(&[&name]);
    // The subscriber is there once a publisher that waits for it can send.
    run(&["pub", &name, "--text", "hi", "--wait-subscribers", "1"]).ok();
    let ls = run(&["ls"]);
    let line = ls
        .ok()
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} not in:\n{}", ls.stdout));
    if !cfg!(windows) {
        assert!(line.contains(" service "), "{line}");
    }
    assert!(line.contains("0 pub, 1 sub"), "{line}");
    let info = run(&["info", &name]);
    let text = info.ok();
    assert!(text.contains("slices of u8"), "{text}");
    let subscribers = text.lines().find(|l| l.starts_with("subscribers")).unwrap();
    assert!(subscribers.contains("received 1"), "{text}");
}

#[test]
fn bad_pub_and_sub_input_says_what_is_wrong() {
    let name = unique("bad");
    let too_big = vec![b'x'; 5000];
    let err = run_with_input(&["pub", &name, "-"], &too_big)
        .fails(1)
        .to_owned();
    assert!(
        err.contains("larger than the service's largest, 4096"),
        "{err}"
    );
    let err = run(&[
        "pub",
        &name,
        "--text",
        "x",
        "--wait-subscribers",
        "1",
        "--timeout",
        "50ms",
    ]);
    assert!(
        err.fails(124).contains("0 of 1 subscribers connected"),
        "{}",
        err.stderr
    );
    let err = run(&["sub", &name, "--timeout", "50ms"]);
    assert!(
        err.fails(124).contains("no message for 50ms"),
        "{}",
        err.stderr
    );
    run(&["pub", "bad/name", "--text", "x"]).fails(2);
    let out = memlink(&["pub", &name])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an input is required");
}

#[test]
fn bridged_services_show_in_ls_and_their_bridge_in_info() {
    let name = unique("bridged");
    let _plain = Held::start_quiet(&["sub", &name]);
    // The bridge's participants, as `memlink-bridge` joins (this process).
    let bridge = memlink::pubsub::ServiceOptions::new().bridge();
    let _publisher = memlink::pubsub::Publisher::connect_any(&name, &bridge).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while memlink::pubsub::inspect_service(&name).map_or(true, |s| s.subscribers.is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "memlink sub never joined"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ls = run(&["ls"]);
    let line = ls
        .ok()
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} not in:\n{}", ls.stdout));
    assert!(line.contains("1 pub, 1 sub"), "{line}");
    assert!(line.contains(", bridged"), "{line}");
    let info = run(&["info", &name]);
    let text = info.ok();
    let publishers = text.lines().find(|l| l.starts_with("publishers")).unwrap();
    assert!(publishers.contains("(bridge)"), "{text}");
    let subscribers = text.lines().find(|l| l.starts_with("subscribers")).unwrap();
    assert!(!subscribers.contains("(bridge)"), "{text}");

    let other = unique("plain");
    let _plain = memlink::pubsub::Publisher::<[u8]>::connect(&other).unwrap();
    let ls = run(&["ls"]);
    let line = ls.ok().lines().find(|l| l.starts_with(&other)).unwrap();
    assert!(!line.contains(", bridged"), "{line}");
}
