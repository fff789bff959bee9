"""``shmprim.Pool``: ``multiprocessing.Pool`` for Python callables, where a
worker that dies costs only the task it was running.

Each worker has a queue of its own, so the pool always knows which tasks it
handed to which worker; before running a task, the worker writes its id into
a shared slot of its own. When a worker dies (SIGKILL included), the pool
fails the task that slot names with ``WorkerDied``, sends the tasks queued
behind it to the other workers (they never started), and starts a
replacement. One thread of the pool's process hands tasks out and collects
results; the workers are Python's own ``multiprocessing.Process``es.
"""

import itertools
import multiprocessing
import os
import queue as _queue
import threading

from . import Queue, Value

__all__ = ["Pool", "WorkerDied", "AsyncResult", "MapResult"]

# Tasks handed to one worker ahead of the one it runs.
_DEPTH = 2
# How often the pool looks for dead workers while it has nothing else to do.
_TICK = 0.02


class WorkerDied(Exception):
    """The worker running this task died (a signal, ``os._exit``, the OOM
    killer): the task's result is lost; the pool and every other task go
    on."""

    def __init__(self, pid, exitcode):
        super().__init__(f"worker {pid} died (exit code {exitcode}) running this task")
        self.pid = pid
        self.exitcode = exitcode


def _worker_main(tasks, results, slot, initializer, initargs):
    if initializer is not None:
        initializer(*initargs)
    while True:
        item = tasks.get()
        if item is None:
            return
        task_id, func, args, kwds, star = item
        # Published before the task runs: if this process dies from here on,
        # the pool knows which task it took with it.
        slot.value = task_id
        try:
            value = func(*args, **kwds) if not star else [func(*a) for a in args]
            outcome = (task_id, True, value)
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            outcome = (task_id, False, e)
        try:
            results.put(outcome)
        except Exception as e:  # an unpicklable result
            results.put((task_id, False, e))
        slot.value = 0


class _Worker:
    def __init__(self, ctx, results, initializer, initargs):
        self.tasks = Queue(maxsize=_DEPTH + 1)
        self.slot = Value("q", 0, lock=False)
        self.sent = {}  # task id -> the task, in order
        self.proc = ctx.Process(
            target=_worker_main,
            args=(self.tasks, results, self.slot, initializer, initargs),
            daemon=True,
        )
        self.proc.start()


class AsyncResult:
    """``multiprocessing.pool.AsyncResult``."""

    def __init__(self, callback=None, error_callback=None):
        self._event = threading.Event()
        self._ok = None
        self._value = None
        self._callback = callback
        self._error_callback = error_callback

    def _set(self, ok, value):
        self._ok, self._value = ok, value
        try:
            if ok and self._callback is not None:
                self._callback(value)
            elif not ok and self._error_callback is not None:
                self._error_callback(value)
        finally:
            self._event.set()

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError("the result is not ready")
        return self._ok

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        if not self._event.wait(timeout):
            raise multiprocessing.TimeoutError
        if self._ok:
            return self._value
        raise self._value


class MapResult(AsyncResult):
    """The pending result of ``map_async``: a list, or the first error."""

    def __init__(self, n, callback=None, error_callback=None):
        super().__init__(callback, error_callback)
        self._parts = [None] * n
        self._left = n
        self._error = None
        if n == 0:
            self._set(True, [])

    def _part(self, i, ok, value):
        if ok:
            self._parts[i] = value
        elif self._error is None:
            self._error = value
        self._left -= 1
        if self._left == 0:
            if self._error is None:
                self._set(True, self._parts)
            else:
                self._set(False, self._error)


class Pool:
    """``multiprocessing.Pool(processes, initializer, initargs)``."""

    def __init__(self, processes=None, initializer=None, initargs=(), context=None):
        if processes is None:
            processes = os.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        self._ctx = context or multiprocessing.get_context()
        self._initializer, self._initargs = initializer, initargs
        self._results = Queue(maxsize=4096)
        self._workers = [self._start_worker() for _ in range(processes)]
        self._ids = itertools.count(1)
        self._pending = {}  # task id -> (callback(ok, value))
        self._backlog = []  # tasks waiting for room at a worker
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._state = "run"
        self._manager = threading.Thread(target=self._manage, daemon=True)
        self._manager.start()

    def _start_worker(self):
        return _Worker(self._ctx, self._results, self._initializer, self._initargs)

    # ------------------------------------------------------------ the manager

    def _submit(self, func, args, kwds, done, star=False):
        if self._state != "run":
            raise ValueError("Pool not running")
        task_id = next(self._ids)
        with self._lock:
            self._pending[task_id] = done
            self._backlog.append((task_id, func, args, kwds, star))
        self._wake.set()

    def _dispatch(self):
        """Hands backlog tasks to workers with room, least loaded first."""
        with self._lock:
            while self._backlog:
                w = min(self._workers, key=lambda w: len(w.sent))
                if len(w.sent) > _DEPTH:
                    return
                task = self._backlog[0]
                try:
                    w.tasks.put(task, block=False)
                except _queue.Full:
                    return
                except Exception as e:  # an unpicklable task
                    self._backlog.pop(0)
                    done = self._pending.pop(task[0], None)
                    if done:
                        done(False, e)
                    continue
                self._backlog.pop(0)
                w.sent[task[0]] = task

    def _finish(self, task_id, ok, value):
        with self._lock:
            done = self._pending.pop(task_id, None)
            for w in self._workers:
                if w.sent.pop(task_id, None) is not None:
                    break
        if done is not None:
            done(ok, value)

    def _bury(self, w):
        """A worker died: fail its running task, requeue the rest, replace it."""
        # Results it sent before dying come first, so that a task it finished
        # is neither failed nor run again.
        self._drain()
        with self._lock:
            running = w.slot.value
            lost = running if w.sent.pop(running, None) is not None else None
            self._backlog[:0] = list(w.sent.values())
            w.sent.clear()
            i = self._workers.index(w)
            self._workers[i] = self._start_worker() if self._state != "terminate" else w
        if lost is not None:
            self._finish(lost, False, WorkerDied(w.proc.pid, w.proc.exitcode))

    def _drain(self):
        while True:
            try:
                task_id, ok, value = self._results.get(block=False)
            except _queue.Empty:
                return
            self._finish(task_id, ok, value)

    def _manage(self):
        while self._state != "terminate":
            self._dispatch()
            try:
                task_id, ok, value = self._results.get(timeout=_TICK)
                self._finish(task_id, ok, value)
                self._drain()
            except _queue.Empty:
                pass
            except Exception as e:  # a result that does not unpickle
                self._fail_all_unknown(e)
            for w in list(self._workers):
                if w.proc.exitcode is not None and self._state != "terminate":
                    self._bury(w)
            if self._state == "close" and not self._pending:
                break

    def _fail_all_unknown(self, e):
        """A result that could not be read: its task cannot be named, so the
        error goes to the caller of the oldest pending task."""
        with self._lock:
            if not self._pending:
                return
            oldest = min(self._pending)
        self._finish(oldest, False, e)

    # ------------------------------------------------------------ the API

    def apply_async(self, func, args=(), kwds=None, callback=None, error_callback=None):
        r = AsyncResult(callback, error_callback)
        self._submit(func, tuple(args), dict(kwds or {}), r._set)
        return r

    def apply(self, func, args=(), kwds=None):
        return self.apply_async(func, args, kwds).get()

    def _map_async(self, func, iterable, chunksize, star, callback=None, error_callback=None):
        items = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), len(self._workers) * 4)
            if extra:
                chunksize += 1
        chunksize = max(1, chunksize)
        chunks = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
        r = MapResult(len(items), callback, error_callback)
        for c, chunk in enumerate(chunks):
            base = c * chunksize

            def done(ok, value, base=base, n=len(chunk)):
                for k in range(n):
                    if ok:
                        r._part(base + k, True, value[k])
                    else:
                        r._part(base + k, False, value)

            args = chunk if star else [(x,) for x in chunk]
            self._submit(func, args, {}, done, star=True)
        return r

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def map(self, func, iterable, chunksize=None):
        return self.map_async(func, iterable, chunksize).get()

    def starmap(self, func, iterable, chunksize=None):
        return self._map_async(func, [tuple(a) for a in iterable], chunksize, True).get()

    def imap(self, func, iterable, chunksize=1):
        results = [self.apply_async(func, (x,)) for x in iterable]
        for r in results:
            yield r.get()

    def imap_unordered(self, func, iterable, chunksize=1):
        done = _queue.SimpleQueue()
        n = 0
        for x in iterable:
            self._submit(func, (x,), {}, lambda ok, v: done.put((ok, v)))
            n += 1
        for _ in range(n):
            ok, v = done.get()
            if not ok:
                raise v
            yield v

    def close(self):
        self._state = "close"

    def terminate(self):
        if not self._workers:
            return
        self._state = "terminate"
        for w in self._workers:
            if w.proc.is_alive():
                w.proc.kill()
        for w in self._workers:
            w.proc.join(5)
        if self._manager is not threading.current_thread():
            self._manager.join(5)
        with self._lock:
            pending, self._pending = self._pending, {}
        for done in pending.values():
            done(False, ValueError("Pool terminated"))
        self._release()

    def _release(self):
        """Lets the workers' queues and slots go (and their segments with
        them): the pool is done."""
        self._workers = []
        self._results = None

    def join(self):
        if self._state == "run":
            raise ValueError("Pool is still running")
        if self._state == "close":
            self._manager.join()
            for w in self._workers:
                try:
                    w.tasks.put(None, timeout=5)
                except _queue.Full:
                    w.proc.kill()
            for w in self._workers:
                w.proc.join(30)
                if w.proc.is_alive():
                    w.proc.kill()
                    w.proc.join(5)
            self._release()

    def worker_pids(self):
        """The pids of the current workers."""
        return [w.proc.pid for w in self._workers]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.terminate()
