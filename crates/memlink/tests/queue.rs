//! Work queues across real processes: every message processed exactly once
//! by competing consumer processes, the rule for consumers killed holding
//! a message (redelivered, or counted lost), backpressure, order, and
//! clear errors for bad input.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memlink::queue::{inspect_queue, Consumer, OnConsumerDeath, Producer, QueueOptions};
use memlink::ErrorKind;
use support::{go_together, hear, role, say, unique_name, Child, DEADLINE};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Task {
    producer: u32,
    check: u32,
    seq: u64,
}

impl Task {
    fn new(producer: u32, seq: u64) -> Task {
        Task {
            producer,
            check: (seq as u32).wrapping_mul(2_654_435_761) ^ producer,
            seq,
        }
    }

    fn id(&self) -> String {
        format!("{}:{}", self.producer, self.seq)
    }
}

fn options(rule: &str) -> QueueOptions {
    let rule = match rule {
        "lost" => OnConsumerDeath::CountLost,
        _ => OnConsumerDeath::Redeliver,
    };
    QueueOptions::new().capacity(4).on_consumer_death(rule)
}

/// Not a test: the entry point of the child processes the tests start.
#[test]
#[ignore = "entry point for child processes, run by the other tests"]
fn child_entry() {
    let Some(args) = role() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["consume", name, rule] => {
            // Takes and acknowledges until told to stop (or stdin closes)
            // and nothing more comes; says each message it finished.
            let consumer = options(rule).consumer::<Task>(name).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            std::thread::spawn(move || {
                while hear().is_some_and(|l| l != "stop") {}
                flag.store(true, Ordering::SeqCst);
            });
            say("ready");
            loop {
                match consumer.recv_timeout(Duration::from_millis(100)) {
                    Ok(job) => {
                        assert_eq!(*job, Task::new(job.producer, job.seq), "intact");
                        let line = format!("done {} {}", job.id(), job.redelivered());
                        job.done();
                        say(line);
                    }
                    Err(e) if e.kind() == ErrorKind::Timeout => {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            say("bye");
        }
        ["hold", name, rule] => {
            let consumer = options(rule).consumer::<Task>(name).unwrap();
            say("ready");
            let job = consumer.recv_timeout(DEADLINE).unwrap();
            say(format!("holding {}", job.id()));
            hear(); // killed here, holding the job
            panic!("not killed");
        }
        ["produce", name, id, total] => {
            let id: u32 = id.parse().unwrap();
            let producer = options("redeliver").producer::<Task>(name).unwrap();
            say("ready");
            assert_eq!(hear().as_deref(), Some("go"));
            for seq in 0..total.parse().unwrap() {
                let mut loan = producer.loan_timeout(DEADLINE).unwrap();
                *loan = Task::new(id, seq);
                loan.send();
            }
            say("sent");
            hear(); // finishes, or is killed, here
        }
        ["take_one", name] => {
            let consumer = options("redeliver").consumer::<Task>(name).unwrap();
            say("ready");
            assert_eq!(hear().as_deref(), Some("go"));
            let job = consumer.recv_timeout(DEADLINE).unwrap();
            say(format!("took {}", job.id()));
        }
        _ => panic!("unknown role {args:?}"),
    }
}

/// What the consumers said: every finished id with whether it came
/// redelivered, failing on a duplicate; until `expected` ids are in.
fn collect(consumers: &[Child], expected: usize) -> BTreeMap<String, bool> {
    let mut done = BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    while done.len() < expected {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} messages done",
            done.len()
        );
        for c in consumers {
            while let Some(line) = c.line_within(Duration::from_millis(5)) {
                record(&mut done, &line);
            }
        }
    }
    done
}

fn record(done: &mut BTreeMap<String, bool>, line: &str) {
    let mut words = line.split(' ');
    assert_eq!(words.next(), Some("done"), "{line}");
    let id = words.next().unwrap().to_owned();
    let redelivered = words.next() == Some("true");
    assert!(
        done.insert(id.clone(), redelivered).is_none(),
        "{id} processed twice"
    );
}

/// Tells the consumers to stop, and checks that none finishes a message
/// more (all are in `done` already: one more would be a duplicate).
fn stop(consumers: Vec<Child>, done: &mut BTreeMap<String, bool>) {
    let mut consumers = consumers;
    for c in &mut consumers {
        c.tell("stop");
    }
    for c in consumers {
        loop {
            let line = c.next_line();
            if line == "bye" {
                break;
            }
            record(done, &line);
        }
        c.finish();
    }
}

fn all_ids(producers: &[u32], count: u64) -> BTreeSet<String> {
    producers
        .iter()
        .flat_map(|&p| (0..count).map(move |s| Task::new(p, s).id()))
        .collect()
}

#[test]
fn three_consumer_processes_take_every_message_of_two_producer_processes_exactly_once() {
    let name = unique_name("q-three");
    let per_producer = 2000;
    let consumers: Vec<Child> = (0..3)
        .map(|_| Child::spawn("consume", &[&name, "redeliver"]))
        .collect();
    for c in &consumers {
        c.expect("ready");
    }
    let total = per_producer.to_string();
    let mut producers: Vec<Child> = (0..2)
        .map(|id| Child::spawn("produce", &[&name, &id.to_string(), &total]))
        .collect();
    go_together(&mut producers);
    let mut done = collect(&consumers, 2 * per_producer as usize);
    for p in producers {
        p.expect("sent");
        p.finish();
    }
    stop(consumers, &mut done);
    let ids: BTreeSet<String> = done.keys().cloned().collect();
    assert_eq!(ids, all_ids(&[0, 1], per_producer), "every message, once");
    assert!(
        done.values().all(|&r| !r),
        "nothing redelivered: nobody died"
    );
}

/// A consumer process takes message 9:0 and is killed holding it, while
/// two others consume the rest; the producer (this process, capacity 4)
/// then needs that message's cell again, so the rule must have applied.
fn kill_a_holder(rule: &str) -> (BTreeMap<String, bool>, memlink::queue::QueueInfo) {
    let name = unique_name(&format!("q-kill-{rule}"));
    let producer = options(rule).producer::<Task>(&name).unwrap();
    let holder = Child::spawn("hold", &[&name, rule]);
    holder.expect("ready");
    producer
        .send_copy_timeout(&Task::new(9, 0), DEADLINE)
        .unwrap();
    holder.expect("holding 9:0");
    let consumers: Vec<Child> = (0..2)
        .map(|_| Child::spawn("consume", &[&name, rule]))
        .collect();
    for c in &consumers {
        c.expect("ready");
    }
    let count = 40;
    for seq in 1..4 {
        producer
            .send_copy_timeout(&Task::new(9, seq), DEADLINE)
            .unwrap();
    }
    holder.kill();
    // Seq 4 reuses 9:0's cell: it waits until a survivor (this producer
    // or a consumer) has applied the rule.
    for seq in 4..count {
        producer
            .send_copy_timeout(&Task::new(9, seq), DEADLINE)
            .unwrap();
    }
    let expected = if rule == "lost" { count - 1 } else { count };
    let mut done = collect(&consumers, expected as usize);
    stop(consumers, &mut done);
    (done, inspect_queue(&name).unwrap())
}

#[test]
fn a_consumer_killed_holding_a_message_has_it_redelivered_to_another() {
    let (done, info) = kill_a_holder("redeliver");
    let ids: BTreeSet<String> = done.keys().cloned().collect();
    assert_eq!(
        ids,
        all_ids(&[9], 40),
        "every message, once among survivors"
    );
    let redelivered: Vec<&String> = done.iter().filter(|(_, &r)| r).map(|(id, _)| id).collect();
    assert_eq!(
        redelivered,
        ["9:0"],
        "only the held one comes again, marked"
    );
    assert_eq!((info.redelivered, info.lost), (1, 0));
    assert_eq!((info.waiting, info.in_progress), (0, 0));
}

#[test]
fn a_consumer_killed_holding_a_message_has_it_counted_lost_and_nothing_else() {
    let (done, info) = kill_a_holder("lost");
    let mut expected = all_ids(&[9], 40);
    expected.remove("9:0");
    let ids: BTreeSet<String> = done.keys().cloned().collect();
    assert_eq!(ids, expected, "every other message, once");
    assert!(done.values().all(|&r| !r));
    assert_eq!((info.lost, info.redelivered), (1, 0));
    assert_eq!((info.waiting, info.in_progress), (0, 0));
}

#[test]
fn a_full_queue_says_so_and_a_blocked_send_resumes_when_a_consumer_process_takes() {
    let name = unique_name("q-full");
    let producer = options("redeliver").producer::<Task>(&name).unwrap();
    for seq in 0..4 {
        producer.try_send_copy(&Task::new(1, seq)).unwrap();
    }
    assert!(!producer.has_room());
    let err = producer.try_send_copy(&Task::new(1, 4)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached, "{err}");
    assert!(
        err.to_string().contains("full") && err.to_string().contains(&name),
        "{err}"
    );
    let err = producer
        .send_copy_timeout(&Task::new(1, 4), Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let mut taker = Child::spawn("take_one", &[&name]);
    taker.expect("ready");
    taker.tell("go");
    // Blocks until the child has taken and acknowledged the oldest.
    producer
        .send_copy_timeout(&Task::new(1, 4), DEADLINE)
        .unwrap();
    taker.expect("took 1:0");
    taker.finish();
    assert_eq!(inspect_queue(&name).unwrap().waiting, 4);
}

#[test]
fn one_consumer_takes_each_producers_messages_in_order_and_slices_cross_intact() {
    let name = unique_name("q-order");
    let consumer = Consumer::<Task>::connect(&name).unwrap();
    let a = Producer::<Task>::connect(&name).unwrap();
    let b = Producer::<Task>::connect(&name).unwrap();
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for round in 0..20u64 {
        for seq in 0..3 {
            a.send_copy_timeout(&Task::new(0, round * 3 + seq), DEADLINE)
                .unwrap();
        }
        b.send_copy_timeout(&Task::new(1, round), DEADLINE).unwrap();
        for _ in 0..4 {
            let job = consumer.recv_timeout(DEADLINE).unwrap();
            assert_eq!(job.sequence(), job.seq, "the place's own sequence");
            if let Some(&prev) = last.get(&job.producer) {
                assert!(job.seq > prev, "{} after {prev}", job.seq);
            }
            last.insert(job.producer, job.seq);
        }
    }
    assert!(consumer.try_recv().unwrap().is_none());

    let name = unique_name("q-bytes");
    let options = QueueOptions::new().max_slice_len(300);
    let producer = options.producer::<[u8]>(&name).unwrap();
    let consumer = options.consumer::<[u8]>(&name).unwrap();
    for len in [0usize, 1, 63, 64, 65, 300] {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        producer.send_copy_timeout(&bytes, DEADLINE).unwrap();
        let job = consumer.recv_timeout(DEADLINE).unwrap();
        assert_eq!(&*job, &bytes[..]);
    }
    let err = producer.send_copy(&[0u8; 301]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[test]
fn a_killed_producers_messages_are_still_taken_and_its_place_continues_the_sequence() {
    let name = unique_name("q-producer-killed");
    let consumer = options("redeliver").consumer::<Task>(&name).unwrap();
    let mut producer = Child::spawn("produce", &[&name, "3", "3"]);
    producer.expect("ready");
    producer.tell("go");
    producer.expect("sent");
    producer.kill();
    for seq in 0..3 {
        let job = consumer.recv_timeout(DEADLINE).unwrap();
        assert_eq!((*job, job.sequence()), (Task::new(3, seq), seq));
    }
    let next = options("redeliver").producer::<Task>(&name).unwrap();
    next.send_copy_timeout(&Task::new(4, 0), DEADLINE).unwrap();
    let job = consumer.recv_timeout(DEADLINE).unwrap();
    assert_eq!(
        (job.producer_index(), job.sequence()),
        (0, 3),
        "the place's next number"
    );
}

#[test]
fn inspection_shows_participants_depth_and_counters() {
    let name = unique_name("q-inspect");
    let producer = QueueOptions::new()
        .capacity(8)
        .producer::<u64>(&name)
        .unwrap();
    let consumer = Consumer::<u64>::connect(&name).unwrap();
    for n in 0..3 {
        producer.send_copy(&n).unwrap();
    }
    let held = consumer.try_recv().unwrap().unwrap();
    let info = inspect_queue(&name).unwrap();
    assert_eq!((info.waiting, info.in_progress), (2, 1));
    assert_eq!(
        (info.capacity, info.on_consumer_death),
        (8, OnConsumerDeath::Redeliver)
    );
    assert_eq!(info.producers.len(), 1);
    assert_eq!(info.producers[0].pid, std::process::id());
    assert_eq!(info.producers[0].messages, 3);
    assert_eq!((info.consumers[0].messages, info.consumers[0].done), (1, 0));
    held.done();
    assert_eq!(inspect_queue(&name).unwrap().consumers[0].done, 1);
    let kind = memlink::inspect(&name).unwrap().kind;
    if cfg!(unix) {
        assert_eq!(kind, Some(memlink::ObjectKind::Queue));
    }
}

#[test]
fn bad_settings_types_and_kinds_are_clear_errors() {
    let name = unique_name("q-bad");
    for (options, what) in [
        (QueueOptions::new().capacity(0), "capacity"),
        (QueueOptions::new().max_consumers(0), "max_consumers"),
        (QueueOptions::new().max_producers(65), "max_producers"),
    ] {
        let err = options.producer::<u64>(&name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(
            err.to_string().contains(what) && err.to_string().contains(&name),
            "{err}"
        );
    }
    let _producer = QueueOptions::new()
        .capacity(16)
        .producer::<u64>(&name)
        .unwrap();
    let err = Consumer::<u32>::connect(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Incompatible, "{err}");
    assert!(
        err.to_string().contains("u32") && err.to_string().contains("u64"),
        "{err}"
    );
    let err = QueueOptions::new()
        .capacity(8)
        .consumer::<u64>(&name)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Incompatible, "{err}");
    assert!(
        err.to_string().contains("capacity 8 here, 16 in the queue"),
        "{err}"
    );
    let err = QueueOptions::new()
        .on_consumer_death(OnConsumerDeath::CountLost)
        .consumer::<u64>(&name)
        .unwrap_err();
    assert!(
        err.to_string().contains("count-lost here, redeliver"),
        "{err}"
    );

    let loan = _producer.loan().unwrap();
    let err = _producer.try_send_copy(&1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached, "{err}");
    assert!(err.to_string().contains("loaned already"), "{err}");
    drop(loan);
    _producer.try_send_copy(&1).unwrap();

    // Another kind of object under the name: a pub/sub service.
    let service = unique_name("q-service");
    let _publisher = memlink::pubsub::Publisher::<u64>::connect(&service).unwrap();
    let err = Consumer::<u64>::connect(&service).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKind, "{err}");
    assert!(err.to_string().contains("queue"), "{err}");
    let err = memlink::pubsub::Subscriber::<u64>::connect(&name).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WrongKind | ErrorKind::Incompatible),
        "{err}"
    );
}

#[test]
fn queue_types_are_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Producer<Task>>();
    shared::<Consumer<Task>>();
    shared::<Producer<[u8]>>();
    shared::<Consumer<[u8]>>();
}

#[test]
fn consumers_killed_anywhere_leave_nothing_stuck_and_nothing_done_twice() {
    let name = unique_name("q-churn");
    let producer = options("redeliver").producer::<Task>(&name).unwrap();
    let total = 600u64;
    let steady = Child::spawn("consume", &[&name, "redeliver"]);
    steady.expect("ready");
    let mut done = BTreeMap::new();
    let mut kills = 0u64;
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            for seq in 0..total {
                producer
                    .send_copy_timeout(&Task::new(5, seq), DEADLINE)
                    .unwrap();
            }
        });
        // Consumers that are killed after a varying number of messages:
        // taking, holding, acknowledging or reporting, wherever they are.
        while !sender.is_finished() || kills < 4 {
            let mut victim = Child::spawn("consume", &[&name, "redeliver"]);
            victim.expect("ready");
            for _ in 0..(3 + kills * 7 % 11) {
                if let Some(line) = victim.line_within(Duration::from_millis(20)) {
                    record(&mut done, &line);
                }
            }
            victim.kill_in_place();
            for line in victim.remaining_lines() {
                record(&mut done, &line);
            }
            kills += 1;
            while let Some(line) = steady.line_within(Duration::ZERO) {
                record(&mut done, &line);
            }
        }
        sender.join().unwrap();
    });
    stop(vec![steady], &mut done);
    // Every killed consumer is gone; joining settles what they held.
    let last = options("redeliver").consumer::<Task>(&name).unwrap();
    while let Some(job) = last.try_recv().unwrap() {
        record(
            &mut done,
            &format!("done {} {}", job.id(), job.redelivered()),
        );
    }
    let info = inspect_queue(&name).unwrap();
    assert_eq!((info.waiting, info.in_progress, info.lost), (0, 0, 0));
    let ids: BTreeSet<String> = done.keys().cloned().collect();
    let all = all_ids(&[5], total);
    assert!(ids.is_subset(&all));
    // A victim killed between its acknowledgement and its report finished
    // a message nobody reports: at most one per kill.
    let unreported = all.len() - ids.len();
    assert!(
        unreported as u64 <= kills,
        "{unreported} unreported after {kills} kills"
    );
    eprintln!(
        "{kills} consumers killed; {} redelivered; {unreported} finished unreported",
        info.redelivered
    );
}
