"""Round trip through two multiprocessing.Queue objects between two processes.

Run by `shmprim bench` (figure queue-rtt) as `python3 -c <this file> N`; prints
the nanoseconds per round trip, timed over N round trips after a warm-up.
The parent runs on core 0 and the child on core 1 when there are two cores.
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


def echo(ping, pong, n):
    pin(1)
    for _ in range(n):
        # Bounded, so that the child ends on its own if the parent is killed.
        pong.put(ping.get(timeout=20) + 1)


def main():
    n = int(sys.argv[1])
    warmup = min(200, n)
    ctx = mp.get_context("fork")
    ping, pong = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=echo, args=(ping, pong, warmup + n), daemon=True)
    child.start()
    pin(0)
    for i in range(warmup):
        ping.put(i)
        assert pong.get(timeout=20) == i + 1
    t0 = time.perf_counter_ns()
    for i in range(n):
        ping.put(i)
        if pong.get(timeout=20) != i + 1:
            raise SystemExit("wrong answer")
    dt = time.perf_counter_ns() - t0
    child.join(20)
    print(dt / n)


if __name__ == "__main__":
    main()
