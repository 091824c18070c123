//! Async receive and send across real processes, under tokio's
//! multi-thread runtime and under a second executor
//! (`futures::executor::block_on`): a ping-pong, many tasks awaiting
//! several subscribers at once, a task cancelled while it waits (nothing
//! lost, no waiter left behind), and a send that waits for room; the same
//! for work queues (`Consumer::recv_async`, `Producer::send_copy_async`).
//! Needs the `tokio` and `async-io` features (see Cargo.toml).

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use memlink::pubsub::{inspect_service, Overflow, Publisher, ServiceOptions, Subscriber};
use memlink::queue::{inspect_queue, Consumer, Producer, QueueOptions};
use support::{hear, role, say, unique_name, Child, DEADLINE};

const SERVICES: usize = 4;
const TASKS_PER_SERVICE: usize = 8;
const SAMPLES: u64 = 200;

fn block_options() -> ServiceOptions {
    ServiceOptions::new()
        .overflow(Overflow::Block)
        .capacity(4)
        .max_borrowed(16)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` with the test's deadline.
async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish in time"),
    }
}

/// Waits (polling the shared state, bounded) until `check` holds.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "{what}: not in time");
        std::thread::yield_now();
    }
}

/// Not a test: the entry point of the child processes the tests start.
#[test]
#[ignore = "entry point for child processes, run by the other tests"]
fn child_entry() {
    let Some(args) = role() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        // Answers every ping with a pong, as an async task under tokio.
        ["echo_tokio", ping, pong, count] => {
            let count: u64 = count.parse().unwrap();
            runtime().block_on(async {
                let sub = Subscriber::<u64>::connect(ping).unwrap();
                let publisher = Publisher::<u64>::connect(pong).unwrap();
                say("ready");
                for n in 0..count {
                    let got = *bounded("ping", sub.recv_async()).await.unwrap();
                    assert_eq!(got, n);
                    publisher.send_copy(&(n + 1000)).unwrap();
                }
            });
            say("done");
        }
        // The same with blocking receives.
        ["echo_blocking", ping, pong, count] => {
            let sub = Subscriber::<u64>::connect(ping).unwrap();
            let publisher = Publisher::<u64>::connect(pong).unwrap();
            say("ready");
            for n in 0..count.parse().unwrap() {
                let got = *sub.recv_timeout(DEADLINE).unwrap();
                assert_eq!(got, n);
                publisher.send_copy(&(n + 1000)).unwrap();
            }
            say("done");
        }
        // Publishes SAMPLES to each service once told `go` (under
        // backpressure: tasks must keep up).
        ["publish_all", prefix] => {
            let publishers: Vec<_> = (0..SERVICES)
                .map(|i| {
                    block_options()
                        .publisher::<u64>(&format!("{prefix}-{i}"))
                        .unwrap()
                })
                .collect();
            say("ready");
            assert_eq!(hear().as_deref(), Some("go"));
            for n in 0..SAMPLES {
                for p in &publishers {
                    p.loan_uninit()
                        .map(|mut s| {
                            *s = n;
                            s
                        })
                        .unwrap()
                        .send_timeout(DEADLINE)
                        .unwrap();
                }
            }
            say("sent");
            hear();
        }
        // One publisher that sends VALUE when told `send VALUE`.
        ["publish_on_command", name] => {
            let publisher = Publisher::<u64>::connect(name).unwrap();
            say("ready");
            while let Some(line) = hear() {
                let value = line.strip_prefix("send ").expect("send VALUE");
                publisher.send_copy(&value.parse().unwrap()).unwrap();
                say("sent");
            }
        }
        // A subscriber of a blocking service that takes one sample when
        // told `take`.
        ["take", name] => {
            let sub = block_options().subscriber::<u64>(name).unwrap();
            say("ready");
            while hear().as_deref() == Some("take") {
                let sample = sub.recv_timeout(DEADLINE).unwrap();
                say(format!("took {}", *sample));
            }
        }
        // Pushes COUNT messages onto a queue once told `go`, then waits.
        ["queue_push", name, count] => {
            let producer = Producer::<u64>::connect(name).unwrap();
            say("ready");
            assert_eq!(hear().as_deref(), Some("go"));
            for n in 0..count.parse().unwrap() {
                producer.send_copy_timeout(&n, DEADLINE).unwrap();
            }
            say("sent");
            hear();
        }
        // A queue consumer that takes one message when told `take`.
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

#[test]
fn async_ping_pong_across_processes_under_tokio_multi_thread() {
    let (ping, pong) = (unique_name("async-ping"), unique_name("async-pong"));
    const ROUNDS: u64 = 300;
    runtime().block_on(async {
        let replies = Subscriber::<u64>::connect(&pong).unwrap();
        let publisher = Publisher::<u64>::connect(&ping).unwrap();
        let child = Child::spawn("echo_tokio", &[&ping, &pong, &ROUNDS.to_string()]);
        child.expect("ready");
        for n in 0..ROUNDS {
            publisher.send_copy(&n).unwrap();
            let reply = bounded("pong", replies.recv_async()).await.unwrap();
            assert_eq!(*reply, n + 1000);
        }
        child.expect("done");
        child.finish();
        let info = inspect_service(&pong).unwrap();
        assert_eq!(info.subscribers[0].listening, 0, "no task listens now");
        assert!(!info.subscribers[0].sleeping, "no mark left");
    });
}

#[test]
fn many_tasks_await_several_subscribers_at_once_and_share_every_sample() {
    let prefix = unique_name("async-many");
    let rt = runtime();
    let subs: Vec<Arc<Subscriber<u64>>> = (0..SERVICES)
        .map(|i| {
            Arc::new(
                block_options()
                    .subscriber::<u64>(&format!("{prefix}-{i}"))
                    .unwrap(),
            )
        })
        .collect();
    let got: Arc<Vec<Mutex<Vec<u64>>>> =
        Arc::new((0..SERVICES).map(|_| Mutex::new(Vec::new())).collect());
    let mut child = Child::spawn("publish_all", &[&prefix]);
    child.expect("ready");
    let mut tasks = Vec::new();
    for (i, sub) in subs.iter().enumerate() {
        for _ in 0..TASKS_PER_SERVICE {
            let (sub, got) = (sub.clone(), got.clone());
            tasks.push(rt.spawn(async move {
                loop {
                    let sample = sub.recv_async().await.unwrap();
                    got[i].lock().unwrap().push(*sample);
                }
            }));
        }
    }
    // Every task is asleep (or about to be) on its subscriber.
    for i in 0..SERVICES {
        until("tasks listening", || {
            let info = inspect_service(&format!("{prefix}-{i}")).unwrap();
            info.subscribers[0].listening as usize == TASKS_PER_SERVICE
        });
    }
    child.tell("go");
    child.expect("sent");
    until("every sample received", || {
        got.iter()
            .all(|g| g.lock().unwrap().len() as u64 == SAMPLES)
    });
    // The tasks still wait; cancelling them leaves nothing behind.
    rt.block_on(async {
        for task in tasks {
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
        }
    });
    for (i, g) in got.iter().enumerate() {
        let values: BTreeSet<u64> = g.lock().unwrap().iter().copied().collect();
        assert_eq!(
            values.len() as u64,
            SAMPLES,
            "service {i}: each sample once"
        );
        assert_eq!(values, (0..SAMPLES).collect(), "service {i}: all of them");
        let info = inspect_service(&format!("{prefix}-{i}")).unwrap();
        assert_eq!(info.subscribers[0].listening, 0, "service {i}: no listener");
        assert!(!info.subscribers[0].sleeping, "service {i}: no mark left");
    }
    child.release();
    child.finish();
}

#[test]
fn a_task_cancelled_while_waiting_loses_no_sample_and_leaves_no_waiter() {
    let name = unique_name("async-cancel");
    let rt = runtime();
    let sub = Arc::new(Subscriber::<u64>::connect(&name).unwrap());
    let mut child = Child::spawn("publish_on_command", &[&name]);
    child.expect("ready");
    let listening = || inspect_service(&name).unwrap().subscribers[0].clone();
    for round in 0..3u64 {
        let waiting = {
            let sub = sub.clone();
            rt.spawn(async move { *sub.recv_async().await.unwrap() })
        };
        until("the task sleeps", || {
            let me = listening();
            me.listening == 1 && me.sleeping
        });
        waiting.abort();
        rt.block_on(async {
            assert!(waiting.await.unwrap_err().is_cancelled());
        });
        let me = listening();
        assert_eq!(me.listening, 0, "round {round}: the cancelled task left");
        assert!(!me.sleeping, "round {round}: its mark is cleared");
        // Sent after the cancel: the next receive gets it.
        child.tell(&format!("send {round}"));
        child.expect("sent");
        let got = rt.block_on(bounded("receive", sub.recv_async())).unwrap();
        assert_eq!(*got, round);
    }
    // Cancelled by a timeout in a select, with a sample on its way: the
    // sample stays for the next receive.
    rt.block_on(async {
        let timed_out =
            tokio::time::timeout(std::time::Duration::from_millis(20), sub.recv_async()).await;
        assert!(timed_out.is_err(), "nothing was sent");
    });
    child.tell("send 77");
    child.expect("sent");
    assert_eq!(*sub.try_recv().unwrap().expect("not lost"), 77);
    child.release();
    child.finish();
}

#[test]
fn an_async_send_waits_for_room_under_backpressure() {
    let name = unique_name("async-room");
    let rt = runtime();
    let publisher = Arc::new(block_options().publisher::<u64>(&name).unwrap());
    let mut child = Child::spawn("take", &[&name]);
    child.expect("ready");
    rt.block_on(async {
        for n in 0..4 {
            bounded("send", publisher.send_copy_async(&n))
                .await
                .unwrap();
        }
    });
    let sending = {
        let publisher = publisher.clone();
        rt.spawn(async move { publisher.send_copy_async(&4).await })
    };
    until("the send sleeps", || {
        let me = inspect_service(&name).unwrap().publishers[0].clone();
        me.sleeping && me.listening == 1
    });
    assert!(!sending.is_finished(), "no room yet");
    child.tell("take");
    child.expect("took 0");
    rt.block_on(async { bounded("send", sending).await.unwrap().unwrap() });
    for n in 1..=4 {
        child.tell("take");
        child.expect(&format!("took {n}"));
    }
    let me = inspect_service(&name).unwrap().publishers[0].clone();
    assert_eq!(me.listening, 0);
    assert!(!me.sleeping);
    // A send cancelled while it waits gives its slot back, unsent.
    rt.block_on(async {
        for n in 5..9 {
            publisher.send_copy_async(&n).await.unwrap();
        }
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            publisher.send_copy_async(&99),
        )
        .await;
        assert!(cancelled.is_err(), "no room");
    });
    for n in 5..9 {
        child.tell("take");
        child.expect(&format!("took {n}"));
    }
    publisher.send_copy(&9).unwrap();
    child.tell("take");
    child.expect("took 9");
    child.release();
    child.finish();
}

#[test]
fn async_receive_works_under_a_second_executor() {
    let (ping, pong) = (unique_name("async-fx-ping"), unique_name("async-fx-pong"));
    const ROUNDS: u64 = 200;
    let replies = Subscriber::<u64>::connect(&pong).unwrap();
    let publisher = Publisher::<u64>::connect(&ping).unwrap();
    let child = Child::spawn("echo_blocking", &[&ping, &pong, &ROUNDS.to_string()]);
    child.expect("ready");
    futures_executor::block_on(async {
        for n in 0..ROUNDS {
            publisher.send_copy(&n).unwrap();
            let reply = replies.recv_async().await.unwrap();
            assert_eq!(*reply, n + 1000);
        }
    });
    child.expect("done");
    child.finish();
    // Several tasks on one subscriber under the same executor, one sample
    // each (held together: room for three).
    let shared = unique_name("async-fx-shared");
    let subscriber = ServiceOptions::new()
        .max_borrowed(3)
        .subscriber::<u64>(&shared)
        .unwrap();
    let mut feeder = Child::spawn("publish_on_command", &[&shared]);
    feeder.expect("ready");
    let waiters = async {
        let (a, b, c) = futures_join3(
            subscriber.recv_async(),
            subscriber.recv_async(),
            subscriber.recv_async(),
        )
        .await;
        let mut values = vec![*a.unwrap(), *b.unwrap(), *c.unwrap()];
        values.sort_unstable();
        values
    };
    let feed = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| futures_executor::block_on(waiters));
        until("three tasks listen", || {
            inspect_service(&shared).unwrap().subscribers[0].listening == 3
        });
        for v in [10, 11, 12] {
            feeder.tell(&format!("send {v}"));
            feeder.expect("sent");
        }
        waiting.join().unwrap()
    });
    assert_eq!(feed, vec![10, 11, 12]);
    feeder.release();
    feeder.finish();
}

#[test]
fn many_tasks_await_queue_consumers_and_take_every_message_once() {
    const MESSAGES: u64 = 500;
    const TASKS: usize = 6;
    let name = unique_name("async-queue");
    let rt = runtime();
    // Two consumers of this process, three tasks on each.
    let consumers: Vec<Arc<Consumer<u64>>> = (0..2)
        .map(|_| Arc::new(Consumer::<u64>::connect(&name).unwrap()))
        .collect();
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut child = Child::spawn("queue_push", &[&name, &MESSAGES.to_string()]);
    child.expect("ready");
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (consumer, got) = (consumers[t % 2].clone(), got.clone());
            rt.spawn(async move {
                loop {
                    let job = consumer.recv_async().await.unwrap();
                    got.lock().unwrap().push(*job);
                }
            })
        })
        .collect();
    until("tasks listening", || {
        let info = inspect_queue(&name).unwrap();
        info.consumers.iter().map(|c| c.listening).sum::<u32>() as usize == TASKS
    });
    child.tell("go");
    child.expect("sent");
    until("every message taken", || {
        got.lock().unwrap().len() as u64 >= MESSAGES
    });
    rt.block_on(async {
        for task in tasks {
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
        }
    });
    let mut values = got.lock().unwrap().clone();
    values.sort_unstable();
    assert_eq!(
        values,
        (0..MESSAGES).collect::<Vec<_>>(),
        "each exactly once"
    );
    let info = inspect_queue(&name).unwrap();
    assert_eq!((info.waiting, info.in_progress), (0, 0));
    for c in &info.consumers {
        assert_eq!(c.listening, 0, "consumer {}: no listener left", c.index);
        assert!(!c.sleeping, "consumer {}: no mark left", c.index);
    }
    child.release();
    child.finish();
}

#[test]
fn an_async_queue_send_waits_for_room_and_a_cancelled_one_sends_nothing() {
    let name = unique_name("async-queue-room");
    let rt = runtime();
    let producer = Arc::new(
        QueueOptions::new()
            .capacity(2)
            .producer::<u64>(&name)
            .unwrap(),
    );
    let mut child = Child::spawn("queue_take", &[&name]);
    child.expect("ready");
    rt.block_on(async {
        for n in 0..2 {
            bounded("send", producer.send_copy_async(&n)).await.unwrap();
        }
    });
    let sending = {
        let producer = producer.clone();
        rt.spawn(async move { producer.send_copy_async(&2).await })
    };
    until("the send sleeps", || {
        let me = inspect_queue(&name).unwrap().producers[0].clone();
        me.sleeping && me.listening == 1
    });
    assert!(!sending.is_finished(), "no room yet");
    child.tell("take");
    child.expect("took 0");
    rt.block_on(async { bounded("send", sending).await.unwrap().unwrap() });
    // Full again (1 and 2 wait): a send cancelled while it waits leaves
    // no loan out and sends nothing.
    rt.block_on(async {
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            producer.send_copy_async(&99),
        )
        .await;
        assert!(cancelled.is_err(), "no room");
    });
    let me = inspect_queue(&name).unwrap().producers[0].clone();
    assert_eq!(me.listening, 0, "the cancelled send left");
    for n in 1..=2 {
        child.tell("take");
        child.expect(&format!("took {n}"));
    }
    producer.try_send_copy(&3).unwrap();
    child.tell("take");
    child.expect("took 3");
    assert_eq!(
        inspect_queue(&name).unwrap().waiting,
        0,
        "99 was never sent"
    );
    child.release();
    child.finish();
}

#[test]
fn async_queue_receive_works_under_a_second_executor() {
    const MESSAGES: u64 = 200;
    let name = unique_name("async-fx-queue");
    let consumer = Consumer::<u64>::connect(&name).unwrap();
    let mut child = Child::spawn("queue_push", &[&name, &MESSAGES.to_string()]);
    child.expect("ready");
    child.tell("go");
    let got = futures_executor::block_on(async {
        let mut got = Vec::new();
        for _ in 0..MESSAGES {
            got.push(*consumer.recv_async().await.unwrap());
        }
        got
    });
    // One producer, one consumer: in order.
    assert_eq!(got, (0..MESSAGES).collect::<Vec<_>>());
    child.expect("sent");
    child.release();
    child.finish();
}

/// Polls three futures together until all are done (a join without a
/// dependency for it).
async fn futures_join3<A, B, C>(a: A, b: B, c: C) -> (A::Output, B::Output, C::Output)
where
    A: std::future::Future,
    B: std::future::Future,
    C: std::future::Future,
{
    use std::task::Poll;
    let (mut a, mut b, mut c) = (std::pin::pin!(a), std::pin::pin!(b), std::pin::pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if rc.is_none() {
            if let Poll::Ready(v) = c.as_mut().poll(cx) {
                rc = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() && rc.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (ra.unwrap(), rb.unwrap(), rc.unwrap())
}
