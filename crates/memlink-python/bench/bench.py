"""Benchmarks for the Python bindings (issue 11), in one run:

1. a 64-byte round trip between two Python processes: memlink pub/sub,
   against multiprocessing.Pipe and a multiprocessing.shared_memory +
   multiprocessing.Semaphore ping-pong;
2. a 100 MB numpy array handed to another process: memlink zero-copy
   (the consumer maps the producer's memory) against pickling it through
   a multiprocessing.Pipe.

Run: python bench/bench.py [--rounds N]
"""

import argparse
import multiprocessing as mp
import os
import statistics
import time
from multiprocessing import shared_memory

import numpy as np

import memlink

PAYLOAD = bytes(range(64))
TIMEOUT = 10.0


def _memlink_echo(ping, pong, ready, rounds):
    sub = memlink.Subscriber(ping)
    pub = memlink.Publisher(pong)
    ready.set()
    for _ in range(rounds):
        with sub.recv(timeout=TIMEOUT) as sample:
            pub.send(sample)


def bench_memlink(rounds):
    tag = f"bench-{os.getpid()}"
    ping, pong = tag + "-ping", tag + "-pong"
    pub = memlink.Publisher(ping)
    sub = memlink.Subscriber(pong)
    ready = mp.Event()
    child = mp.Process(target=_memlink_echo, args=(ping, pong, ready, rounds))
    child.start()
    assert ready.wait(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while pub.subscriber_count < 1 and time.monotonic() < deadline:
        pass
    t0 = time.perf_counter()
    for _ in range(rounds):
        pub.send(PAYLOAD)
        with sub.recv(timeout=TIMEOUT) as sample:
            assert len(sample) == 64
    elapsed = time.perf_counter() - t0
    child.join(TIMEOUT)
    return elapsed / rounds


def _pipe_echo(conn, rounds):
    for _ in range(rounds):
        conn.send_bytes(conn.recv_bytes())


def bench_pipe(rounds):
    mine, theirs = mp.Pipe()
    child = mp.Process(target=_pipe_echo, args=(theirs, rounds))
    child.start()
    t0 = time.perf_counter()
    for _ in range(rounds):
        mine.send_bytes(PAYLOAD)
        assert len(mine.recv_bytes()) == 64
    elapsed = time.perf_counter() - t0
    child.join(TIMEOUT)
    return elapsed / rounds


def _shm_echo(shm_name, ping, pong, rounds):
    shm = shared_memory.SharedMemory(name=shm_name)
    buf = shm.buf
    for _ in range(rounds):
        assert ping.acquire(timeout=TIMEOUT)
        buf[64:128] = buf[0:64]
        pong.release()
    del buf
    shm.close()


def bench_shm_lock(rounds):
    shm = shared_memory.SharedMemory(create=True, size=128)
    ping, pong = mp.Semaphore(0), mp.Semaphore(0)
    child = mp.Process(target=_shm_echo, args=(shm.name, ping, pong, rounds))
    child.start()
    buf = shm.buf
    t0 = time.perf_counter()
    for _ in range(rounds):
        buf[0:64] = PAYLOAD
        ping.release()
        assert pong.acquire(timeout=TIMEOUT)
        assert buf[127] == 63
    elapsed = time.perf_counter() - t0
    child.join(TIMEOUT)
    del buf
    shm.close()
    shm.unlink()
    return elapsed / rounds


SIZE = 100 * 1024 * 1024


def _memlink_consumer(conn):
    while True:
        name = conn.recv()
        if name is None:
            return
        t0 = time.perf_counter()
        view = memlink.Region.open(name, readonly=True).map()
        arr = np.frombuffer(view, dtype=np.float64)
        last = float(arr[-1])
        conn.send((last, time.perf_counter() - t0))
        del arr
        view.close()


def _pickle_consumer(conn):
    while True:
        arr = conn.recv()
        if arr is None:
            return
        conn.send(float(arr[-1]))


def bench_numpy(repeats):
    region = memlink.Region.create(f"bench-{os.getpid()}-array", SIZE)
    view = region.map()
    arr = np.frombuffer(view, dtype=np.float64)
    arr[:] = np.arange(arr.size, dtype=np.float64)  # made in place
    mine, theirs = mp.Pipe()
    child = mp.Process(target=_memlink_consumer, args=(theirs,))
    child.start()
    zero_copy = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mine.send(region.name)
        last, _ = mine.recv()
        zero_copy.append(time.perf_counter() - t0)
        assert last == arr.size - 1
    mine.send(None)
    child.join(TIMEOUT)

    plain = np.arange(SIZE // 8, dtype=np.float64)
    mine, theirs = mp.Pipe()
    child = mp.Process(target=_pickle_consumer, args=(theirs,))
    child.start()
    pickled = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mine.send(plain)
        assert mine.recv() == plain.size - 1
        pickled.append(time.perf_counter() - t0)
    mine.send(None)
    child.join(TIMEOUT)
    del arr
    view.close()
    return statistics.median(zero_copy), statistics.median(pickled)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000, help="round trips per batch")
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5, help="100 MB hand-overs")
    args = parser.parse_args()
    benches = [
        ("memlink Publisher/Subscriber", bench_memlink),
        ("multiprocessing.Pipe", bench_pipe),
        ("shared_memory + Semaphore ping-pong", bench_shm_lock),
    ]
    # Batches of the three alternate, so that a busy machine slows them
    # alike; each figure is the median of the batch means.
    means = {label: [] for label, _ in benches}
    for _ in range(args.batches):
        for label, bench in benches:
            means[label].append(bench(args.rounds))
    print(
        f"64 B round trip between two Python processes "
        f"(median of {args.batches} batches of {args.rounds}):"
    )
    for label, _ in benches:
        print(f"  {label:38} {statistics.median(means[label]) * 1e6:8.2f} us")
    zero_copy, pickled = bench_numpy(args.repeats)
    print(f"100 MB float64 array to another process (median of {args.repeats}):")
    print(f"  {'memlink region (zero-copy)':38} {zero_copy * 1e3:8.2f} ms")
    print(f"  {'pickled through multiprocessing.Pipe':38} {pickled * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
