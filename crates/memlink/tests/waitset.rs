//! Waiting on many participants at once, across real processes: a wait
//! set over eight subscribers wakes for each and says which, times out
//! when idle and leaves no sleeping mark behind, wakes a publisher blocked
//! on backpressure, mixes subscribers with work-queue consumers and
//! producers, and refuses members past the platform's limit.

mod support;

use std::time::{Duration, Instant};

use memlink::pubsub::{inspect_service, Overflow, Publisher, ServiceOptions, Subscriber};
use memlink::queue::{Consumer, Producer, QueueOptions};
use memlink::wait::WaitSet;
use memlink::ErrorKind;
use support::{hear, role, say, unique_name, Child, DEADLINE};

const SERVICES: usize = 8;

/// Not a test: the entry point of the child processes the tests start.
#[test]
#[ignore = "entry point for child processes, run by the other tests"]
fn child_entry() {
    let Some(args) = role() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        // Publishes to service `i` each time it is told `send i VALUE`;
        // told `wake i VALUE`, first waits until the subscriber there
        // sleeps (its mark is set), so the send must wake it.
        ["publish_each", prefix] => {
            let publishers: Vec<_> = (0..SERVICES)
                .map(|i| Publisher::<u64>::connect(&format!("{prefix}-{i}")).unwrap())
                .collect();
            say("ready");
            while let Some(line) = hear() {
                let words: Vec<&str> = line.split(' ').collect();
                let [command @ ("send" | "wake"), i, value] = words[..] else {
                    panic!("not a command: {line}")
                };
                let i: usize = i.parse().unwrap();
                if command == "wake" {
                    let name = format!("{prefix}-{i}");
                    let start = Instant::now();
                    while !inspect_service(&name).unwrap().subscribers[0].sleeping {
                        assert!(start.elapsed() < DEADLINE, "{name} never slept");
                        std::thread::yield_now();
                    }
                }
                publishers[i].send_copy(&value.parse().unwrap()).unwrap();
                say("sent");
            }
        }
        // A subscriber of a blocking service that takes one sample each
        // time it is told `take`.
        ["take", name] => {
            let options = ServiceOptions::new().overflow(Overflow::Block).capacity(2);
            let sub = options.subscriber::<u64>(name).unwrap();
            say("ready");
            while hear().as_deref() == Some("take") {
                let sample = sub.recv_timeout(DEADLINE).unwrap();
                say(format!("took {}", *sample));
            }
        }
        // Pushes VALUE onto queue NAME each time it is told `push NAME VALUE`.
        ["push"] => {
            say("ready");
            while let Some(line) = hear() {
                let words: Vec<&str> = line.split(' ').collect();
                let ["push", name, value] = words[..] else {
                    panic!("not a command: {line}")
                };
                Producer::<u64>::connect(name)
                    .unwrap()
                    .send_copy_timeout(&value.parse().unwrap(), DEADLINE)
                    .unwrap();
                say("pushed");
            }
        }
        // Takes one message from queue NAME each time it is told `take`.
        ["queue_take", name] => {
            let consumer = Consumer::<u64>::connect(name).unwrap();
            say("ready");
            while hear().as_deref() == Some("take") {
                let job = consumer.recv_timeout(DEADLINE).unwrap();
                say(format!("took {}", *job));
            }
        }
        _ => panic!("unknown role {args:?}"),
    }
}

fn subscribers(prefix: &str) -> Vec<Subscriber<u64>> {
    (0..SERVICES)
        .map(|i| Subscriber::<u64>::connect(&format!("{prefix}-{i}")).unwrap())
        .collect()
}

#[test]
fn a_wait_set_over_eight_subscribers_wakes_for_each_and_says_which() {
    let prefix = unique_name("waitset-each");
    let subs = subscribers(&prefix);
    let mut set = WaitSet::new();
    let indices: Vec<usize> = subs.iter().map(|s| set.add(s).unwrap()).collect();
    assert_eq!(indices, (0..SERVICES).collect::<Vec<_>>());
    let mut child = Child::spawn("publish_each", &[&prefix]);
    child.expect("ready");
    // Out of order, each one twice; the child sends only once the set
    // sleeps, so every member wakes it from its sleep.
    let order = [5, 0, 7, 2, 2, 6, 1, 3, 4, 5, 0, 7, 6, 1, 3, 4];
    for (n, &i) in order.iter().enumerate() {
        assert!(set.ready().is_empty(), "nothing is ready before the send");
        child.tell(&format!("wake {i} {n}"));
        let ready = set.wait_timeout(DEADLINE).unwrap();
        assert_eq!(ready, vec![i], "only service {i} has a sample");
        child.expect("sent");
        let sample = subs[i].try_recv().unwrap().expect("the set said so");
        assert_eq!(*sample, n as u64);
    }
    // Two ready at once: both reported.
    child.tell("send 1 100");
    child.expect("sent");
    child.tell("send 6 101");
    child.expect("sent");
    assert_eq!(set.wait_timeout(DEADLINE).unwrap(), vec![1, 6]);
    // A wait set leaves no sleeping mark when it returns.
    for i in 0..SERVICES {
        let info = inspect_service(&format!("{prefix}-{i}")).unwrap();
        assert!(!info.subscribers[0].sleeping, "service {i}: mark cleared");
    }
    child.release();
    child.finish();
}

#[test]
fn an_idle_wait_set_times_out_and_leaves_no_sleeping_mark() {
    let prefix = unique_name("waitset-idle");
    let subs = subscribers(&prefix);
    // Publishers exist (so that the wait is for a sample that may come)
    // but never send.
    let mut child = Child::spawn("publish_each", &[&prefix]);
    child.expect("ready");
    let mut set = WaitSet::new();
    for s in &subs {
        set.add(s).unwrap();
    }
    let timeout = Duration::from_millis(120);
    let start = Instant::now();
    let ready = set.wait_timeout(timeout).unwrap();
    let waited = start.elapsed();
    assert!(ready.is_empty(), "nothing was sent, {ready:?} said ready");
    assert!(waited >= timeout, "returned early, after {waited:?}");
    assert!(
        waited < DEADLINE,
        "took {waited:?} for a {timeout:?} timeout"
    );
    for i in 0..SERVICES {
        let info = inspect_service(&format!("{prefix}-{i}")).unwrap();
        assert!(!info.subscribers[0].sleeping, "service {i}: mark cleared");
    }
    // An empty set returns at once, with nothing.
    assert!(WaitSet::new().wait_timeout(DEADLINE).unwrap().is_empty());
    child.release();
    child.finish();
}

#[test]
fn a_publisher_blocked_on_backpressure_is_woken_in_a_wait_set() {
    let name = unique_name("waitset-room");
    let options = ServiceOptions::new().overflow(Overflow::Block).capacity(2);
    let publisher = options.publisher::<u64>(&name).unwrap();
    let idle = Subscriber::<u64>::connect(&unique_name("waitset-other")).unwrap();
    let mut child = Child::spawn("take", &[&name]);
    child.expect("ready");
    let mut set = WaitSet::new();
    let (room, other) = (set.add(&publisher).unwrap(), set.add(&idle).unwrap());
    assert_eq!(set.ready(), vec![room], "room for two");
    publisher.send_copy(&1).unwrap();
    publisher.send_copy(&2).unwrap();
    assert!(set.ready().is_empty(), "the ring is full");
    child.tell("take");
    assert_eq!(set.wait_timeout(DEADLINE).unwrap(), vec![room]);
    child.expect("took 1");
    publisher.send_copy(&3).unwrap();
    assert!(set
        .wait_timeout(Duration::from_millis(30))
        .unwrap()
        .is_empty());
    let _ = other;
    child.release();
    child.finish();
}

#[test]
fn a_wait_set_mixes_subscribers_queue_consumers_and_a_full_producer() {
    let (jobs_a, jobs_b) = (unique_name("waitset-qa"), unique_name("waitset-qb"));
    let (full, samples) = (unique_name("waitset-qfull"), unique_name("waitset-qsub"));
    let a = Consumer::<u64>::connect(&jobs_a).unwrap();
    let b = Consumer::<u64>::connect(&jobs_b).unwrap();
    let sub = Subscriber::<u64>::connect(&samples).unwrap();
    let producer = QueueOptions::new()
        .capacity(1)
        .producer::<u64>(&full)
        .unwrap();
    producer.send_copy(&0).unwrap();
    let mut pusher = Child::spawn("push", &[]);
    let mut taker = Child::spawn("queue_take", &[&full]);
    pusher.expect("ready");
    taker.expect("ready");
    let mut set = WaitSet::new();
    let ia = set.add(&a).unwrap();
    let ib = set.add(&b).unwrap();
    let is = set.add(&sub).unwrap();
    let ip = set.add(&producer).unwrap();
    assert!(
        set.ready().is_empty(),
        "nothing yet, and the producer is full"
    );
    pusher.tell(&format!("push {jobs_b} 7"));
    assert_eq!(set.wait_timeout(DEADLINE).unwrap(), vec![ib]);
    pusher.expect("pushed");
    assert_eq!(*b.try_recv().unwrap().unwrap(), 7);
    taker.tell("take");
    assert_eq!(set.wait_timeout(DEADLINE).unwrap(), vec![ip], "room again");
    taker.expect("took 0");
    producer.send_copy(&1).unwrap();
    pusher.tell(&format!("push {jobs_a} 8"));
    assert_eq!(set.wait_timeout(DEADLINE).unwrap(), vec![ia]);
    pusher.expect("pushed");
    assert_eq!(*a.try_recv().unwrap().unwrap(), 8);
    assert!(set
        .wait_timeout(Duration::from_millis(30))
        .unwrap()
        .is_empty());
    let _ = is;
    pusher.release();
    pusher.finish();
    taker.tell("take");
    taker.expect("took 1");
    taker.release();
    taker.finish();
}

#[test]
fn a_wait_set_refuses_members_past_the_platform_limit_with_the_reason() {
    let name = unique_name("waitset-limit");
    let sub = Subscriber::<u64>::connect(&name).unwrap();
    let mut set = WaitSet::new();
    let mut added = 0;
    let err = loop {
        match set.add(&sub) {
            Ok(i) => {
                assert_eq!(i, added);
                added += 1;
                assert!(added <= 1024, "no limit");
            }
            Err(e) => break e,
        }
    };
    assert!(added == 64 || added == 128, "limit {added}");
    assert_eq!(err.kind(), ErrorKind::LimitReached);
    assert!(err.to_string().contains(&name), "{err}");
    assert!(err.to_string().contains("at most"), "{err}");
    // The same participant many times over is still one to wait on.
    Publisher::<u64>::connect(&name)
        .unwrap()
        .send_copy(&1)
        .unwrap();
    assert_eq!(set.wait_timeout(DEADLINE).unwrap().len(), added);
}
