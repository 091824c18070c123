//! Named mutexes, semaphores and events across real processes.

mod support;

use std::time::Duration;

use memlink::{Access, ErrorKind, Event, EventReset, Mutex, Region, Semaphore, Shared};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Pair {
    a: u64,
    b: u64,
}
use support::{go_together, hear, role, say, unique_name, Child, DEADLINE};

/// Not a test: the entry point of the child processes the tests start.
#[test]
#[ignore = "entry point for child processes, run by the other tests"]
fn child_entry() {
    let Some(args) = role() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["count", region, mutex, rounds] => {
            let region = Region::open(region, Access::ReadWrite).unwrap();
            let mut view = region.map_mut(0..8).unwrap();
            let mutex = Mutex::open(mutex).unwrap();
            say("ready");
            assert_eq!(hear().as_deref(), Some("go"));
            let counter = view.as_mut_ptr().cast::<u64>();
            for _ in 0..rounds.parse::<u32>().unwrap() {
                let _guard = mutex.lock_timeout(DEADLINE).unwrap();
                // SAFETY: the view is 8 bytes, page-aligned, and the mutex
                // makes this the only writer. Volatile, unsynchronised
                // accesses so that a broken mutex shows as lost updates.
                unsafe { counter.write_volatile(counter.read_volatile() + 1) };
            }
            say("done");
        }
        ["hold_mutex", name] => {
            let mutex = Mutex::open(name).unwrap();
            let guard = mutex.lock_timeout(DEADLINE).unwrap();
            say("locked");
            hear(); // killed here, or released by EOF
            drop(guard);
        }
        ["create_mutex", name] => {
            let _mutex = Mutex::create(name).unwrap();
            say("created");
            hear();
        }
        ["sem_take", name] => {
            let sem = Semaphore::open(name).unwrap();
            say("waiting");
            sem.wait_timeout(DEADLINE).unwrap();
            say("got");
        }
        ["event_wait", name] => {
            let event = Event::open(name).unwrap();
            say("waiting");
            event.wait_timeout(DEADLINE).unwrap();
            say("woke");
        }
        ["pong", ping, pong, rounds] => {
            let ping = Event::open(ping).unwrap();
            let pong = Event::open(pong).unwrap();
            say("ready");
            for _ in 0..rounds.parse::<u32>().unwrap() {
                ping.wait_timeout(DEADLINE).unwrap();
                pong.set().unwrap();
            }
            say("done");
        }
        ["shared_add", name, rounds] => {
            let (shared, _) = Shared::<Pair>::create_or_open(name).unwrap();
            say("ready");
            assert_eq!(hear().as_deref(), Some("go"));
            for _ in 0..rounds.parse::<u32>().unwrap() {
                let mut pair = shared.lock_timeout(DEADLINE).unwrap();
                pair.a += 1;
                pair.b = pair.a * 2;
            }
            say("done");
        }
        ["shared_hold", name] => {
            let shared = Shared::<Pair>::open(name).unwrap();
            let mut pair = shared.lock_timeout(DEADLINE).unwrap();
            pair.a = 1000; // half an update: b is not doubled yet
            say("half-done");
            hear();
        }
        ["forget_guard_then_drop", name] => {
            let mutex = Mutex::create(name).unwrap();
            std::mem::forget(mutex.lock().unwrap());
            drop(mutex);
            // Whatever is mapped next may land where the mutex page was;
            // locking another robust mutex must not write into it.
            let region = Region::create(&format!("{name}-r"), 4096).unwrap();
            let mut view = region.map_mut(..).unwrap();
            view.fill(0);
            let other = Mutex::create(&format!("{name}-2")).unwrap();
            drop(other.lock().unwrap());
            say(format!("zeros:{}", view.to_vec().iter().all(|&b| b == 0)));
        }
        _ => panic!("unknown role {args:?}"),
    }
}

#[test]
fn a_mutex_serialises_increments_from_many_processes() {
    let region_name = unique_name("counter");
    let mutex_name = unique_name("counter-lock");
    let region = Region::create(&region_name, 8).unwrap();
    let _mutex = Mutex::create(&mutex_name).unwrap();
    let (processes, rounds) = (4, 50_000);
    let mut children: Vec<Child> = (0..processes)
        .map(|_| Child::spawn("count", &[&region_name, &mutex_name, &rounds.to_string()]))
        .collect();
    go_together(&mut children);
    for child in children {
        child.expect("done");
        child.finish();
    }
    let total = u64::from_ne_bytes(region.map(0..8).unwrap().to_vec()[..].try_into().unwrap());
    assert_eq!(total, processes * rounds);
}

#[test]
fn the_next_locker_is_told_when_a_holder_was_killed() {
    let name = unique_name("abandon");
    let mutex = Mutex::create(&name).unwrap();
    let child = Child::spawn("hold_mutex", &[&name]);
    child.expect("locked");
    assert!(mutex.try_lock().unwrap().is_none(), "the child holds it");
    child.kill();

    let guard = mutex.lock_timeout(DEADLINE).unwrap();
    assert!(guard.was_abandoned(), "WAIT_ABANDONED");
    drop(guard);
    let guard = mutex.lock_timeout(DEADLINE).unwrap();
    assert!(
        !guard.was_abandoned(),
        "usable again, and no longer abandoned"
    );
}

#[test]
fn timeouts_expire_and_say_so() {
    let name = unique_name("timeout");
    let mutex = Mutex::create(&name).unwrap();
    let mut child = Child::spawn("hold_mutex", &[&name]);
    child.expect("locked");
    let err = mutex.lock_timeout(Duration::from_millis(50)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        err.to_string()
            .starts_with(&format!("cannot lock mutex \"{name}\": timed out")),
        "{err}"
    );
    assert!(mutex.try_lock().unwrap().is_none());
    child.release();
    child.finish();
    assert!(
        !mutex.lock_timeout(DEADLINE).unwrap().was_abandoned(),
        "released cleanly"
    );

    let sem = Semaphore::create(&unique_name("timeout-sem"), 0, 1).unwrap();
    let err = sem.wait_timeout(Duration::from_millis(20)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        err.to_string().contains("cannot wait on semaphore"),
        "{err}"
    );
    let event = Event::create(&unique_name("timeout-ev"), EventReset::Manual, false).unwrap();
    assert_eq!(
        event
            .wait_timeout(Duration::from_millis(20))
            .unwrap_err()
            .kind(),
        ErrorKind::Timeout
    );
}

#[test]
fn semaphore_counts_hold_with_many_waiters() {
    let name = unique_name("sem");
    let sem = Semaphore::create(&name, 0, 10).unwrap();
    let children: Vec<Child> = (0..5).map(|_| Child::spawn("sem_take", &[&name])).collect();
    for child in &children {
        child.expect("waiting");
    }
    let (rx, handles) = lines_from(children);
    // Three units: three children get one each, whoever they are.
    assert_eq!(sem.release(3).unwrap(), 0);
    for _ in 0..3 {
        assert_eq!(rx.recv_timeout(DEADLINE).expect("a waiter released"), "got");
    }
    assert!(!sem.try_wait().unwrap(), "three released, three taken");
    assert_eq!(sem.release(2).unwrap(), 0);
    for _ in 0..2 {
        assert_eq!(rx.recv_timeout(DEADLINE).expect("a waiter released"), "got");
    }
    for handle in handles {
        handle.join().unwrap().finish();
    }
    assert!(!sem.try_wait().unwrap());
    let err = sem.release(11).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        format!("cannot release semaphore \"{name}\": invalid argument: releasing 11 would take the count from 0 past its maximum of 10")
    );
}

/// Reads one line from any of `children`, with the deadline.
fn lines_from(
    children: Vec<Child>,
) -> (
    std::sync::mpsc::Receiver<String>,
    Vec<std::thread::JoinHandle<Child>>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handles = children
        .into_iter()
        .map(|child| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let line = child.next_line();
                let _ = tx.send(line);
                child
            })
        })
        .collect();
    (rx, handles)
}

#[test]
fn an_auto_reset_event_releases_exactly_one_waiter_per_set() {
    let name = unique_name("auto");
    let event = Event::create(&name, EventReset::Auto, false).unwrap();
    let children: Vec<Child> = (0..4)
        .map(|_| Child::spawn("event_wait", &[&name]))
        .collect();
    for child in &children {
        child.expect("waiting");
    }
    let (rx, handles) = lines_from(children);
    for _ in 0..4 {
        event.set().unwrap();
        assert_eq!(
            rx.recv_timeout(DEADLINE).expect("one waiter per set"),
            "woke"
        );
    }
    for handle in handles {
        handle.join().unwrap().finish();
    }
    // Had any set released two waiters, a later set would have found no
    // waiter and stayed set.
    assert!(
        !event.try_wait().unwrap(),
        "every set was taken by exactly one waiter"
    );
}

#[test]
fn a_manual_reset_event_releases_every_waiter() {
    let name = unique_name("manual");
    let event = Event::create(&name, EventReset::Manual, false).unwrap();
    let children: Vec<Child> = (0..4)
        .map(|_| Child::spawn("event_wait", &[&name]))
        .collect();
    for child in &children {
        child.expect("waiting");
    }
    event.set().unwrap();
    for child in children {
        child.expect("woke");
        child.finish();
    }
    assert!(event.try_wait().unwrap(), "stays set until reset");
    event.reset().unwrap();
    assert!(!event.try_wait().unwrap());
}

#[test]
fn sets_racing_waits_are_never_lost() {
    let ping_name = unique_name("ping");
    let pong_name = unique_name("pong");
    let ping = Event::create(&ping_name, EventReset::Auto, false).unwrap();
    let pong = Event::create(&pong_name, EventReset::Auto, false).unwrap();
    let rounds = 2000;
    let child = Child::spawn("pong", &[&ping_name, &pong_name, &rounds.to_string()]);
    child.expect("ready");
    for _ in 0..rounds {
        ping.set().unwrap();
        pong.wait_timeout(DEADLINE).expect("no lost wake-up");
    }
    child.expect("done");
    child.finish();
}

#[test]
fn sync_objects_follow_the_lifetime_rules_after_crashes() {
    let name = unique_name("sync-life");
    let child = Child::spawn("create_mutex", &[&name]);
    child.expect("created");
    let opened = Mutex::open(&name).unwrap();
    drop(opened);
    child.kill();
    assert_eq!(Mutex::open(&name).unwrap_err().kind(), ErrorKind::NotFound);
    let mutex = Mutex::create(&name).expect("a dead mutex never blocks create");
    drop(mutex);
    assert_eq!(Mutex::open(&name).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn names_are_one_namespace_across_kinds() {
    let name = unique_name("kinds");
    let region = Region::create(&name, 4096).unwrap();
    let err = Mutex::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKind, "{err}");
    assert_eq!(
        Semaphore::create(&name, 0, 1).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    drop(region);

    let _event = Event::create(&name, EventReset::Auto, false).unwrap();
    assert_eq!(
        Region::open(&name, Access::ReadOnly).unwrap_err().kind(),
        ErrorKind::WrongKind
    );
    assert_eq!(
        Semaphore::open(&name).unwrap_err().kind(),
        ErrorKind::WrongKind
    );
}

#[test]
fn bad_sync_arguments_are_clear_errors() {
    let err = Semaphore::create(&unique_name("sem-bad"), 3, 2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.to_string()
            .contains("initial count 3 must not exceed the maximum 2"),
        "{err}"
    );
    assert_eq!(
        Mutex::create("no/slash").unwrap_err().kind(),
        ErrorKind::InvalidName
    );
    assert_eq!(
        Event::open(&unique_name("none")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[cfg(target_os = "linux")]
#[test]
fn relocking_from_the_holding_thread_is_an_error_not_a_hang() {
    let mutex = Mutex::create(&unique_name("relock")).unwrap();
    let _guard = mutex.lock().unwrap();
    assert_eq!(mutex.lock().unwrap_err().kind(), ErrorKind::WouldDeadlock);
}

#[cfg(target_os = "linux")]
#[test]
fn listing_shows_sync_objects_with_their_state() {
    let mutex_name = unique_name("ls-mutex");
    let sem_name = unique_name("ls-sem");
    let event_name = unique_name("ls-event");
    let mutex = Mutex::create(&mutex_name).unwrap();
    let _sem = Semaphore::create(&sem_name, 2, 5).unwrap();
    let _event = Event::create(&event_name, EventReset::Manual, true).unwrap();
    let _guard = mutex.lock().unwrap();
    let info = |n: &str| memlink::inspect(n).unwrap();
    assert_eq!(info(&mutex_name).kind, Some(memlink::ObjectKind::Mutex));
    assert_eq!(
        info(&mutex_name).detail.as_deref(),
        Some(format!("locked by pid {} (alive)", std::process::id()).as_str())
    );
    assert_eq!(info(&sem_name).detail.as_deref(), Some("count 2 of 5"));
    assert_eq!(
        info(&event_name).detail.as_deref(),
        Some("set, manual-reset")
    );
}

#[test]
fn shared_plain_data_stays_consistent_across_processes_and_crashes() {
    let name = unique_name("shared");
    let (shared, how) = Shared::<Pair>::create_or_open(&name).unwrap();
    assert_eq!(how, memlink::Disposition::Created);
    assert_eq!(
        *shared.lock().unwrap(),
        Pair { a: 0, b: 0 },
        "starts zeroed"
    );
    let mut children: Vec<Child> = (0..3)
        .map(|_| Child::spawn("shared_add", &[&name, "20000"]))
        .collect();
    go_together(&mut children);
    for child in children {
        child.expect("done");
        child.finish();
    }
    assert_eq!(
        *shared.lock().unwrap(),
        Pair {
            a: 60_000,
            b: 120_000
        }
    );

    let child = Child::spawn("shared_hold", &[&name]);
    child.expect("half-done");
    child.kill();
    let mut pair = shared.lock_timeout(DEADLINE).unwrap();
    assert!(pair.was_abandoned());
    assert_eq!(
        *pair,
        Pair {
            a: 1000,
            b: 120_000
        },
        "the torn update is visible"
    );
    pair.b = pair.a * 2; // repair
    drop(pair);
    assert!(!shared.lock().unwrap().was_abandoned());

    let err = Shared::<[u64; 1024]>::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.to_string().contains("a [u64; 1024] needs 8192"),
        "{err}"
    );
}

#[test]
fn a_forgotten_guard_never_lets_a_dropped_mutex_corrupt_memory() {
    let child = Child::spawn("forget_guard_then_drop", &[&unique_name("forget")]);
    child.expect("zeros:true");
    child.finish();
}

#[test]
fn shared_refuses_a_second_guard_on_the_same_thread() {
    let (shared, _) = Shared::<u64>::create_or_open(&unique_name("nested")).unwrap();
    let guard = shared.lock().unwrap();
    let err = shared.lock().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldDeadlock, "{err}");
    assert!(shared.try_lock().is_err());
    drop(guard);
    assert!(shared.try_lock().unwrap().is_some());
}

/// Waits until `inspect` says `count` processes wait on the object.
#[cfg(target_os = "linux")]
fn wait_for_waiters(name: &str, count: u32) {
    let deadline = std::time::Instant::now() + DEADLINE;
    let needle = format!("{count} waiting");
    loop {
        let detail = memlink::inspect(name).unwrap().detail.unwrap_or_default();
        if detail.ends_with(&needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {needle}: {detail}"
        );
        std::thread::yield_now();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn two_sets_of_an_auto_reset_event_release_two_waiters() {
    let name = unique_name("auto-two");
    let event = Event::create(&name, EventReset::Auto, false).unwrap();
    let children: Vec<Child> = (0..2)
        .map(|_| Child::spawn("event_wait", &[&name]))
        .collect();
    for child in &children {
        child.expect("waiting");
    }
    wait_for_waiters(&name, 2);
    event.set().unwrap();
    event.set().unwrap(); // as on Windows: the second set meets the second waiter
    for child in children {
        child.expect("woke");
        child.finish();
    }
    assert!(!event.try_wait().unwrap());
}

#[cfg(target_os = "linux")]
#[test]
fn a_waiter_killed_after_its_wake_up_does_not_take_the_unit_along() {
    for round in 0..5 {
        let name = unique_name(&format!("killed-waiter-{round}"));
        let sem = Semaphore::create(&name, 0, 1).unwrap();
        let first = Child::spawn("sem_take", &[&name]);
        first.expect("waiting");
        let second = Child::spawn("sem_take", &[&name]);
        second.expect("waiting");
        wait_for_waiters(&name, 2);
        sem.release(1).unwrap();
        first.kill();
        // Either the killed one took the unit before dying, or the other
        // one gets it: the unit is never stranded with a waiter asleep.
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let detail = memlink::inspect(&name).unwrap().detail.unwrap();
            if detail.starts_with("count 0 of 1") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "unit stranded: {detail}"
            );
            std::thread::yield_now();
        }
        drop(second);
    }
}

#[test]
fn persistent_sync_objects_outlive_their_handles_where_supported() {
    let name = unique_name("sync-persist");
    let options = memlink::SyncOptions::new().lifetime(memlink::Lifetime::Persistent);
    let result = Semaphore::create_with(&name, 1, 3, &options);
    if cfg!(windows) {
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Unsupported);
        return;
    }
    drop(result.unwrap());
    let reopened = Semaphore::open(&name).expect("a persistent semaphore stays");
    assert!(reopened.try_wait().unwrap(), "with its count");
    drop(reopened);
    memlink::remove(&name).unwrap();
    assert_eq!(
        Semaphore::open(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Waits until `inspect` shows `detail` for the object.
#[cfg(target_os = "linux")]
fn wait_for_detail(name: &str, detail: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let now = memlink::inspect(name).unwrap().detail.unwrap_or_default();
        if now == detail {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {detail:?}: {now:?}"
        );
        std::thread::yield_now();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn killed_waiters_are_not_counted_for_releases_or_listings() {
    let event_name = unique_name("dead-waiters-event");
    let event = Event::create(&event_name, EventReset::Auto, false).unwrap();
    let sem_name = unique_name("dead-waiters-sem");
    let _sem = Semaphore::create(&sem_name, 0, 64).unwrap();
    let mut children = Vec::new();
    for _ in 0..4 {
        children.push(Child::spawn("event_wait", &[&event_name]));
        children.push(Child::spawn("sem_take", &[&sem_name]));
    }
    for child in &children {
        child.expect("waiting");
    }
    wait_for_waiters(&event_name, 4);
    wait_for_waiters(&sem_name, 4);
    for child in children {
        child.kill();
    }
    // Nobody waits now, whatever the dead left in the page.
    wait_for_detail(&event_name, "not set, auto-reset");
    wait_for_detail(&sem_name, "count 0 of 64");
    // As on Windows: with nobody waiting, sets only leave the event set.
    for _ in 0..4 {
        event.set().unwrap();
    }
    assert!(event.try_wait().unwrap());
    assert!(
        !event.try_wait().unwrap(),
        "one release, not one per dead waiter"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_mutex_listing_tells_locked_unlocked_and_abandoned_apart() {
    let name = unique_name("mutex-states");
    let mutex = Mutex::create(&name).unwrap();
    wait_for_detail(&name, "unlocked");
    let holder = Child::spawn("hold_mutex", &[&name]);
    holder.expect("locked");
    let pid = holder.pid();
    wait_for_detail(&name, &format!("locked by pid {pid} (alive)"));
    holder.kill();
    wait_for_detail(&name, &format!("abandoned by pid {pid} (dead)"));
    let guard = mutex.lock().unwrap();
    assert!(guard.was_abandoned());
    drop(guard);
    wait_for_detail(&name, "unlocked");
}

#[test]
fn shared_works_with_the_longest_valid_name() {
    let tag = unique_name("long");
    let name = format!("{tag}{}", "x".repeat(memlink::MAX_NAME_LEN - tag.len()));
    assert_eq!(name.len(), memlink::MAX_NAME_LEN);
    let (shared, how) = Shared::<u64>::create_or_open(&name).unwrap();
    assert_eq!(how, memlink::Disposition::Created);
    *shared.lock().unwrap() = 7;
    let again = Shared::<u64>::open(&name).unwrap();
    assert_eq!(*again.lock().unwrap(), 7);
}
