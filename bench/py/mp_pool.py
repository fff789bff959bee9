"""Python's process pools and processes, timed by themselves.

Run by `shmprim bench` as `python3 -c <this file> MODE N CHUNKSIZE WORKERS`:

- `pool`: `multiprocessing.Pool(WORKERS).map(ident, range(N), chunksize)`,
  prints millions of tasks per second (CHUNKSIZE 0: Python's default);
- `executor`: `ProcessPoolExecutor(WORKERS).map(...)`, the same;
- `process`: N times `Process(target=noop).start(); join()`, prints the
  nanoseconds per process.

Every pool uses the fork start method (Python 3.11's default on Linux) and
is warmed up before the clock starts; every result is checked.
"""
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def ident(x):
    return x


def noop():
    pass


def main():
    mode, n, chunksize, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ctx = mp.get_context("fork")
    if mode == "process":
        ctx.Process(target=noop).start()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            p = ctx.Process(target=noop)
            p.start()
            p.join()
            if p.exitcode != 0:
                raise SystemExit("a child failed")
        print((time.perf_counter_ns() - t0) / n)
        return
    kwargs = {"chunksize": chunksize} if chunksize else {}
    if mode == "pool":
        with ctx.Pool(workers) as pool:
            pool.map(ident, range(100), chunksize=1)
            t0 = time.perf_counter_ns()
            out = pool.map(ident, range(n), **kwargs)
            dt = time.perf_counter_ns() - t0
    elif mode == "executor":
        with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
            list(ex.map(ident, range(100)))
            t0 = time.perf_counter_ns()
            out = list(ex.map(ident, range(n), **kwargs))
            dt = time.perf_counter_ns() - t0
    else:
        raise SystemExit("unknown mode " + mode)
    if out != list(range(n)):
        raise SystemExit("wrong results")
    print(n / (dt / 1e9) / 1e6)


if __name__ == "__main__":
    main()
