//! Named sync objects against their references, in one run:
//! `cargo bench -p memlink --bench sync`.
//!
//! - uncontended lock+unlock of a named mutex against `std::sync::Mutex`;
//! - cross-process wake-up: a round trip through two auto-reset events
//!   (set in one process, the waiter in the other wakes and answers)
//!   against the same round trip through a pair of pipes.
//!
//! Batches of each case alternate, so load from elsewhere falls on both;
//! figures are medians per operation, the ratio the median of per-batch
//! ratios.

use std::hint::black_box;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use memlink::{Event, EventReset, Mutex};

mod common;

use common::compare;

fn report(label: &str, reference: &str, (ours, theirs, ratio): (Duration, Duration, f64)) {
    println!(
        "{label:<40} {:>10.3} µs   {reference:<26} {:>10.3} µs   {ratio:>6.2}x",
        ours.as_secs_f64() * 1e6,
        theirs.as_secs_f64() * 1e6,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--answer-events") {
        let ping = Event::open(&args[i + 1]).unwrap();
        let pong = Event::open(&args[i + 2]).unwrap();
        loop {
            ping.wait().unwrap();
            pong.set().unwrap();
        }
    }
    if args.iter().any(|a| a == "--answer-pipe") {
        let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
        let mut byte = [0u8];
        while input.read_exact(&mut byte).is_ok() {
            output.write_all(&byte).unwrap();
            output.flush().unwrap();
        }
        return;
    }

    let tag = std::process::id();
    let mutex = Mutex::create(&format!("memlink-bench-mutex-{tag}")).unwrap();
    let std_mutex = std::sync::Mutex::new(0u64);
    let figures = compare(
        100_000,
        || drop(black_box(mutex.lock().unwrap())),
        || drop(black_box(std_mutex.lock().unwrap())),
    );
    report(
        "uncontended lock+unlock, named mutex",
        "std::sync::Mutex",
        figures,
    );

    let exe = std::env::current_exe().unwrap();
    let (ping_name, pong_name) = (
        format!("memlink-bench-ping-{tag}"),
        format!("memlink-bench-pong-{tag}"),
    );
    let ping = Event::create(&ping_name, EventReset::Auto, false).unwrap();
    let pong = Event::create(&pong_name, EventReset::Auto, false).unwrap();
    let mut event_peer = Command::new(&exe)
        .args(["--answer-events", &ping_name, &pong_name])
        .spawn()
        .unwrap();
    let mut pipe_peer = Command::new(&exe)
        .arg("--answer-pipe")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_peer = pipe_peer.stdin.take().unwrap();
    let mut from_peer = pipe_peer.stdout.take().unwrap();
    let timeout = Duration::from_secs(10);
    let figures = compare(
        2_000,
        || {
            ping.set().unwrap();
            pong.wait_timeout(timeout).unwrap();
        },
        || {
            let mut byte = [1u8];
            to_peer.write_all(&byte).unwrap();
            from_peer.read_exact(&mut byte).unwrap();
        },
    );
    report(
        "cross-process wake-up round trip, events",
        "pipe ping-pong",
        figures,
    );
    event_peer.kill().unwrap();
    event_peer.wait().unwrap();
    drop(to_peer);
    pipe_peer.wait().unwrap();
}
