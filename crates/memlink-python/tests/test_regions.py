import ctypes
import os
import signal
import sys
from multiprocessing import shared_memory

import numpy as np
import pytest

import memlink
from conftest import DEADLINE


def shm_path(name):
    return f"/dev/shm/{name}"


def test_create_map_and_read_back(name):
    with memlink.Region.create(name, 4096) as region:
        assert region.name == name and region.size == 4096
        assert region.created and not region.readonly
        view = region.map()
        memoryview(view)[:5] = b"hello"
        assert bytes(view)[:6] == b"hello\0"
        part = region.map(offset=1, length=4)
        assert len(part) == 4 and part.offset == 1
        assert bytes(part) == b"ello"
    assert region.closed


def test_region_seen_by_another_process(name, child):
    region = memlink.Region.create(name, 4096)
    memoryview(region.map())[:4] = b"ping"
    c = child(
        """
        import sys, memlink
        r = memlink.Region.open(sys.argv[1])
        v = memlink.Region.open(sys.argv[1]).map()
        m = memoryview(v)
        print(bytes(m[:4]).decode(), flush=True)
        m[:4] = b"pong"
        """,
        name,
    )
    assert c.line() == "ping"
    c.finish()
    assert bytes(region.map(length=4)) == b"pong"


def test_numpy_write_is_seen_by_the_other_process_without_copy(name, child):
    region = memlink.Region.create(name, 8 * 1024)
    view = region.map()
    mine = np.frombuffer(view, dtype=np.int64)
    assert mine.base is not None  # a view of the mapping, not a copy
    c = child(
        """
        import sys, numpy as np, memlink
        arr = np.frombuffer(memlink.Region.open(sys.argv[1]).map(), dtype=np.int64)
        arr[:] = np.arange(arr.size)
        arr[7] = -12345
        print("written", flush=True)
        sys.stdin.readline()
        # The parent's write through its own array, seen here.
        print(int(arr[0]), flush=True)
        """,
        name,
    )
    assert c.line() == "written"
    # The same array object, not re-read: the memory itself changed.
    assert mine[7] == -12345 and mine[1023] == 1023
    mine[0] = 99
    c.say("go")
    assert c.line() == "99"
    c.finish()


def test_close_with_exported_buffers_raises_buffererror(name):
    region = memlink.Region.create(name, 4096)
    view = region.map()
    m = memoryview(view)
    arr = np.frombuffer(view, dtype=np.uint8)
    assert view.exports == 2
    with pytest.raises(BufferError):
        view.close()
    m.release()
    with pytest.raises(BufferError):
        view.close()
    del arr
    assert view.exports == 0
    view.close()
    assert view.closed
    with pytest.raises(ValueError):
        memoryview(view)
    view.close()  # twice is fine


def test_view_outlives_region_handle(name):
    region = memlink.Region.create(name, 4096)
    view = region.map()
    region.close()
    memoryview(view)[0] = 7
    assert bytes(view)[0] == 7


def test_read_only_is_enforced(name):
    writer = memlink.Region.create(name, 4096)
    memoryview(writer.map())[:2] = b"ok"
    reader = memlink.Region.open(name, readonly=True)
    assert reader.readonly
    view = reader.map()
    assert view.readonly
    m = memoryview(view)
    assert m.readonly and bytes(m[:2]) == b"ok"
    with pytest.raises(TypeError):
        m[0] = 1
    arr = np.frombuffer(view, dtype=np.uint8)
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr.setflags(write=True)
    # A consumer that asks for a writable buffer (PyBUF_WRITABLE) is refused.
    with pytest.raises((TypeError, BufferError)):
        ctypes.c_char.from_buffer(view)
    with pytest.raises(memlink.ReadOnly):
        reader.map(writable=True)
    # A writable handle can still hand out read-only views.
    ro = writer.map(writable=False)
    with pytest.raises((TypeError, BufferError)):
        ctypes.c_char.from_buffer(ro)
    ctypes.c_char.from_buffer(writer.map())  # and writable ones


def test_create_or_open(name):
    first = memlink.Region.create_or_open(name, 8192)
    second = memlink.Region.create_or_open(name, 4096)
    assert first.created and not second.created
    assert second.size == 8192


def test_name_goes_with_the_last_handle(name):
    region = memlink.Region.create(name, 4096)
    other = memlink.Region.open(name)
    region.close()
    memlink.Region.open(name).close()
    other.close()
    with pytest.raises(memlink.NotFound):
        memlink.Region.open(name)


def test_holder_killed_with_sigkill_leaves_nothing_behind(name, child):
    c = child(
        """
        import sys, time, memlink
        r = memlink.Region.create(sys.argv[1], 1 << 20)
        memoryview(r.map())[:4] = b"dead"
        print("ready", flush=True)
        sys.stdin.readline()  # waits for the kill
        """,
        name,
    )
    assert c.line() == "ready"
    assert memlink.inspect(name).holders == [c.proc.pid]
    os.kill(c.proc.pid, signal.SIGKILL)
    c.proc.wait(timeout=DEADLINE)
    assert c.proc.returncode == -signal.SIGKILL
    # The next open finds the holder dead and removes the region.
    with pytest.raises(memlink.NotFound):
        memlink.Region.open(name)
    assert not os.path.exists(shm_path(name))
    assert name not in [o.name for o in memlink.list()]


def test_shared_memory_region_opened_by_memlink(name):
    shm = shared_memory.SharedMemory(name=name, create=True, size=4096)
    try:
        shm.buf[:5] = b"stdlb"
        region = memlink.Region.open(name)
        view = region.map()
        assert bytes(view)[:5] == b"stdlb"
        memoryview(view)[:5] = b"mlink"
        assert bytes(shm.buf[:5]) == b"mlink"
        info = memlink.inspect(name)
        assert info.kind is None and info.lifetime == "persistent"
        del view
    finally:
        shm.close()
        shm.unlink()


def test_memlink_region_opened_by_shared_memory(name, child):
    region = memlink.Region.create(name, 4096)
    memoryview(region.map())[:5] = b"mlink"
    c = child(
        """
        import sys
        from multiprocessing import resource_tracker, shared_memory
        shm = shared_memory.SharedMemory(name=sys.argv[1])
        # Attaching registers the segment with the resource tracker, which
        # would unlink it at exit (CPython gh-82300): this is not ours.
        resource_tracker.unregister(shm._name, "shared_memory")
        print(bytes(shm.buf[:5]).decode(), flush=True)
        shm.buf[:5] = b"stdlb"
        shm.close()
        """,
        name,
    )
    assert c.line() == "mlink"
    c.finish()
    assert bytes(region.map(length=5)) == b"stdlb"
    region.close()
    with pytest.raises(memlink.NotFound):
        memlink.Region.open(name)


def test_list_inspect_reap(name, child):
    region = memlink.Region.create(name, 4096)
    info = memlink.inspect(name)
    assert (info.name, info.kind, info.size, info.state) == (name, "region", 4096, "alive")
    assert os.getpid() in info.holders
    assert name in [o.name for o in memlink.list()]
    region.close()
    # A region left by a killed process is stale until reaped.
    c = child(
        """
        import sys, memlink
        r = memlink.Region.create(sys.argv[1], 4096)
        print("ready", flush=True)
        sys.stdin.readline()
        """,
        name,
    )
    assert c.line() == "ready"
    os.kill(c.proc.pid, signal.SIGKILL)
    c.proc.wait(timeout=DEADLINE)
    assert memlink.inspect(name).state == "stale"
    assert name in [o.name for o in memlink.reap()]
    with pytest.raises(memlink.NotFound):
        memlink.inspect(name)
