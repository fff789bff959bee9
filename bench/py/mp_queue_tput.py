"""Throughput of one multiprocessing.Queue between two processes.

Run by `shmprim bench` (figures objq-str16, objq-str1k) as
`python3 -c <this file> N LEN`: a child puts a warm-up and then N strings of
LEN characters; the parent gets them and prints millions of messages a
second over the N, timed from the first of them. The parent runs on core 0
and the child on core 1 when there are two cores.
"""
import multiprocessing as mp
import os
import sys
import time


def pin(cpu):
    try:
        if os.cpu_count() and os.cpu_count() >= 2:
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def produce(q, total, length):
    pin(1)
    s = "x" * length
    for _ in range(total):
        q.put(s)


def main():
    n, length = int(sys.argv[1]), int(sys.argv[2])
    warmup = min(1000, n)
    ctx = mp.get_context("fork")
    q = ctx.Queue(1024)
    child = ctx.Process(target=produce, args=(q, warmup + n, length), daemon=True)
    child.start()
    pin(0)
    for _ in range(warmup):
        q.get(timeout=20)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        if len(q.get(timeout=20)) != length:
            raise SystemExit("wrong message")
    dt = time.perf_counter_ns() - t0
    child.join(20)
    print(n * 1e3 / dt)


if __name__ == "__main__":
    main()
