import os
import platform
import signal
import threading
import time

import pytest

import memlink
from conftest import DEADLINE


def test_mutex_across_processes(name, child):
    mutex = memlink.Mutex.create(name)
    go = memlink.Event.create(name + "-go")
    assert mutex.acquire(timeout=DEADLINE)
    c = child(
        """
        import sys, memlink
        m = memlink.Mutex.open(sys.argv[1])
        go = memlink.Event.open(sys.argv[1] + "-go")
        print(m.acquire(timeout=0.2), flush=True)
        assert go.wait(timeout=20)
        print(m.acquire(timeout=20), m.abandoned, flush=True)
        m.release()
        """,
        name,
    )
    assert c.line() == "False"  # we hold it
    mutex.release()
    go.set()
    assert c.line() == "True False"
    c.finish()


def test_mutex_with_statement_and_misuse(name):
    mutex = memlink.Mutex.create(name)
    with mutex:
        assert mutex.locked()
        with pytest.raises(RuntimeError):
            mutex.acquire(timeout=0.1)  # not reentrant
        errors = []
        t = threading.Thread(target=lambda: errors.append(_raises(mutex.release)))
        t.start()
        t.join(DEADLINE)
        assert errors == [RuntimeError]  # another thread cannot unlock it
        with pytest.raises(RuntimeError):
            mutex.close()
    assert not mutex.locked()
    with pytest.raises(RuntimeError):
        mutex.release()
    assert mutex.acquire(blocking=False)
    mutex.release()
    with pytest.raises(ValueError):
        mutex.acquire(blocking=False, timeout=1)
    with pytest.raises(ValueError):
        mutex.acquire(timeout=-1)


def wait_for_futex_wait(pid):
    """Returns once the main thread of `pid` sleeps in futex(2), where
    memlink's waits sleep (x86-64 Linux: syscall 202)."""
    if platform.machine() != "x86_64":
        pytest.skip("reads x86-64 syscall numbers")
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/syscall") as f:
            if f.read().split()[0] == "202":
                return
    pytest.fail("the child never waited in futex(2)")


def _raises(f):
    try:
        f()
    except Exception as e:  # noqa: BLE001
        return type(e)
    return None


def test_mutex_abandoned_by_a_killed_holder(name, child):
    c = child(
        """
        import sys, memlink
        m = memlink.Mutex.create(sys.argv[1])
        m.acquire()
        print("locked", flush=True)
        sys.stdin.readline()  # waits for the kill
        """,
        name,
    )
    assert c.line() == "locked"
    mutex = memlink.Mutex.open(name)
    assert not mutex.acquire(timeout=0.1)
    os.kill(c.proc.pid, signal.SIGKILL)
    c.proc.wait(timeout=DEADLINE)
    assert mutex.acquire(timeout=DEADLINE)
    assert mutex.abandoned
    mutex.release()
    assert mutex.acquire(timeout=DEADLINE) and not mutex.abandoned
    mutex.release()


def test_semaphore_across_processes(name, child):
    sem = memlink.Semaphore.create(name, initial=0, maximum=3)
    assert not sem.acquire(timeout=0.05)
    c = child(
        """
        import sys, memlink
        s = memlink.Semaphore.open(sys.argv[1])
        print(s.release(2), flush=True)
        """,
        name,
    )
    assert c.line() == "0"
    c.finish()
    assert sem.acquire(timeout=DEADLINE)
    with sem:  # takes the second unit, gives it back
        assert not sem.acquire(blocking=False)
    assert sem.acquire(blocking=False)
    assert sem.release(3) == 0
    with pytest.raises(memlink.InvalidArgument):
        sem.release(1)  # past the maximum


def test_event_across_processes(name, child):
    event = memlink.Event.create(name, manual_reset=True)
    c = child(
        """
        import sys, memlink
        e = memlink.Event.open(sys.argv[1])
        print(e.wait(timeout=0.05), flush=True)
        print(e.wait(timeout=20), flush=True)
        """,
        name,
    )
    assert c.line() == "False"
    event.set()
    assert c.line() == "True"
    c.finish()
    assert event.wait(0) and event.wait(0)  # manual reset: stays set
    event.reset()
    assert not event.wait(0)
    auto = memlink.Event.create(name + "-auto", initially_set=True)
    assert auto.wait(0) and not auto.wait(0)


def test_waits_release_the_gil(name):
    event = memlink.Event.create(name)
    result = []
    t = threading.Thread(target=lambda: result.append(event.wait(timeout=DEADLINE)))
    t.start()
    # This thread runs Python code while the other one waits in memlink.
    spins = 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        spins += 1
    assert spins > 10_000
    event.set()
    t.join(DEADLINE)
    assert result == [True]


@pytest.mark.parametrize(
    "wait",
    [
        "memlink.Event.create(n).wait()",
        "m = memlink.Mutex.create(n); m.acquire(); "
        "import threading; t = threading.Thread(target=lambda: memlink.Mutex.open(n).acquire(), daemon=True); "
        "t.start(); memlink.Semaphore.create(n + 's').acquire()",
        "memlink.Subscriber(n).recv()",
    ],
    ids=["event", "semaphore", "subscriber"],
)
def test_ctrl_c_interrupts_a_wait(name, child, wait):
    c = child(
        f"""
        import sys, memlink
        n = sys.argv[1]
        try:
            print("waiting", flush=True)
            {wait}
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """,
        name,
    )
    assert c.line() == "waiting"
    wait_for_futex_wait(c.proc.pid)
    started = time.monotonic()
    os.kill(c.proc.pid, signal.SIGINT)
    assert c.line() == "interrupted"
    assert time.monotonic() - started < 5
    c.finish()
