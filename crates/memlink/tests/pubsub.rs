//! Publish/subscribe across real processes: delivery and order, both
//! overflow policies, history, zero-copy, mismatches, and peers killed at
//! awkward moments.

mod support;

use std::time::{Duration, Instant};

use memlink::pubsub::{inspect_service, Overflow, Publisher, ServiceOptions, Subscriber};
use memlink::ErrorKind;
use support::{go_together, hear, role, say, unique_name, Child, DEADLINE};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Reading {
    publisher: u32,
    check: u32,
    seq: u64,
    value: f64,
}

impl Reading {
    fn new(publisher: u32, seq: u64) -> Reading {
        Reading {
            publisher,
            check: (seq as u32).wrapping_mul(2_654_435_761) ^ publisher,
            seq,
            value: seq as f64 * 0.5,
        }
    }
}

/// A large payload whose words all carry the same number: a torn sample
/// (half of one, half of another) shows as words that differ.
type Block = [u64; 512];

fn options(policy: &str) -> ServiceOptions {
    let overflow = match policy {
        "block" => Overflow::Block,
        _ => Overflow::Overwrite,
    };
    ServiceOptions::new().overflow(overflow).capacity(16)
}

/// Not a test: the entry point of the child processes the tests start.
#[test]
#[ignore = "entry point for child processes, run by the other tests"]
fn child_entry() {
    let Some(args) = role() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["subscribe", name, policy, total] => {
            let total: u64 = total.parse().unwrap();
            let sub = options(policy).subscriber::<Reading>(name).unwrap();
            say("ready");
            let (mut received, mut last) = (0u64, None::<u64>);
            let mut gaps = 0;
            loop {
                let sample = sub.recv_timeout(DEADLINE).unwrap();
                assert_eq!(*sample, Reading::new(0, sample.seq), "intact");
                if let Some(last) = last {
                    assert!(sample.seq > last, "in order: {} after {last}", sample.seq);
                    gaps += sample.seq - last - 1;
                } else {
                    gaps += sample.seq;
                }
                last = Some(sample.seq);
                received += 1;
                if sample.seq == total - 1 {
                    break;
                }
            }
            assert_eq!(gaps, sub.missed(), "every gap is counted as missed");
            say(format!("received {received} missed {}", sub.missed()));
        }
        ["publish", name, policy, id, total] => {
            let id: u32 = id.parse().unwrap();
            let publisher = options(policy).publisher::<Reading>(name).unwrap();
            say("ready");
            assert_eq!(hear().as_deref(), Some("go"));
            for seq in 0..total.parse().unwrap() {
                let mut sample = publisher.loan().unwrap();
                *sample = Reading::new(id, seq);
                sample.send_timeout(DEADLINE).unwrap();
            }
            say("sent");
            hear();
        }
        ["hold", name, count] => {
            let sub = Subscriber::<u64>::connect(name).unwrap();
            say("ready");
            assert_eq!(hear().as_deref(), Some("take"));
            let held: Vec<_> = (0..count.parse().unwrap())
                .map(|_| sub.recv_timeout(DEADLINE).unwrap())
                .collect();
            let values: Vec<u64> = held.iter().map(|s| **s).collect();
            say(format!("holding {}", held.len()));
            // Killed here, or asked to check that nothing wrote the slots.
            if hear().as_deref() == Some("check") {
                let now: Vec<u64> = held.iter().map(|s| **s).collect();
                say(if now == values {
                    "intact"
                } else {
                    "overwritten"
                });
            }
        }
        ["fill_and_block", name] => {
            let publisher = options("block").publisher::<u64>(name).unwrap();
            for n in 0..16 {
                publisher.send_copy(&n).unwrap();
            }
            say("full");
            // Waits for room; killed here, asleep.
            let _ = publisher.loan().unwrap().send_timeout(DEADLINE);
            say("not killed");
        }
        ["churn", name] => {
            // Joins, takes a few, leaves, again and again: killed anywhere
            // in that, joining and reaping included.
            let mut first = true;
            loop {
                let sub = options("block").subscriber::<Reading>(name).unwrap();
                if std::mem::take(&mut first) {
                    say("ready");
                }
                for _ in 0..3 {
                    let sample = sub.recv_timeout(DEADLINE).unwrap();
                    let _held = sub.try_recv().unwrap();
                    assert_eq!(*sample, Reading::new(0, sample.seq), "intact");
                }
            }
        }
        ["idle_subscriber", name] => {
            let _sub = options("block").subscriber::<u64>(name).unwrap();
            say("ready");
            hear(); // never reads; killed here
        }
        ["flood", name] => {
            let publisher = ServiceOptions::new()
                .capacity(8)
                .publisher::<Block>(name)
                .unwrap();
            say("ready");
            for n in 1.. {
                let mut sample = publisher.loan_uninit().unwrap();
                // Word by word, so a kill can land in the middle.
                for word in sample.iter_mut() {
                    *word = n;
                }
                sample.send().unwrap();
            }
        }
        ["bytes", name] => {
            let publisher = ServiceOptions::new()
                .max_slice_len(10_000)
                .overflow(Overflow::Block)
                .publisher::<[u8]>(name)
                .unwrap();
            say("ready");
            assert_eq!(hear().as_deref(), Some("go"));
            for len in 0..200usize {
                let mut sample = publisher.loan_slice(len * 50).unwrap();
                for (i, byte) in sample.iter_mut().enumerate() {
                    *byte = (i + len) as u8;
                }
                sample.send().unwrap();
            }
            say("sent");
            hear();
        }
        _ => panic!("unknown role {args:?}"),
    }
}

fn parse_counts(line: &str) -> (u64, u64) {
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[0], "received", "{line}");
    (words[1].parse().unwrap(), words[3].parse().unwrap())
}

#[test]
fn typed_samples_reach_eight_subscriber_processes_whole_and_in_order_under_backpressure() {
    let name = unique_name("fanout-block");
    let total = 20_000u64;
    let publisher = options("block").publisher::<Reading>(&name).unwrap();
    let children: Vec<Child> = (0..8)
        .map(|_| Child::spawn("subscribe", &[&name, "block", &total.to_string()]))
        .collect();
    for child in &children {
        child.expect("ready");
    }
    for seq in 0..total {
        let mut sample = publisher.loan().unwrap();
        *sample = Reading::new(0, seq);
        sample.send_timeout(DEADLINE).unwrap();
    }
    for child in children {
        let (received, missed) = parse_counts(&child.next_line());
        assert_eq!(
            (received, missed),
            (total, 0),
            "block: every sample, none missed"
        );
        child.finish();
    }
}

#[test]
fn overwrite_lets_slow_subscribers_count_exactly_what_they_missed() {
    let name = unique_name("fanout-overwrite");
    let total = 50_000u64;
    let publisher = options("overwrite").publisher::<Reading>(&name).unwrap();
    let children: Vec<Child> = (0..8)
        .map(|_| Child::spawn("subscribe", &[&name, "overwrite", &total.to_string()]))
        .collect();
    for child in &children {
        child.expect("ready");
    }
    for seq in 0..total {
        publisher.send_copy(&Reading::new(0, seq)).unwrap();
    }
    let mut any_missed = false;
    for child in children {
        let (received, missed) = parse_counts(&child.next_line());
        // The child checked that its gaps add up to `missed`.
        assert_eq!(received + missed, total);
        any_missed |= missed > 0;
        child.finish();
    }
    // Not asserted: whether anyone fell behind depends on the scheduler.
    eprintln!("some subscriber missed samples: {any_missed}");
}

#[test]
fn four_publisher_processes_keep_their_own_order_at_one_subscriber() {
    let name = unique_name("fanin");
    let per = 5_000u64;
    let sub = options("block").subscriber::<Reading>(&name).unwrap();
    let mut children: Vec<Child> = (0..4)
        .map(|id| {
            Child::spawn(
                "publish",
                &[&name, "block", &id.to_string(), &per.to_string()],
            )
        })
        .collect();
    go_together(&mut children);
    let mut next = [0u64; 4];
    for _ in 0..4 * per {
        let sample = sub.recv_timeout(DEADLINE).unwrap();
        let id = sample.publisher as usize;
        assert_eq!(
            *sample,
            Reading::new(sample.publisher, next[id]),
            "intact, in order"
        );
        next[id] += 1;
    }
    assert_eq!(next, [per; 4]);
    assert!(sub.try_recv().unwrap().is_none());
    for child in children {
        child.expect("sent");
        child.finish();
    }
}

#[test]
fn byte_slices_of_every_length_cross_intact() {
    let name = unique_name("bytes");
    let sub = ServiceOptions::new()
        .max_slice_len(10_000)
        .overflow(Overflow::Block)
        .subscriber::<[u8]>(&name)
        .unwrap();
    let mut child = Child::spawn("bytes", &[&name]);
    child.expect("ready");
    child.tell("go");
    for len in 0..200usize {
        let sample = sub.recv_timeout(DEADLINE).unwrap();
        assert_eq!(sample.len(), len * 50);
        assert!(sample
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i + len) as u8));
    }
    child.expect("sent");
    child.finish();
}

#[test]
fn a_late_subscriber_receives_the_history() {
    let name = unique_name("history");
    let options = ServiceOptions::new().capacity(8).history(3);
    let publisher = options.publisher::<u64>(&name).unwrap();
    for n in 0..10u64 {
        publisher.send_copy(&n).unwrap();
    }
    let late = options.subscriber::<u64>(&name).unwrap();
    let got: Vec<u64> = std::iter::from_fn(|| late.try_recv().unwrap().map(|s| *s)).collect();
    assert_eq!(got, [7, 8, 9]);
    // History is a setting of the service: a subscriber that leaves the
    // settings alone gets it too.
    let plain = Subscriber::<u64>::connect(&name).unwrap();
    let got: Vec<u64> = std::iter::from_fn(|| plain.try_recv().unwrap().map(|s| *s)).collect();
    assert_eq!(got, [7, 8, 9]);
}

#[test]
fn a_one_mib_sample_is_read_in_place_from_a_read_only_mapping() {
    let name = unique_name("zero-copy");
    let options = ServiceOptions::new()
        .max_slice_len(1 << 20)
        .capacity(2)
        .max_subscribers(2);
    let publisher = options.publisher::<[u8]>(&name).unwrap();
    let sub = options.subscriber::<[u8]>(&name).unwrap();
    let mut sample = publisher.loan_slice(1 << 20).unwrap();
    let written_at = sample.as_ptr() as usize;
    sample[12345] = 0xA5;
    sample.send().unwrap();
    let got = sub.try_recv().unwrap().unwrap();
    assert_eq!(got.len(), 1 << 20);
    assert_eq!(got[12345], 0xA5);
    assert_eq!(got.as_ptr(), got.as_ptr(), "deref gives the slot itself");
    assert_ne!(
        got.as_ptr() as usize,
        written_at,
        "two mappings of one slot"
    );
    #[cfg(target_os = "linux")]
    {
        // The subscriber's address lies in a read-only shared mapping of
        // the service's object.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let at = got.as_ptr() as usize;
        let line = maps
            .lines()
            .find(|line| {
                let range = line.split(' ').next().unwrap();
                let (lo, hi) = range.split_once('-').unwrap();
                let (lo, hi) = (
                    usize::from_str_radix(lo, 16).unwrap(),
                    usize::from_str_radix(hi, 16).unwrap(),
                );
                (lo..hi).contains(&at) && at + (1 << 20) <= hi
            })
            .expect("the sample lies in one mapping");
        assert!(line.contains(&format!("/dev/shm/{name}")), "{line}");
        assert!(
            line.split(' ').nth(1).unwrap().starts_with("r--s"),
            "{line}"
        );
    }
}

#[test]
fn mismatched_types_and_settings_are_refused_with_both_sides_named() {
    let name = unique_name("mismatch");
    let _publisher = ServiceOptions::new()
        .capacity(8)
        .publisher::<Reading>(&name)
        .unwrap();
    let err = Subscriber::<u32>::connect(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Incompatible);
    let text = err.to_string();
    assert!(text.contains("u32 (4 bytes, align 4)"), "{text}");
    assert!(text.contains("Reading (24 bytes, align 8)"), "{text}");
    assert!(
        text.starts_with(&format!("cannot connect to service \"{name}\"")),
        "{text}"
    );

    let err = ServiceOptions::new()
        .capacity(32)
        .subscriber::<Reading>(&name)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Incompatible);
    assert!(
        err.to_string()
            .contains("capacity 32 here, 8 in the service"),
        "{err}"
    );

    let err = Subscriber::<[Reading]>::connect(&name).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Incompatible,
        "a slice is not one value"
    );
    // Settings left alone take the service's.
    let sub = Subscriber::<Reading>::connect(&name).unwrap();
    assert_eq!(sub.publisher_count().unwrap(), 1);
}

#[test]
fn bad_settings_and_names_are_clear_errors() {
    let err = ServiceOptions::new()
        .max_publishers(0)
        .publisher::<u8>(&unique_name("bad"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("max_publishers is 0"), "{err}");
    let err = ServiceOptions::new()
        .capacity(4)
        .history(5)
        .subscriber::<u8>(&unique_name("bad"))
        .unwrap_err();
    assert!(err.to_string().contains("history of 5"), "{err}");
    let err = Publisher::<u8>::connect("bad/name").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidName);
    let name = unique_name("too-big");
    let publisher = ServiceOptions::new()
        .max_slice_len(16)
        .publisher::<[u8]>(&name)
        .unwrap();
    let err = publisher.loan_slice(17).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("17 bytes is larger"), "{err}");
}

#[test]
fn places_loans_and_holds_have_limits_that_say_so() {
    let name = unique_name("limits");
    let options = ServiceOptions::new()
        .max_publishers(1)
        .max_subscribers(1)
        .max_loans(2)
        .max_borrowed(1);
    let publisher = options.publisher::<u64>(&name).unwrap();
    let err = options.publisher::<u64>(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached);
    assert!(
        err.to_string().contains("all 1 publisher places are taken"),
        "{err}"
    );
    let sub = options.subscriber::<u64>(&name).unwrap();
    let a = publisher.loan().unwrap();
    let b = publisher.loan().unwrap();
    assert_eq!(
        publisher.loan().unwrap_err().kind(),
        ErrorKind::LimitReached
    );
    drop(b);
    a.send().unwrap();
    publisher.send_copy(&2).unwrap();
    let first = sub.try_recv().unwrap().unwrap();
    assert_eq!(sub.try_recv().unwrap_err().kind(), ErrorKind::LimitReached);
    drop(first);
    assert_eq!(*sub.try_recv().unwrap().unwrap(), 2);
}

#[test]
fn blocking_receive_wakes_on_send_and_times_out_when_nothing_comes() {
    let name = unique_name("wake");
    let sub = options("overwrite").subscriber::<Reading>(&name).unwrap();
    let started = Instant::now();
    let err = sub.recv_timeout(Duration::from_millis(50)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(50));
    let mut child = Child::spawn("publish", &[&name, "overwrite", "0", "1"]);
    child.expect("ready");
    child.tell("go");
    // The child sends once; this receive is asleep in the kernel by then
    // or sees it at once.
    let sample = sub.recv_timeout(DEADLINE).unwrap();
    assert_eq!(*sample, Reading::new(0, 0));
    drop(sample);
    child.expect("sent");
    child.finish();
}

#[test]
fn a_subscriber_killed_holding_samples_gives_its_slots_back_every_time() {
    let name = unique_name("kill-sub");
    let publisher = Publisher::<u64>::connect(&name).unwrap();
    for cycle in 0..200 {
        let mut child = Child::spawn("hold", &[&name, "2"]);
        child.expect("ready");
        for n in 0..2u64 {
            publisher.send_copy(&(cycle * 10 + n)).unwrap();
        }
        child.tell("take");
        child.expect("holding 2");
        let info = inspect_service(&name).unwrap();
        assert_eq!(info.slots_held, 2, "cycle {cycle}");
        assert_eq!(info.subscribers.len(), 1, "cycle {cycle}");
        child.kill();
    }
    // Whoever connects next (or a publisher short of slots) reaps the dead.
    let _sub = Subscriber::<u64>::connect(&name).unwrap();
    let info = inspect_service(&name).unwrap();
    assert_eq!(info.slots_held, 0, "every slot came back");
    assert_eq!(info.subscribers.len(), 1);
    // And the whole pool is usable: loan as many as allowed, twice over.
    for _ in 0..2 * info.slots {
        publisher.send_copy(&1).unwrap();
    }
}

#[test]
fn a_held_sample_is_never_overwritten_however_far_the_publisher_runs() {
    let name = unique_name("held");
    let publisher = Publisher::<u64>::connect(&name).unwrap();
    let mut child = Child::spawn("hold", &[&name, "2"]);
    child.expect("ready");
    for n in 0..2u64 {
        publisher.send_copy(&(1000 + n)).unwrap();
    }
    child.tell("take");
    child.expect("holding 2");
    let slots = inspect_service(&name).unwrap().slots;
    for n in 0..10 * slots {
        publisher.send_copy(&n).unwrap();
    }
    child.tell("check");
    child.expect("intact");
    child.finish();
}

#[test]
fn a_blocking_publisher_is_not_held_up_by_a_dead_subscriber() {
    let name = unique_name("dead-block");
    let publisher = options("block").publisher::<u64>(&name).unwrap();
    let child = Child::spawn("idle_subscriber", &[&name]);
    child.expect("ready");
    for n in 0..16 {
        publisher.send_copy(&n).unwrap(); // fills the ring
    }
    let stuck = publisher
        .loan()
        .unwrap()
        .send_timeout(Duration::from_millis(30));
    assert_eq!(
        stuck.unwrap_err().kind(),
        ErrorKind::Timeout,
        "a live idle subscriber blocks"
    );
    child.kill();
    for n in 0..100 {
        publisher
            .loan()
            .unwrap()
            .send_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("send {n} after the kill: {e}"));
    }
    assert_eq!(publisher.subscriber_count().unwrap(), 0);
}

#[test]
fn a_publisher_killed_mid_send_leaves_no_torn_sample_and_no_stuck_subscriber() {
    let name = unique_name("kill-pub");
    let sub = ServiceOptions::new()
        .capacity(8)
        .subscriber::<Block>(&name)
        .unwrap();
    for cycle in 0..20 {
        let child = Child::spawn("flood", &[&name]);
        child.expect("ready");
        // Let it run a varying while, receiving as it goes, then kill it.
        let mut seen = 0;
        while seen < 50 + cycle * 37 {
            let sample = sub.recv_timeout(DEADLINE).unwrap();
            assert!(
                sample.iter().all(|&w| w == sample[0]),
                "torn sample in cycle {cycle}"
            );
            seen += 1;
        }
        child.kill();
        // Drain what it published; nothing half-made comes out, and the
        // wait ends.
        while let Ok(sample) = sub.recv_timeout(Duration::from_millis(20)) {
            assert!(
                sample.iter().all(|&w| w == sample[0]),
                "torn sample after kill {cycle}"
            );
        }
        assert_eq!(
            sub.publisher_count().unwrap(),
            0,
            "the subscriber sees it gone"
        );
    }
}

#[test]
fn missed_samples_are_counted_once_when_the_borrow_limit_stops_a_receive() {
    let name = unique_name("missed-once");
    let options = ServiceOptions::new().capacity(2).max_borrowed(1);
    let publisher = options.publisher::<u64>(&name).unwrap();
    let sub = options.subscriber::<u64>(&name).unwrap();
    publisher.send_copy(&0).unwrap();
    let held = sub.try_recv().unwrap().unwrap();
    for n in 1..6 {
        publisher.send_copy(&n).unwrap(); // 1, 2 and 3 are overwritten
    }
    for _ in 0..3 {
        let err = sub.try_recv().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LimitReached);
    }
    drop(held);
    assert_eq!(*sub.try_recv().unwrap().unwrap(), 4);
    assert_eq!(*sub.try_recv().unwrap().unwrap(), 5);
    assert_eq!(sub.missed(), 3, "samples 1 to 3, each counted once");
    let info = inspect_service(&name).unwrap();
    assert_eq!(info.subscribers[0].missed, 3);
}

#[test]
fn under_backpressure_a_late_subscriber_misses_none_of_its_history() {
    let name = unique_name("block-history");
    let options = ServiceOptions::new()
        .capacity(4)
        .history(4)
        .overflow(Overflow::Block);
    let publisher = options.publisher::<u64>(&name).unwrap();
    for n in 0..5 {
        publisher.send_copy(&n).unwrap(); // nobody listens: nothing blocks
    }
    let sub = options.subscriber::<u64>(&name).unwrap();
    // The subscriber wants 1, 2, 3 and 4; the publisher may send until the
    // ring is full of what it has not taken, and no further.
    let stuck = publisher
        .loan()
        .unwrap()
        .send_timeout(Duration::from_millis(20));
    assert_eq!(stuck.unwrap_err().kind(), ErrorKind::Timeout);
    let got: Vec<u64> = (0..4)
        .map(|_| *sub.recv_timeout(DEADLINE).unwrap())
        .collect();
    assert_eq!(got, [1, 2, 3, 4]);
    assert_eq!(sub.missed(), 0);
    publisher
        .loan()
        .unwrap()
        .send_timeout(DEADLINE)
        .expect("room again");
    assert_eq!(*sub.recv_timeout(DEADLINE).unwrap(), 0);
}

/// Overwrites bytes of a service's shared memory, as a buggy or hostile
/// process could (on Linux the object is the file `/dev/shm/NAME`).
#[cfg(target_os = "linux")]
fn poke(name: &str, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

/// Offsets in a service with at most 64 subscribers (`pubsub/layout.rs`).
#[cfg(target_os = "linux")]
mod offsets {
    pub const VERSION: u64 = 8;
    pub const MAX_PAYLOAD: u64 = 48;
    /// The head of publisher place 0.
    pub const FIRST_HEAD: u64 = 640;
    /// The bits of publishers waiting for space.
    pub const SPACE_SLEEPERS: u64 = 576;
}

/// Reads a word of a service's shared memory.
#[cfg(target_os = "linux")]
fn peek(name: &str, offset: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(format!("/dev/shm/{name}")).unwrap();
    let mut word = [0u8; 8];
    file.read_exact_at(&mut word, offset).unwrap();
    u64::from_le_bytes(word)
}

#[cfg(target_os = "linux")]
#[test]
fn a_header_of_another_layout_version_is_refused() {
    let name = unique_name("version");
    let _publisher = Publisher::<u64>::connect(&name).unwrap();
    poke(&name, offsets::VERSION, &7u32.to_le_bytes());
    let err = Subscriber::<u64>::connect(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Incompatible);
    assert!(err.to_string().contains("version 7"), "{err}");
    let err = inspect_service(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Incompatible);
}

#[cfg(target_os = "linux")]
#[test]
fn a_header_whose_largest_payload_is_smaller_than_the_type_is_refused() {
    let name = unique_name("short-payload");
    let _publisher = Publisher::<Block>::connect(&name).unwrap();
    // Slots would be laid out 64 bytes apart, and a 4 KiB sample read from
    // the last ones would run past the end of the mapping.
    poke(&name, offsets::MAX_PAYLOAD, &8u64.to_le_bytes());
    let err = Subscriber::<Block>::connect(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Incompatible);
    assert!(err.to_string().contains("4096"), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_corrupted_head_gives_errors_not_panics() {
    let name = unique_name("bad-head");
    let options = ServiceOptions::new().max_publishers(1).history(2);
    drop(options.publisher::<u64>(&name).unwrap());
    let keep = options.subscriber::<u64>(&name).unwrap();
    for head in [u64::MAX, u64::MAX - 1, 1 << 63] {
        poke(&name, offsets::FIRST_HEAD, &head.to_le_bytes());
        for attempt in 0..3 {
            // Whatever each call answers, none may panic.
            if let Ok(publisher) = options.publisher::<u64>(&name) {
                let _ = publisher.send_copy(&attempt);
                let _ = publisher.send_copy(&attempt);
            }
            if let Ok(sub) = options.subscriber::<u64>(&name) {
                let _ = sub.try_recv();
            }
            let _ = keep.try_recv();
            let _ = inspect_service(&name);
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_publisher_killed_while_waiting_for_room_is_not_rung_for_ever() {
    let name = unique_name("dead-waiter");
    let sub = options("block").subscriber::<u64>(&name).unwrap();
    let child = Child::spawn("fill_and_block", &[&name]);
    child.expect("full");
    let until = Instant::now() + DEADLINE;
    while peek(&name, offsets::SPACE_SLEEPERS) == 0 {
        assert!(Instant::now() < until, "the publisher never went to sleep");
        std::thread::yield_now();
    }
    child.kill();
    // Each receive moves the cursor; the first one rings the sleeper (it
    // cannot know it is dead), and none after it should.
    for n in 0..16 {
        assert_eq!(*sub.recv_timeout(DEADLINE).unwrap(), n);
        assert_eq!(
            peek(&name, offsets::SPACE_SLEEPERS),
            0,
            "the waiting bit outlives the ring, so every cursor move makes a system call"
        );
    }
}

#[test]
fn edge_settings_work_zero_sized_capacity_one_and_the_65th_subscriber() {
    // A zero-sized payload still carries the fact of a send.
    let name = unique_name("zst");
    let publisher = Publisher::<()>::connect(&name).unwrap();
    let sub = Subscriber::<()>::connect(&name).unwrap();
    publisher.send_copy(&()).unwrap();
    assert!(sub.try_recv().unwrap().is_some());
    assert!(sub.try_recv().unwrap().is_none());

    // Capacity 1 under backpressure: one in flight, then the publisher waits.
    let name = unique_name("cap1");
    let options = ServiceOptions::new().capacity(1).overflow(Overflow::Block);
    let publisher = options.publisher::<u64>(&name).unwrap();
    let sub = options.subscriber::<u64>(&name).unwrap();
    publisher.send_copy(&1).unwrap();
    let stuck = publisher
        .loan()
        .unwrap()
        .send_timeout(Duration::from_millis(10));
    assert_eq!(stuck.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(*sub.try_recv().unwrap().unwrap(), 1);
    publisher.send_copy(&2).unwrap();
    assert_eq!(*sub.try_recv().unwrap().unwrap(), 2);

    // The 65th subscriber's bits are in the second word of every bit set.
    let name = unique_name("sixty-five");
    let options = ServiceOptions::new().max_subscribers(65).max_borrowed(1);
    let publisher = options.publisher::<u64>(&name).unwrap();
    let subs: Vec<_> = (0..65)
        .map(|_| options.subscriber::<u64>(&name).unwrap())
        .collect();
    let last = subs.into_iter().last().unwrap();
    let waiter = std::thread::spawn(move || *last.recv_timeout(DEADLINE).unwrap());
    let until = Instant::now() + DEADLINE;
    // Keep sending until it has woken: it may not be asleep yet at first.
    let mut n = 0;
    while !waiter.is_finished() {
        assert!(Instant::now() < until, "the 65th subscriber never woke");
        publisher.send_copy(&n).unwrap();
        n += 1;
        std::thread::yield_now();
    }
    assert!(waiter.join().unwrap() < n);

    // Huge slices are refused, not overflowed.
    let err = ServiceOptions::new()
        .max_slice_len(u64::MAX)
        .publisher::<[u64]>(&unique_name("huge"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let publisher = Publisher::<[u64]>::connect(&unique_name("huge-loan")).unwrap();
    let err = publisher.loan_slice(usize::MAX).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn a_publisher_taking_over_a_place_counts_only_its_own_sends() {
    let name = unique_name("sent-count");
    let options = ServiceOptions::new().max_publishers(1);
    let _sub = options.subscriber::<u64>(&name).unwrap();
    let first = options.publisher::<u64>(&name).unwrap();
    for n in 0..3 {
        first.send_copy(&n).unwrap();
    }
    drop(first);
    let second = options.publisher::<u64>(&name).unwrap();
    second.send_copy(&9).unwrap();
    let info = inspect_service(&name).unwrap();
    assert_eq!(info.publishers.len(), 1);
    assert_eq!(
        info.publishers[0].samples, 1,
        "the place's new holder sent 1"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn sleeping_bits_of_places_that_do_not_exist_ring_nobody() {
    let name = unique_name("bad-sleepers");
    let options = ServiceOptions::new().max_publishers(1).max_subscribers(1);
    let publisher = options.publisher::<u64>(&name).unwrap();
    // Bits 1 to 63 stand for subscriber places the service does not have;
    // ringing them would write into the slot headers and past the end of
    // the control part.
    poke(&name, 512, &u64::MAX.to_le_bytes());
    publisher.send_copy(&1).unwrap();
    let info = inspect_service(&name).unwrap();
    assert_eq!(info.slots_held, 0, "no holder bit was written by a ring");
}

#[cfg(target_os = "linux")]
#[test]
fn a_sample_left_by_a_publisher_killed_before_it_rang_wakes_a_sleeping_receive() {
    let name = unique_name("unrung");
    let options = ServiceOptions::new().max_publishers(1).max_subscribers(1);
    let sub = options.subscriber::<u64>(&name).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    // `recv` without a deadline: the case where nothing else would end it.
    std::thread::spawn(move || done.send(*sub.recv().unwrap()));
    let until = Instant::now() + DEADLINE;
    while peek(&name, 512) & 1 == 0 {
        assert!(Instant::now() < until, "the receive never went to sleep");
        std::thread::yield_now();
    }
    // What a publisher killed between its ring store and its ring of the
    // sleepers leaves: sample 0 in slot 0 (zeroed), the head not yet moved.
    poke(&name, offsets::FIRST_HEAD + 64, &(1u64 << 16).to_le_bytes());
    let got = finished.recv_timeout(DEADLINE);
    assert_eq!(got, Ok(0), "the receive slept on while a sample waited");
}

#[test]
fn slices_of_a_zero_sized_type_are_refused_with_the_reason() {
    let err = ServiceOptions::new()
        .max_slice_len(10)
        .publisher::<[()]>(&unique_name("zst-slices"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("zero-sized"), "{err}");
}

#[test]
fn subscribers_killed_anywhere_in_joining_and_leaving_never_stall_a_blocking_publisher() {
    let name = unique_name("churn");
    let publisher = options("block").publisher::<Reading>(&name).unwrap();
    let mut seq = 0;
    let mut send = |publisher: &Publisher<Reading>| {
        let mut sample = publisher.loan().unwrap();
        *sample = Reading::new(0, seq);
        seq += 1;
        sample
            .send_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("send {seq}: {e}"));
    };
    for cycle in 0..30 {
        let children: Vec<_> = (0..2).map(|_| Child::spawn("churn", &[&name])).collect();
        for child in &children {
            child.expect("ready");
        }
        for _ in 0..(20 + cycle * 13) {
            send(&publisher);
        }
        for child in children {
            child.kill();
        }
    }
    // A newcomer reaps whatever the dead left; then nothing is held, and
    // the publisher runs as far as it likes past its idle-free ring.
    let sub = options("block").subscriber::<Reading>(&name).unwrap();
    let info = inspect_service(&name).unwrap();
    assert_eq!(info.slots_held, 0, "every slot came back");
    assert_eq!(info.subscribers.len(), 1);
    drop(sub);
    for _ in 0..100 {
        send(&publisher);
    }
}

#[test]
fn publishers_killed_and_replaced_keep_each_places_sequence_in_order() {
    let name = unique_name("takeover");
    let sub = ServiceOptions::new()
        .capacity(8)
        .subscriber::<Block>(&name)
        .unwrap();
    let mut last: Vec<Option<u64>> = vec![None; 8];
    for cycle in 0..15 {
        let children: Vec<_> = (0..2).map(|_| Child::spawn("flood", &[&name])).collect();
        for child in &children {
            child.expect("ready");
        }
        for _ in 0..(40 + cycle * 17) {
            let sample = sub.recv_timeout(DEADLINE).unwrap();
            assert!(sample.iter().all(|&w| w == sample[0]), "torn");
            let place = sample.publisher_index() as usize;
            if let Some(before) = last[place] {
                assert!(
                    sample.sequence() > before,
                    "place {place}: {} after {before}",
                    sample.sequence()
                );
            }
            last[place] = Some(sample.sequence());
        }
        for child in children {
            child.kill();
        }
    }
    assert!(last.iter().flatten().count() >= 2, "{last:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn out_of_range_slots_and_lengths_in_the_ring_are_skipped_or_clamped() {
    let name = unique_name("bad-ring");
    let options = ServiceOptions::new()
        .max_publishers(1)
        .max_subscribers(1)
        .max_slice_len(100);
    let publisher = options.publisher::<[u8]>(&name).unwrap();
    let sub = options.subscriber::<[u8]>(&name).unwrap();
    publisher.send_copy(b"one").unwrap();
    publisher.send_copy(b"two").unwrap();
    let ring = offsets::FIRST_HEAD + 64;
    // Sample 0 names slot 0xffff, which does not exist; sample 1's slot says
    // it is u64::MAX bytes long. (The slot headers follow the subscriber
    // table: 1216 + 128 here; a header is the holder word, then the length.)
    poke(&name, ring, &((1u64 << 16) | 0xffff).to_le_bytes());
    let slot_of_one = peek(&name, ring + 8) & 0xffff;
    poke(&name, 1344 + 64 * slot_of_one + 8, &u64::MAX.to_le_bytes());
    let sample = sub.try_recv().unwrap().expect("sample 1, clamped");
    assert_eq!(sample.sequence(), 1);
    assert_eq!(sample.len(), 100, "no longer than the service's largest");
    drop(sample);
    assert_eq!(sub.missed(), 1, "sample 0 skipped");
    assert!(sub.try_recv().unwrap().is_none());
}

#[test]
fn participants_in_one_process_see_each_other_alive_and_get_every_sample() {
    let name = unique_name("one-process");
    let options = ServiceOptions::new().capacity(4).overflow(Overflow::Block);
    let idle = options.subscriber::<u64>(&name).unwrap();
    let a = options.publisher::<u64>(&name).unwrap();
    let b = options.publisher::<u64>(&name).unwrap();
    for n in 0..4 {
        a.send_copy(&n).unwrap();
    }
    // A live subscriber of this very process is not taken for dead (its
    // place's lock is its own, not the publisher's), so the ring is full.
    let stuck = a.loan().unwrap().send_timeout(Duration::from_millis(30));
    assert_eq!(stuck.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(a.subscriber_count().unwrap(), 1);
    drop(idle);
    let sub = options.subscriber::<u64>(&name).unwrap();
    let receiver = std::thread::spawn(move || {
        let mut last = [None::<u64>; 2];
        for _ in 0..200 {
            let sample = sub.recv_timeout(DEADLINE).unwrap();
            let from = sample.publisher_index() as usize;
            assert!(last[from].is_none_or(|l| *sample > l), "in order");
            last[from] = Some(*sample);
        }
        last
    });
    for n in 100..200 {
        for publisher in [&a, &b] {
            let mut sample = publisher.loan().unwrap();
            *sample = n;
            sample.send_timeout(DEADLINE).unwrap();
        }
    }
    assert_eq!(receiver.join().unwrap(), [Some(199), Some(199)]);
}

#[cfg(target_os = "linux")]
#[test]
fn ring_entries_from_far_in_the_future_do_not_hang_a_receive() {
    let name = unique_name("future-ring");
    let options = ServiceOptions::new().max_publishers(1).capacity(4);
    let sub = options.subscriber::<u64>(&name).unwrap();
    // Nothing was sent, yet every entry claims a sample 2^47 - 2 sends
    // ahead: a receive that walks towards it one number at a time never
    // returns.
    let far = ((1u64 << 47) - 1) << 16;
    for i in 0..4 {
        poke(&name, offsets::FIRST_HEAD + 64 + 8 * i, &far.to_le_bytes());
    }
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let got = sub.try_recv().map(|s| s.map(|s| s.sequence()));
        let _ = done.send((got.ok(), sub.missed()));
    });
    let (got, missed) = finished
        .recv_timeout(DEADLINE)
        .expect("try_recv never returned");
    assert_eq!(got, Some(None), "nothing was published");
    assert_eq!(missed, 0, "nothing was overwritten either");
}

#[cfg(target_os = "linux")]
#[test]
fn two_ring_entries_naming_one_slot_never_let_it_be_rewritten_while_read() {
    let name = unique_name("dup-slot");
    let options = ServiceOptions::new()
        .max_publishers(1)
        .max_subscribers(1)
        .capacity(4)
        .max_loans(1)
        .max_borrowed(1);
    let sub = options.subscriber::<u64>(&name).unwrap();
    let first = options.publisher::<u64>(&name).unwrap();
    for n in 10..14 {
        first.send_copy(&n).unwrap(); // sequence n - 10 in slot n - 10
    }
    for _ in 0..3 {
        drop(sub.try_recv().unwrap().unwrap());
    }
    drop(first);
    // Sample 3 now names slot 0 too, as sample 0 does.
    let ring = offsets::FIRST_HEAD + 64;
    poke(&name, ring + 8 * 3, &(4u64 << 16).to_le_bytes());
    let second = options.publisher::<u64>(&name).unwrap();
    for n in 0..3 {
        second.send_copy(&n).unwrap();
    }
    // The next loan must not be slot 0 while sample 3 still names it.
    let mut loan = second.loan_uninit().unwrap();
    let held = sub.try_recv().unwrap().unwrap();
    assert_eq!(held.sequence(), 3);
    let before = *held;
    *loan = 777;
    assert_eq!(*held, before, "a held sample was written over");
    drop(held);
    drop(loan);

    // A subscriber offered one slot twice takes it once: letting one of
    // the two go would free it while the other is read.
    let name = unique_name("dup-hold");
    let options = options.max_borrowed(2);
    let publisher = options.publisher::<u64>(&name).unwrap();
    let sub = options.subscriber::<u64>(&name).unwrap();
    publisher.send_copy(&1).unwrap();
    publisher.send_copy(&2).unwrap();
    let slot_of_first = peek(&name, ring) & 0xffff;
    poke(
        &name,
        ring + 8,
        &((2u64 << 16) | slot_of_first).to_le_bytes(),
    );
    let a = sub.try_recv().unwrap().unwrap();
    let b = sub.try_recv().unwrap();
    assert!(b.is_none(), "the second entry for the same slot is skipped");
    drop(b);
    assert_eq!(sub.missed(), 1);
    drop(a);
}

#[test]
fn bridge_participants_are_marked_and_their_samples_are_known() {
    let name = unique_name("bridge-mark");
    let local = Publisher::<u32>::connect(&name).unwrap();
    let bridge = ServiceOptions::new().bridge();
    let from_network = Publisher::connect_any(&name, &bridge).unwrap();
    let bridge_sub = Subscriber::connect_any(&name, &bridge).unwrap();
    let plain = Subscriber::<u32>::connect(&name).unwrap();

    local.send_copy(&1).unwrap();
    from_network.send_copy(&2u32.to_le_bytes()).unwrap();
    let mut seen = Vec::new();
    while let Some(sample) = bridge_sub.try_recv().unwrap() {
        seen.push((sample.to_vec(), sample.from_bridge()));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            (1u32.to_le_bytes().to_vec(), false),
            (2u32.to_le_bytes().to_vec(), true)
        ]
    );
    let mut values = Vec::new();
    while let Some(sample) = plain.try_recv().unwrap() {
        values.push((*sample, sample.from_bridge()));
    }
    values.sort();
    assert_eq!(
        values,
        [(1, false), (2, true)],
        "typed subscribers read bytes published as any"
    );

    let info = inspect_service(&name).unwrap();
    let bridges = |list: &[memlink::pubsub::ParticipantInfo]| {
        list.iter().map(|p| p.bridge).collect::<Vec<_>>()
    };
    assert_eq!(bridges(&info.publishers), [false, true]);
    assert_eq!(bridges(&info.subscribers), [true, false]);

    // A plain publisher that takes the bridge's place after it left is
    // not a bridge, and neither are its samples.
    let place = info.publishers[1].index;
    drop(from_network);
    let after = Publisher::<u32>::connect(&name).unwrap();
    let info = inspect_service(&name).unwrap();
    assert_eq!(info.publishers[1].index, place, "the freed place is reused");
    assert_eq!(bridges(&info.publishers), [false, false]);
    after.send_copy(&3).unwrap();
    let sample = bridge_sub.try_recv().unwrap().unwrap();
    assert_eq!(&*sample, &3u32.to_le_bytes());
    assert!(!sample.from_bridge());

    // A bytes publisher on a typed service still keeps to its largest.
    let any = Publisher::connect_any(&name, &ServiceOptions::new()).unwrap();
    assert_eq!(any.max_payload(), 4);
    let err = any.loan_slice(5).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains(&name), "{err}");
}
