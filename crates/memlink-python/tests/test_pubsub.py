import json
import subprocess
import time

import numpy as np
import pytest

import memlink
from conftest import DEADLINE, memlink_cli


def wait_until(condition, what):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if condition():
            return
    pytest.fail(f"timed out waiting for {what}")


def test_send_and_receive_in_place(name):
    with memlink.Subscriber(name) as sub, memlink.Publisher(name) as pub:
        assert pub.subscriber_count == 1 and sub.publisher_count == 1
        pub.send(b"hello")
        pub.send(bytearray(b"bytearray"))
        pub.send(np.arange(4, dtype=np.float32))
        pub.send(memoryview(b"xxview")[2:])
        with sub.recv(timeout=DEADLINE) as sample:
            assert bytes(sample) == b"hello" and len(sample) == 5
            assert sample.sequence == 0
        assert sample.released
        with sub.recv(timeout=DEADLINE) as sample:
            assert bytes(sample) == b"bytearray"
        with sub.recv(timeout=DEADLINE) as sample:
            arr = np.frombuffer(sample, dtype=np.float32)
            assert arr.tolist() == [0, 1, 2, 3]
            assert not arr.flags.writeable  # read-only, in place
            m = memoryview(sample)
            assert m.readonly
            with pytest.raises(TypeError):
                m[0] = 1
            with pytest.raises(BufferError):
                sample.release()  # arr and m still use it
            del arr
            m.release()
        assert bytes(sub.try_recv()) == b"view"
        assert sub.try_recv() is None


def test_recv_timeout_raises_timeout(name):
    sub = memlink.Subscriber(name)
    started = time.monotonic()
    with pytest.raises(memlink.Timeout) as info:
        sub.recv(timeout=0.1)
    assert 0.09 < time.monotonic() - started < 5
    assert isinstance(info.value, TimeoutError)
    assert info.value.object_name == name


def test_close_refused_while_samples_are_held(name):
    sub = memlink.Subscriber(name)
    pub = memlink.Publisher(name)
    pub.send(b"x")
    sample = sub.recv(timeout=DEADLINE)
    with pytest.raises(BufferError):
        sub.close()
    del sample  # released by the garbage collector (here: refcount)
    sub.close()
    with pytest.raises(ValueError):
        sub.recv(timeout=0)


def test_held_samples_are_limited(name):
    sub = memlink.Subscriber(name, max_borrowed=2)
    pub = memlink.Publisher(name)
    for i in range(3):
        pub.send(bytes([i]))
    held = [sub.recv(timeout=DEADLINE), sub.recv(timeout=DEADLINE)]
    with pytest.raises(memlink.LimitReached):
        sub.recv(timeout=DEADLINE)
    held[0].release()
    assert bytes(sub.recv(timeout=DEADLINE)) == b"\x02"


def test_blocking_send_times_out(name):
    sub = memlink.Subscriber(name, overflow="block", capacity=2)
    pub = memlink.Publisher(name)
    pub.send(b"1")
    pub.send(b"2")
    with pytest.raises(memlink.Timeout):
        pub.send(b"3", timeout=0.1)
    sub.recv(timeout=DEADLINE).release()
    pub.send(b"3", timeout=DEADLINE)


def test_settings_must_match(name):
    first = memlink.Publisher(name, max_size=1024)
    with pytest.raises(memlink.Incompatible):
        memlink.Subscriber(name, max_size=2048)
    with pytest.raises(ValueError):
        memlink.Publisher(name, overflow="sometimes")
    too_big = memlink.Publisher(name)
    assert too_big.max_size == first.max_size == 1024
    with pytest.raises(memlink.InvalidArgument):
        too_big.send(bytes(2000))


def test_between_two_python_processes(name, child):
    sub = memlink.Subscriber(name, capacity=16)
    c = child(
        """
        import sys, numpy as np, memlink
        pub = memlink.Publisher(sys.argv[1])
        for i in range(10):
            pub.send(np.full(8, i, dtype=np.int64))
        print("sent", flush=True)
        """,
        name,
    )
    assert c.line() == "sent"
    for i in range(10):
        with sub.recv(timeout=DEADLINE) as sample:
            assert np.frombuffer(sample, dtype=np.int64).tolist() == [i] * 8
    c.finish()
    assert sub.missed == 0


def test_rust_subscriber_receives_from_python(name):
    cli = memlink_cli()
    pub = memlink.Publisher(name)
    sub = subprocess.Popen(
        [cli, "sub", name, "--json", "--count", "3", "--timeout", f"{DEADLINE}s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: pub.subscriber_count == 1 or sub.poll() is not None, "the Rust subscriber")
        for text in ("one", "two", "three"):
            pub.send(text.encode())
        out, err = sub.communicate(timeout=DEADLINE)
    finally:
        sub.kill()
    assert sub.returncode == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    assert [m["text"] for m in messages] == ["one", "two", "three"]


def test_python_subscriber_receives_from_rust(name):
    cli = memlink_cli()
    sub = memlink.Subscriber(name)
    done = subprocess.run(
        [cli, "pub", name, "--text", "from rust", "--count", "3"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 0, done.stderr
    for i in range(3):
        with sub.recv(timeout=DEADLINE) as sample:
            assert bytes(sample) == b"from rust"
            assert sample.sequence == i


def test_inspect_service(name):
    sub = memlink.Subscriber(name, max_size=256)
    pub = memlink.Publisher(name)
    pub.send(b"abc")
    info = memlink.inspect_service(name)
    assert info.max_payload == 256 and info.slices
    assert len(info.publishers) == 1 and len(info.subscribers) == 1
    assert info.publishers[0].samples == 1
    assert memlink.inspect(name).kind == "service"
    del sub


def test_loan_is_written_in_place_and_sent_without_copy(name, child):
    sub = memlink.Subscriber(name)
    pub = memlink.Publisher(name)
    loan = pub.loan(32)
    assert len(loan) == 32 and bytes(loan) == bytes(32)  # zeroed
    arr = np.frombuffer(loan, dtype=np.int32)
    assert arr.flags.writeable
    arr[:] = np.arange(8)
    with pytest.raises(BufferError):
        loan.send()  # arr still writes the slot
    with pytest.raises(BufferError):
        pub.close()  # the loan is out
    del arr
    loan.send()
    assert loan.done
    with pytest.raises(ValueError):
        memoryview(loan)
    with sub.recv(timeout=DEADLINE) as sample:
        assert np.frombuffer(sample, dtype=np.int32).tolist() == list(range(8))
    # Leaving a `with` block unsent gives the slot back.
    with pub.loan(8) as unsent:
        memoryview(unsent)[:1] = b"x"
    assert unsent.done and sub.try_recv() is None
    pub.close()


def test_loans_are_limited(name):
    pub = memlink.Publisher(name, max_loans=2)
    first, second = pub.loan(4), pub.loan(4)
    with pytest.raises(memlink.LimitReached):
        pub.loan(4)
    first.discard()
    pub.loan(4).discard()
    del second
