//! Request/response across real processes: clients get exactly their own
//! answers, streams arrive whole and in order, a server killed mid-request
//! is reported to its clients in bounded time, a client killed with
//! requests in flight gives every channel back, one server per service,
//! async waits, wait sets, and clear errors for bad input.

mod support;

use std::time::{Duration, Instant};

use memlink::reqresp::{inspect_rpc, Client, RpcOptions, Server};
use memlink::wait::WaitSet;
use memlink::ErrorKind;
use support::{go_together, hear, role, say, unique_name, Child, DEADLINE};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Ask {
    client: u32,
    seq: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Answer {
    client: u32,
    seq: u32,
    value: u64,
}

fn answer(ask: &Ask) -> Answer {
    Answer {
        client: ask.client,
        seq: ask.seq,
        value: u64::from(ask.seq).wrapping_mul(2_654_435_761) ^ u64::from(ask.client),
    }
}

fn options() -> RpcOptions {
    RpcOptions::new().max_clients(8).max_in_flight(8)
}

/// Not a test: the entry point of the child processes the tests start.
#[test]
#[ignore = "entry point for child processes, run by the other tests"]
fn child_entry() {
    let Some(args) = role() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["client", name, id, total] => {
            // Keeps 8 requests in flight; checks every answer is its own.
            let id: u32 = id.parse().unwrap();
            let total: u32 = total.parse().unwrap();
            let client = options().client::<Ask, Answer>(name).unwrap();
            say("ready");
            assert_eq!(hear().as_deref(), Some("go"));
            let mut pending = std::collections::VecDeque::new();
            let mut next = 0;
            let mut checked = 0;
            while checked < total {
                while next < total && pending.len() < 8 {
                    let ask = Ask {
                        client: id,
                        seq: next,
                    };
                    let p = client.send_copy_timeout(&ask, DEADLINE).unwrap();
                    pending.push_back((ask, p));
                    next += 1;
                }
                let (ask, mut p) = pending.pop_front().unwrap();
                let got = *p.recv_timeout(DEADLINE).unwrap().expect("one answer");
                assert_eq!(got, answer(&ask), "client {id} got another's answer");
                assert!(p.recv_timeout(DEADLINE).unwrap().is_none(), "then the end");
                checked += 1;
            }
            say(format!("ok {checked}"));
        }
        ["stream_server", name, count] => {
            let count: u64 = count.parse().unwrap();
            let server = RpcOptions::new()
                .max_responses(4)
                .server::<u64, u64>(name)
                .unwrap();
            say("ready");
            let mut request = server.recv_timeout(DEADLINE).unwrap();
            let base = *request;
            for i in 0..count {
                request.send_copy_timeout(&(base + i), DEADLINE).unwrap();
            }
            request.end();
            say("streamed");
            hear();
        }
        ["hang_server", name, partial] => {
            // Takes one request, answers part of it, and is killed.
            let server = Server::<u64, u64>::connect(name).unwrap();
            say("ready");
            let mut request = server.recv_timeout(DEADLINE).unwrap();
            for i in 0..partial.parse().unwrap() {
                request.send_copy(&i).unwrap();
            }
            say("took");
            hear();
            panic!("not killed");
        }
        ["hold_server", name] => {
            let _server = Server::<u64, u64>::connect(name).unwrap();
            say("ready");
            hear();
        }
        ["flood_client", name] => {
            // Ten requests in flight, then killed.
            let client = flood_options().client::<u64, u64>(name).unwrap();
            let pending: Vec<_> = (0..10).map(|i| client.try_send_copy(&i).unwrap()).collect();
            say("sent");
            hear();
            drop(pending);
            panic!("not killed");
        }
        _ => panic!("unknown role {args:?}"),
    }
}

fn flood_options() -> RpcOptions {
    RpcOptions::new()
        .max_clients(1)
        .max_in_flight(10)
        .max_responses(2)
}

#[test]
fn four_clients_each_get_exactly_their_own_answers() {
    let name = unique_name("rpc-four");
    let server = options().server::<Ask, Answer>(&name).unwrap();
    let mut clients: Vec<Child> = (0..4)
        .map(|i| Child::spawn("client", &[&name, &i.to_string(), "1000"]))
        .collect();
    go_together(&mut clients);
    // Answers out of order: up to three requests held, answered newest
    // first, so routing (not order) is what gets them home.
    let deadline = Instant::now() + 4 * DEADLINE;
    let mut answered = 0;
    let mut held = Vec::new();
    while answered < 4000 {
        assert!(
            Instant::now() < deadline,
            "only {answered} answered in time"
        );
        match server.recv_timeout(Duration::from_millis(1)) {
            Ok(request) => held.push(request),
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => panic!("{e}"),
        }
        if held.len() >= 3 || !held.is_empty() && server.in_flight() <= held.len() as u64 {
            while let Some(request) = held.pop() {
                let a = answer(&request);
                request.respond(&a).unwrap();
                answered += 1;
            }
        }
    }
    for client in &clients {
        client.expect("ok 1000");
    }
    for client in clients {
        client.finish();
    }
    let info = inspect_rpc(&name).unwrap();
    assert_eq!(info.in_flight, 0);
    assert_eq!(info.server.unwrap().requests, 4000);
}

#[test]
fn a_streamed_response_arrives_whole_and_in_order() {
    let name = unique_name("rpc-stream");
    let mut server = Child::spawn("stream_server", &[&name, "1000"]);
    server.expect("ready");
    let client = RpcOptions::new()
        .max_responses(4)
        .client::<u64, u64>(&name)
        .unwrap();
    let mut pending = client.send_copy(&5000).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while let Some(r) = pending.recv_timeout(DEADLINE).unwrap() {
        got.push(*r);
        assert!(Instant::now() < deadline);
    }
    assert!(pending.is_ended());
    assert_eq!(got, (5000..6000).collect::<Vec<u64>>());
    server.expect("streamed");
    server.release();
    server.finish();
}

#[test]
fn a_server_killed_mid_request_is_reported_to_its_clients_promptly() {
    let name = unique_name("rpc-killsrv");
    let mut server = Child::spawn("hang_server", &[&name, "2"]);
    server.expect("ready");
    let client = Client::<u64, u64>::connect(&name).unwrap();
    let mut taken = client.send_copy(&1).unwrap();
    server.expect("took");
    let untaken = client.send_copy(&2).unwrap();
    // The two responses sent before the death are delivered.
    assert_eq!(*taken.recv_timeout(DEADLINE).unwrap().unwrap(), 0);
    assert_eq!(*taken.recv_timeout(DEADLINE).unwrap().unwrap(), 1);
    std::thread::scope(|s| {
        // A thread already asleep in recv when the server dies: woken.
        let blocked = s.spawn(move || {
            let mut untaken = untaken;
            let e = untaken.recv_timeout(DEADLINE).unwrap_err();
            (e.kind(), Instant::now())
        });
        // Its wait has begun once it sleeps; an answer cannot come, so
        // killing at any moment is fine.
        let killed_at = Instant::now();
        server.kill_in_place();
        let e = taken.recv_timeout(DEADLINE).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}");
        assert!(e.to_string().contains("the server is gone"), "{e}");
        assert!(e.to_string().contains(&name), "{e}");
        let (kind, at) = blocked.join().unwrap();
        assert_eq!(kind, ErrorKind::PeerGone);
        // Bounded: the liveness look comes every 50 ms of sleep.
        assert!(
            at.duration_since(killed_at) < Duration::from_secs(2),
            "took {:?}",
            at.duration_since(killed_at)
        );
    });
    drop(taken);
    // Sending with the server dead: refused, clearly.
    let e = client.send_copy(&3).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}");
    // A new server can take over; the client works with it.
    let server = Server::<u64, u64>::connect(&name).unwrap();
    let mut pending = client.send_copy_timeout(&4, DEADLINE).unwrap();
    server.recv_timeout(DEADLINE).unwrap().respond(&40).unwrap();
    assert_eq!(*pending.recv_timeout(DEADLINE).unwrap().unwrap(), 40);
    drop(pending);
    // The request given up on is ended by the server's next look.
    assert!(server.try_recv().unwrap().is_none());
    // Every channel came back (the dead server's one was ended by the new).
    let all: Vec<_> = (0..client.max_in_flight())
        .map(|i| client.try_send_copy(&u64::from(i)).unwrap())
        .collect();
    assert_eq!(all.len(), 8);
}

#[test]
fn a_server_that_closes_fails_pending_requests_at_once() {
    let name = unique_name("rpc-closesrv");
    let server = Server::<u64, u64>::connect(&name).unwrap();
    let client = Client::<u64, u64>::connect(&name).unwrap();
    let mut pending = client.send_copy(&1).unwrap();
    drop(server);
    let e = pending.recv_timeout(DEADLINE).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}");
}

#[test]
fn a_client_killed_with_requests_in_flight_gives_every_slot_back() {
    let name = unique_name("rpc-killcli");
    let server = flood_options().server::<u64, u64>(&name).unwrap();
    for cycle in 0..100u32 {
        let mut child = Child::spawn("flood_client", &[&name]);
        child.expect("sent");
        // Some requests taken before the death, the rest after.
        let before = cycle % 11;
        let mut held = Vec::new();
        for _ in 0..before {
            held.push(server.recv_timeout(DEADLINE).unwrap());
        }
        // Some answered before the death too (they sit unread).
        if let Some(first) = held.pop() {
            first.respond(&1).unwrap();
        }
        child.kill_in_place();
        let started = Instant::now();
        // Answers to the dead: more than its rings hold, none may hang.
        for mut request in held {
            for i in 0..3 {
                request.send_copy(&i).unwrap();
            }
            assert!(!request.is_wanted());
        }
        let mut rest = 0;
        while server.in_flight() > 0 {
            assert!(started.elapsed() < DEADLINE, "cycle {cycle}: stuck");
            if let Ok(request) = server.recv_timeout(Duration::from_millis(10)) {
                request.respond(&2).unwrap();
                rest += 1;
            }
        }
        assert_eq!(
            rest + before,
            10,
            "cycle {cycle}: every request delivered once"
        );
        let info = inspect_rpc(&name).unwrap();
        assert_eq!(info.in_flight, 0, "cycle {cycle}");
        assert!(info.clients.is_empty(), "cycle {cycle}: {info:?}");
    }
    // The one client place and all its channels are free.
    let client = flood_options().client::<u64, u64>(&name).unwrap();
    let all: Vec<_> = (0..10).map(|i| client.try_send_copy(&i).unwrap()).collect();
    assert_eq!(
        client.try_send_copy(&10).unwrap_err().kind(),
        ErrorKind::LimitReached
    );
    assert_eq!(server.in_flight(), 10);
    drop(all);
}

#[test]
fn a_second_server_is_refused_with_the_service_named() {
    let name = unique_name("rpc-second");
    let mut first = Child::spawn("hold_server", &[&name]);
    first.expect("ready");
    let e = Server::<u64, u64>::connect(&name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    assert!(e.to_string().contains(&name), "{e}");
    assert!(e.to_string().contains("one server per service"), "{e}");
    assert!(e.to_string().contains(&first.pid().to_string()), "{e}");
    let info = inspect_rpc(&name).unwrap();
    assert_eq!(info.server.unwrap().pid, first.pid());
    first.kill_in_place();
    // The kernel freed its place: a server may connect now.
    let _server = Server::<u64, u64>::connect(&name).unwrap();
}

#[test]
fn backpressure_and_giving_up() {
    let name = unique_name("rpc-backpressure");
    let opts = RpcOptions::new().max_in_flight(2);
    let server = opts.server::<u64, u64>(&name).unwrap();
    let client = opts.client::<u64, u64>(&name).unwrap();
    let a = client.send_copy(&1).unwrap();
    let mut b = client.send_copy(&2).unwrap();
    let e = client.try_send_copy(&3).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitReached, "{e}");
    let e = client
        .send_copy_timeout(&3, Duration::from_millis(20))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // Giving a request up does not free its channel until the server ends
    // it: the server may still be reading it.
    drop(a);
    assert_eq!(
        client.try_send_copy(&3).unwrap_err().kind(),
        ErrorKind::LimitReached
    );
    // The server ends a request given up on without handing it out.
    let second = server.recv_timeout(DEADLINE).unwrap();
    assert_eq!(*second, 2);
    let c = client.try_send_copy(&3).unwrap();
    let mut third = server.recv_timeout(DEADLINE).unwrap();
    assert_eq!(*third, 3);
    assert!(third.is_wanted());
    drop(c); // given up after the server took it: answers are dropped
    assert!(!third.is_wanted());
    for i in 0..10 {
        third.send_copy(&i).unwrap(); // more than the ring holds: no wait
    }
    drop(third);
    second.respond(&20).unwrap();
    assert_eq!(*b.recv_timeout(DEADLINE).unwrap().unwrap(), 20);
    assert!(b.recv().unwrap().is_none());
    drop(b);
    let mut d = client.try_send_copy(&4).unwrap();
    server.recv_timeout(DEADLINE).unwrap().respond(&40).unwrap();
    assert_eq!(*d.recv_timeout(DEADLINE).unwrap().unwrap(), 40);
    assert!(d.recv().unwrap().is_none());
    drop(d);
    // A blocked sender is woken when a channel frees.
    std::thread::scope(|s| {
        let mut x = client.send_copy(&4).unwrap();
        let _y = client.send_copy(&5).unwrap();
        let sender = s.spawn(|| client.send_copy_timeout(&6, DEADLINE).map(|_| 6).unwrap());
        let one = server.recv_timeout(DEADLINE).unwrap();
        let other = server.recv_timeout(DEADLINE).unwrap();
        let (for_x, _for_y) = if *one == 4 {
            (one, other)
        } else {
            (other, one)
        };
        for_x.end();
        // The end read, the channel is free: the waiting sender goes on.
        assert!(x.recv_timeout(DEADLINE).unwrap().is_none());
        assert_eq!(sender.join().unwrap(), 6);
    });
}

#[test]
fn slices_and_loans_both_ways() {
    let name = unique_name("rpc-slices");
    let opts = RpcOptions::new().max_request_len(64).max_response_len(16);
    let server = opts.server::<[u8], [u32]>(&name).unwrap();
    let client = opts.client::<[u8], [u32]>(&name).unwrap();
    let mut loan = client.loan_slice(5).unwrap();
    loan.copy_from_slice(b"hello");
    let mut pending = loan.send().unwrap();
    let mut request = server.recv_timeout(DEADLINE).unwrap();
    assert_eq!(&*request, b"hello");
    let mut out = request.loan_slice(request.len()).unwrap();
    for (o, b) in out.iter_mut().zip(b"hello") {
        *o = u32::from(*b) * 2;
    }
    out.send();
    request.end();
    let r = pending.recv_timeout(DEADLINE).unwrap().unwrap();
    assert_eq!(&*r, &[208, 202, 216, 216, 222]);
    drop(r);
    assert!(pending.recv().unwrap().is_none());
    // Too long, both ways: clear errors naming the service.
    let e = client.send_copy(&[0u8; 65]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(
        e.to_string().contains(&name) && e.to_string().contains("65 bytes"),
        "{e}"
    );
    let _pending = client.send_copy(b"x").unwrap();
    let mut request = server.recv_timeout(DEADLINE).unwrap();
    let e = request.send_copy(&[0u32; 17]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn a_wait_set_wakes_for_a_request_and_for_a_response() {
    let name = unique_name("rpc-waitset");
    let mut child = Child::spawn("stream_server", &[&name, "1"]);
    child.expect("ready");
    let client = Client::<u64, u64>::connect(&name).unwrap();
    let mut pending = client.send_copy(&7).unwrap();
    {
        let mut set = WaitSet::new();
        let i = set.add(&pending).unwrap();
        let j = set.add(&client).unwrap();
        let ready = set.wait_timeout(DEADLINE).unwrap();
        assert!(ready.contains(&i) || ready.contains(&j), "{ready:?}");
    }
    assert_eq!(*pending.recv_timeout(DEADLINE).unwrap().unwrap(), 7);
    assert!(pending.recv_timeout(DEADLINE).unwrap().is_none());
    child.release();
    child.finish();

    let name = unique_name("rpc-waitset-server");
    let server = Server::<u64, u64>::connect(&name).unwrap();
    let mut set = WaitSet::new();
    let i = set.add(&server).unwrap();
    assert!(set
        .wait_timeout(Duration::from_millis(20))
        .unwrap()
        .is_empty());
    let client = Client::<u64, u64>::connect(&name).unwrap();
    let _p = client.send_copy(&1).unwrap();
    assert_eq!(set.wait_timeout(DEADLINE).unwrap(), vec![i]);
}

#[test]
fn bad_input_is_a_clear_error() {
    let name = unique_name("rpc-bad");
    let e = Server::<u64, u64>::connect("bad/name").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidName, "{e}");
    let e = RpcOptions::new()
        .max_in_flight(0)
        .server::<u64, u64>(&name)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("max_in_flight"), "{e}");
    let e = RpcOptions::new()
        .max_clients(100_000)
        .client::<u64, u64>(&name)
        .unwrap_err();
    assert!(e.to_string().contains("max_clients"), "{e}");
    // No server: sending says so.
    let client = RpcOptions::new()
        .max_clients(1)
        .client::<u64, u32>(&name)
        .unwrap();
    let e = client.send_copy(&1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}");
    assert!(e.to_string().contains(&name), "{e}");
    // Other types: both named.
    let e = Server::<u64, u64>::connect(&name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Incompatible, "{e}");
    assert!(
        e.to_string().contains("u64") && e.to_string().contains("u32"),
        "{e}"
    );
    // Other settings: both values.
    let e = RpcOptions::new()
        .max_clients(2)
        .server::<u64, u32>(&name)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Incompatible, "{e}");
    assert!(
        e.to_string()
            .contains("max_clients 2 here, 1 in the service"),
        "{e}"
    );
    // Every client place taken.
    let e = Client::<u64, u32>::connect(&name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitReached, "{e}");
    // Nothing comes: a timeout, not a hang.
    let server = Server::<u64, u32>::connect(&name).unwrap();
    let e = server.recv_timeout(Duration::from_millis(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let mut p = client.send_copy(&1).unwrap();
    let e = p.recv_timeout(Duration::from_millis(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // Another kind of object under the name.
    let queue_name = unique_name("rpc-bad-queue");
    let _queue = memlink::queue::Producer::<u64>::connect(&queue_name).unwrap();
    let e = Server::<u64, u64>::connect(&queue_name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKind, "{e}");
    let e = inspect_rpc(&unique_name("rpc-none")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[cfg(all(feature = "tokio", feature = "async-io"))]
mod with_async {
    use super::*;

    #[test]
    fn async_receive_under_tokio_both_sides() {
        let name = unique_name("rpc-tokio");
        let mut child = Child::spawn("stream_server", &[&name, "3"]);
        child.expect("ready");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = Client::<u64, u64>::connect(&name).unwrap();
            let mut pending = client.send_async(&10).await.unwrap();
            let mut got = Vec::new();
            while let Some(r) = tokio::time::timeout(DEADLINE, pending.recv_async())
                .await
                .expect("in time")
                .unwrap()
            {
                got.push(*r);
            }
            assert_eq!(got, [10, 11, 12]);
        });
        child.release();
        child.finish();

        // The server side awaiting, a client in another thread; and
        // send_async under backpressure.
        let name = unique_name("rpc-tokio-server");
        let opts = RpcOptions::new().max_in_flight(1);
        let server = opts.server::<u64, u64>(&name).unwrap();
        let client = opts.client::<u64, u64>(&name).unwrap();
        rt.block_on(async {
            let serve = async {
                for _ in 0..2 {
                    let r = server.recv_async().await.unwrap();
                    let v = *r + 1;
                    r.respond(&v).unwrap();
                }
            };
            let ask = async {
                let mut first = client.send_async(&1).await.unwrap();
                let answer = *first.recv_async().await.unwrap().unwrap();
                drop(first);
                // The channel frees once the first request ended.
                let mut second = client.send_async(&answer).await.unwrap();
                let last = *second.recv_async().await.unwrap().unwrap();
                last
            };
            let (_, last) = tokio::time::timeout(DEADLINE, async { tokio::join!(serve, ask) })
                .await
                .expect("in time");
            assert_eq!(last, 3);
        });
    }

    #[test]
    fn async_receive_under_async_io() {
        let name = unique_name("rpc-asyncio");
        let mut child = Child::spawn("stream_server", &[&name, "2"]);
        child.expect("ready");
        let client = Client::<u64, u64>::connect(&name).unwrap();
        futures_executor::block_on(async {
            let mut pending = client.send_async(&1).await.unwrap();
            assert_eq!(*pending.recv_async().await.unwrap().unwrap(), 1);
            assert_eq!(*pending.recv_async().await.unwrap().unwrap(), 2);
            assert!(pending.recv_async().await.unwrap().is_none());
        });
        child.release();
        child.finish();
        // And a server awaiting a request from another process.
        let name = unique_name("rpc-asyncio-server");
        let server = options().server::<Ask, Answer>(&name).unwrap();
        let mut clients = vec![Child::spawn("client", &[&name, "3", "5"])];
        go_together(&mut clients);
        futures_executor::block_on(async {
            for _ in 0..5 {
                let r = server.recv_async().await.unwrap();
                let a = answer(&r);
                r.respond(&a).unwrap();
            }
        });
        clients[0].expect("ok 5");
        clients.pop().unwrap().finish();
    }
}
