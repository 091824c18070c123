//! Two hosts on one machine: each "host" is a mount namespace with its own
//! tmpfs on `/dev/shm` (so its services are its own), holding a bridge and
//! local processes (this test binary, run as a publisher or a subscriber).
//! The bridges talk Zenoh over `tcp/127.0.0.1` on a free port. The real
//! `/dev/shm` is never touched.
//!
//! Needs root (mount namespaces); skipped otherwise, except under CI
//! (`CI` set), where not being root is a failure.

#![cfg(target_os = "linux")]

mod support;

use std::collections::HashSet;
use std::io::BufRead;
use std::time::{Duration, Instant};

use support::*;

/// The environment variable that makes this binary a local process.
const ROLE: &str = "MEMLINK_BRIDGE_TEST_ROLE";
/// Probe values count down from here; data values stay far below.
const PROBE: u64 = 1 << 60;

/// Starts this test binary on `host` as a local publisher or subscriber of
/// `service` (byte slices of up to `max` bytes; slow subscribers block).
fn helper(host: &Host, role: &str, service: &str, max: u64) -> Proc {
    let label = format!("{role} {service} on {}", host.name);
    host.helper(ROLE, &format!("{role} {service} {max}"), &label)
}

/// What the local processes do, when this binary is started as one.
#[test]
fn helper_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return; // the ordinary test run: nothing to do
    };
    use memlink::pubsub::{Overflow, ServiceOptions};
    let words: Vec<&str> = role.split(' ').collect();
    let (what, name, max) = (words[0], words[1], words[2].parse::<u64>().unwrap());
    let options = ServiceOptions::new()
        .overflow(Overflow::Block)
        .max_slice_len(max);
    match what {
        "sub" => {
            let subscriber = options.subscriber::<[u8]>(name).unwrap();
            println!("@ ready");
            loop {
                let sample = subscriber.recv().unwrap();
                let mut value = [0u8; 8];
                let n = sample.len().min(8);
                value[..n].copy_from_slice(&sample[..n]);
                println!("@ got {} {}", sample.len(), u64::from_le_bytes(value));
            }
        }
        "pub" => {
            let publisher = options.publisher::<[u8]>(name).unwrap();
            println!("@ ready");
            let send = |value: u64, len: usize| {
                let mut sample = publisher.loan_slice(len).unwrap();
                sample[..8].copy_from_slice(&value.to_le_bytes());
                sample.send().unwrap();
            };
            for line in std::io::stdin().lock().lines() {
                let line = line.unwrap();
                let w: Vec<u64> = line
                    .split(' ')
                    .skip(1)
                    .map(|n| n.parse().unwrap())
                    .collect();
                if line.starts_with("send ") {
                    for v in w[0]..w[1] {
                        send(v, w[2] as usize);
                    }
                } else if line.starts_with("probe ") {
                    send(w[0], 8);
                }
                println!("@ done");
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// A received sample: (length, value).
fn parse_got(line: &str) -> (u64, u64) {
    let w: Vec<&str> = line.split(' ').collect();
    assert_eq!(w[0], "got", "{line}");
    (w[1].parse().unwrap(), w[2].parse().unwrap())
}

/// Sends probes from `publisher` until every subscriber has received one:
/// then the bridges' routes are up.
fn probe_until_routed(publisher: &mut Proc, subscribers: &mut [&mut Proc]) {
    let deadline = Instant::now() + STARTUP;
    let mut waiting: Vec<usize> = (0..subscribers.len()).collect();
    let mut probe = PROBE;
    while !waiting.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no probe from {} reached {} within {STARTUP:?}",
            publisher.label,
            waiting
                .iter()
                .map(|&i| subscribers[i].label.clone())
                .collect::<Vec<_>>()
                .join(", ")
        );
        publisher.send(&format!("probe {probe}"));
        publisher.expect("done", STARTUP);
        probe += 1;
        let look = Instant::now() + Duration::from_millis(200);
        waiting.retain(|&i| {
            while let Some(line) = subscribers[i].next(look) {
                if parse_got(&line).1 >= PROBE {
                    return false;
                }
            }
            true
        });
    }
}

/// Reads data values (not probes) from `subscriber` until `count` came.
fn collect(subscriber: &mut Proc, count: usize) -> Vec<(u64, u64)> {
    let deadline = Instant::now() + DELIVERY;
    let mut got = Vec::new();
    while got.len() < count {
        let Some(line) = subscriber.next(deadline) else {
            panic!(
                "{}: {} of {count} samples within {DELIVERY:?}; last {:?}",
                subscriber.label,
                got.len(),
                got.last()
            );
        };
        let (len, value) = parse_got(&line);
        if value < PROBE {
            got.push((len, value));
        }
    }
    got
}

fn values(got: &[(u64, u64)]) -> Vec<u64> {
    got.iter().map(|&(_, v)| v).collect()
}

#[test]
fn a_publisher_on_a_reaches_subscribers_on_b_in_order() {
    if !root_or_skip("a_publisher_on_a_reaches_subscribers_on_b_in_order") {
        return;
    }
    let (a, b) = (Host::new("A"), Host::new("B"));
    let name = unique("order");
    let endpoint = listen(free_port());
    // The bridges start first and find the services by scanning for a glob.
    let glob = format!("{}*", &name[..name.len() - 1]);
    let mut bridge_a = a.bridge(&["--service", &glob, "--listen", &endpoint]);
    let mut bridge_b = b.bridge(&["--service", &glob, "--connect", &endpoint]);
    bridge_a.expect_log("Zenoh session", STARTUP);
    bridge_b.expect_log("remote bridge", STARTUP);
    let mut sub1 = helper(&b, "sub", &name, 4096);
    let mut sub2 = helper(&b, "sub", &name, 4096);
    let mut publisher = helper(&a, "pub", &name, 4096);
    bridge_a.expect_log(&format!("bridging service {name}"), STARTUP);
    bridge_b.expect_log(&format!("bridging service {name}"), STARTUP);
    probe_until_routed(&mut publisher, &mut [&mut sub1, &mut sub2]);

    publisher.send("send 0 2000 64");
    let expected: Vec<u64> = (0..2000).collect();
    for sub in [&mut sub1, &mut sub2] {
        let got = collect(sub, 2000);
        assert_eq!(values(&got), expected, "{}", sub.label);
        assert!(got.iter().all(|&(len, _)| len == 64));
    }
}

#[test]
fn both_directions_at_once_and_no_duplicates_when_both_sides_bridge() {
    if !root_or_skip("both_directions_at_once_and_no_duplicates_when_both_sides_bridge") {
        return;
    }
    let (a, b) = (Host::new("A"), Host::new("B"));
    let name = unique("both");
    let endpoint = listen(free_port());
    // A publisher and a subscriber of the same service on each host, both
    // bridges carrying it.
    let mut sub_a = helper(&a, "sub", &name, 4096);
    let mut pub_a = helper(&a, "pub", &name, 4096);
    let mut sub_b = helper(&b, "sub", &name, 4096);
    let mut pub_b = helper(&b, "pub", &name, 4096);
    let mut bridge_a = a.bridge(&["--service", &name, "--listen", &endpoint]);
    let mut bridge_b = b.bridge(&["--service", &name, "--connect", &endpoint]);
    bridge_a.expect_log(&format!("bridging service {name}"), STARTUP);
    bridge_b.expect_log(&format!("bridging service {name}"), STARTUP);
    probe_until_routed(&mut pub_a, &mut [&mut sub_b]);
    probe_until_routed(&mut pub_b, &mut [&mut sub_a]);
    // What the probes left in the local subscribers (the local publisher's
    // probes and the other side's) is read off by `collect`.

    pub_a.send("send 0 1000 64");
    pub_b.send("send 100000 101000 64");
    for sub in [&mut sub_a, &mut sub_b] {
        let got = values(&collect(sub, 2000));
        let mut seen = HashSet::new();
        for v in &got {
            assert!(seen.insert(*v), "{}: {v} came twice", sub.label);
        }
        let from_a: Vec<u64> = got.iter().copied().filter(|&v| v < 100000).collect();
        let from_b: Vec<u64> = got.iter().copied().filter(|&v| v >= 100000).collect();
        assert_eq!(from_a, (0..1000).collect::<Vec<_>>(), "{}", sub.label);
        assert_eq!(
            from_b,
            (100000..101000).collect::<Vec<_>>(),
            "{}",
            sub.label
        );
    }
    // An end mark from each side, sent after everything: a sample that
    // looped back would come before them; nothing but the marks may come.
    pub_a.send("send 500000 500001 8");
    pub_b.send("send 500001 500002 8");
    for sub in [&mut sub_a, &mut sub_b] {
        let got = values(&collect(sub, 2));
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, [500000, 500001], "{}: {got:?}", sub.label);
    }
}

#[test]
fn a_bridge_killed_and_restarted_resumes_forwarding() {
    if !root_or_skip("a_bridge_killed_and_restarted_resumes_forwarding") {
        return;
    }
    let (a, b) = (Host::new("A"), Host::new("B"));
    let name = unique("restart");
    let endpoint = listen(free_port());
    let mut sub = helper(&b, "sub", &name, 4096);
    let mut publisher = helper(&a, "pub", &name, 4096);
    let mut bridge_a = a.bridge(&["--service", &name, "--listen", &endpoint]);
    let b_args = ["--service", name.as_str(), "--connect", endpoint.as_str()];
    let mut bridge_b = b.bridge(&b_args);
    bridge_b.expect_log(&format!("bridging service {name}"), STARTUP);
    probe_until_routed(&mut publisher, &mut [&mut sub]);
    publisher.send("send 0 500 64");
    assert_eq!(
        values(&collect(&mut sub, 500)),
        (0..500).collect::<Vec<_>>()
    );

    // Killed in the middle of a stream: while it publishes into B's
    // service, maybe holding a loan there.
    publisher.send("send 500 20500 64");
    let mut got = values(&collect(&mut sub, 1000));
    bridge_b.kill();
    bridge_a.expect_log("went away", STARTUP);

    let mut bridge_b = b.bridge(&b_args);
    bridge_b.expect_log(&format!("bridging service {name}"), STARTUP);
    probe_until_routed(&mut publisher, &mut [&mut sub]);
    publisher.send("send 100000 100500 64");
    // What the killed bridge had published is read to its end; then the
    // new bridge's samples, every one, in order.
    loop {
        let v = values(&collect(&mut sub, 1))[0];
        got.push(v);
        if v >= 100000 {
            break;
        }
    }
    got.extend(values(&collect(&mut sub, 499)));
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "out of order or twice: {got:?}"
    );
    assert_eq!(
        got[got.len() - 500..],
        (100000..100500).collect::<Vec<_>>()[..]
    );
    assert!(got
        .iter()
        .all(|&v| (500..20500).contains(&v) || v >= 100000));
    // The bridge on A lived through it.
    assert_eq!(bridge_a.child.try_wait().unwrap(), None);
}

#[test]
fn a_remote_sample_larger_than_the_service_takes_is_refused() {
    if !root_or_skip("a_remote_sample_larger_than_the_service_takes_is_refused") {
        return;
    }
    let (a, b) = (Host::new("A"), Host::new("B"));
    let name = unique("big");
    let endpoint = listen(free_port());
    // The same service, 4 KiB samples on A, 64 bytes at most on B.
    let mut sub = helper(&b, "sub", &name, 64);
    let mut publisher = helper(&a, "pub", &name, 4096);
    let _bridge_a = a.bridge(&["--service", &name, "--listen", &endpoint]);
    let mut bridge_b = b.bridge(&["--service", &name, "--connect", &endpoint]);
    bridge_b.expect_log(&format!("bridging service {name}"), STARTUP);
    probe_until_routed(&mut publisher, &mut [&mut sub]);

    publisher.send("send 1 2 1000");
    publisher.send("send 2 3 65");
    publisher.send("send 3 4 64");
    let refused = bridge_b.expect_log("refused a 1000-byte sample", DELIVERY);
    assert!(refused.contains(&name), "{refused}");
    assert!(refused.contains("largest, 64 bytes"), "{refused}");
    bridge_b.expect_log("refused a 65-byte sample", DELIVERY);
    // Only the sample that fits arrives, and the bridge carries on.
    assert_eq!(collect(&mut sub, 1), [(64, 3)]);
    publisher.send("send 4 5 16");
    assert_eq!(collect(&mut sub, 1), [(16, 4)]);
    assert_eq!(bridge_b.child.try_wait().unwrap(), None);
}
