"""shmprim for Python beside multiprocessing (and faster-fifo, when installed),
in one run: each figure is measured for every implementation in the same
round, rounds alternate, and a ratio is the median over rounds of the
per-round ratios (with its spread), so that a machine whose speed drifts
between rounds still compares like with like.

    python python/bench/bench.py [--rounds N] [--quick]

Figures: queue throughput of small objects and of 1 KiB bytes (one producer
process, one consumer), queue round trip, Lock acquire+release, Value
increment under get_lock(), Pool.map of a trivial function (chunksize 1 and
the default).
"""

import argparse
import multiprocessing as mp
import statistics
import sys
import time

import shmprim

try:
    import faster_fifo
except ImportError:  # optional reference
    faster_fifo = None


def _produce(q, n, item):
    for _ in range(n):
        q.put(item)


def queue_throughput(make, n, item):
    """Messages per second through one queue, producer in a child process."""
    q = make()
    p = mp.Process(target=_produce, args=(q, n, item))
    p.start()
    q.get(timeout=30)
    t = time.perf_counter()
    for _ in range(n - 1):
        q.get(timeout=30)
    dt = time.perf_counter() - t
    p.join(30)
    return (n - 1) / dt


def _echo(ping, pong, n):
    for _ in range(n):
        pong.put(ping.get(timeout=30))


def queue_rtt(make, n):
    """Microseconds per round trip through two queues."""
    ping, pong = make(), make()
    p = mp.Process(target=_echo, args=(ping, pong, n))
    p.start()
    ping.put(0)
    pong.get(timeout=30)
    t = time.perf_counter()
    for i in range(n - 1):
        ping.put(i)
        pong.get(timeout=30)
    dt = time.perf_counter() - t
    p.join(30)
    return dt / (n - 1) * 1e6


def lock_pair(make, n):
    """Nanoseconds per acquire+release, uncontended."""
    lock = make()
    t = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    return (time.perf_counter() - t) / n * 1e9


def value_increment(make, n):
    """Nanoseconds per `with v.get_lock(): v.value += 1`."""
    v = make()
    t = time.perf_counter()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    return (time.perf_counter() - t) / n * 1e9


def ident(x):
    return x


def pool_map(make, n, chunksize):
    """Tasks per second of Pool(2).map(ident, range(n))."""
    with make(2) as pool:
        pool.map(ident, range(10))
        t = time.perf_counter()
        pool.map(ident, range(n), chunksize)
        return n / (time.perf_counter() - t)


def figures(quick):
    k = 10 if quick else 1
    f = [
        ("queue-int", "msg/s", True, {
            "shmprim.Queue": lambda: queue_throughput(shmprim.Queue, 200_000 // k, 7),
            "multiprocessing.Queue": lambda: queue_throughput(mp.Queue, 20_000 // k, 7),
        }),
        ("queue-tuple", "msg/s", True, {
            "shmprim.Queue": lambda: queue_throughput(shmprim.Queue, 200_000 // k, (1, "a", 2.0)),
            "multiprocessing.Queue": lambda: queue_throughput(mp.Queue, 20_000 // k, (1, "a", 2.0)),
        }),
        ("queue-1k-bytes", "msg/s", True, {
            "shmprim.Queue": lambda: queue_throughput(shmprim.Queue, 100_000 // k, b"x" * 1024),
            "multiprocessing.Queue": lambda: queue_throughput(mp.Queue, 20_000 // k, b"x" * 1024),
        }),
        ("queue-rtt", "us", False, {
            "shmprim.Queue": lambda: queue_rtt(shmprim.Queue, 20_000 // k),
            "multiprocessing.Queue": lambda: queue_rtt(mp.Queue, 4_000 // k),
        }),
        ("lock", "ns", False, {
            "shmprim.Lock": lambda: lock_pair(shmprim.Lock, 400_000 // k),
            "multiprocessing.Lock": lambda: lock_pair(mp.Lock, 400_000 // k),
        }),
        ("value-increment", "ns", False, {
            "shmprim.Value": lambda: value_increment(lambda: shmprim.Value("i", 0), 200_000 // k),
            "multiprocessing.Value": lambda: value_increment(lambda: mp.Value("i", 0), 200_000 // k),
        }),
        ("pool-map-cs1", "tasks/s", True, {
            "shmprim.Pool": lambda: pool_map(shmprim.Pool, 20_000 // k, 1),
            "multiprocessing.Pool": lambda: pool_map(mp.Pool, 20_000 // k, 1),
        }),
        ("pool-map-default", "tasks/s", True, {
            "shmprim.Pool": lambda: pool_map(shmprim.Pool, 200_000 // k, None),
            "multiprocessing.Pool": lambda: pool_map(mp.Pool, 200_000 // k, None),
        }),
    ]
    if faster_fifo is not None:
        for fid, item, n in (("queue-int", 7, 200_000), ("queue-1k-bytes", b"x" * 1024, 100_000)):
            for name, _unit, _hib, impls in f:
                if name == fid:
                    impls["faster_fifo.Queue"] = (
                        lambda item=item, n=n: queue_throughput(faster_fifo.Queue, n // k, item)
                    )
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {args.rounds} rounds" + (", quick" if args.quick else ""))
    print(f"{'figure':<17} {'unit':<8} {'implementation':<24} {'median':>12}   ratio (median of rounds) [min-max]")
    for fid, unit, higher_is_better, impls in figures(args.quick):
        values = {name: [] for name in impls}
        for _ in range(args.rounds):
            for name, run in impls.items():
                values[name].append(run())
        ours = next(iter(impls))
        for name, vs in values.items():
            med = statistics.median(vs)
            if name == ours:
                print(f"{fid:<17} {unit:<8} {name:<24} {med:>12.1f}")
                continue
            pairs = [
                (a / b) if higher_is_better else (b / a)
                for a, b in zip(values[ours], vs)
            ]
            print(
                f"{'':<17} {'':<8} {name:<24} {med:>12.1f}   "
                f"{statistics.median(pairs):.1f}x [{min(pairs):.1f}x-{max(pairs):.1f}x]"
            )


if __name__ == "__main__":
    main()
