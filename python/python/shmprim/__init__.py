"""shmprim: Python's ``multiprocessing`` primitives in named shared memory.

``import shmprim as mp`` and the names below behave as ``multiprocessing``'s:
``Queue``, ``SimpleQueue``, ``JoinableQueue``, ``Pipe``, ``Lock``, ``RLock``,
``Semaphore``, ``BoundedSemaphore``, ``Event``, ``Condition``, ``Barrier``,
``Value``, ``Array``, and ``Process`` (Python's own). Each object lives in a
named shared-memory segment: it pickles by name, so it passes to a child
process whatever the start method, and ``Queue.open(name)`` (and the like)
opens the same object in any process, including Rust and C programs using
the shmprim library.

Where shmprim differs from ``multiprocessing`` on purpose:

- A lock whose holder died holding it is not lost: the next ``acquire``
  gets it, with an ``OwnerDiedWarning``.
- A lock is released by the thread that acquired it (``RuntimeError``
  otherwise), as ``threading.Lock`` would not require.
- ``Queue(maxsize=0)`` holds at most 1024 items (shared memory is sized at
  creation); a ``put`` beyond waits as with any ``maxsize``.
- Every blocking call releases the GIL and ends with ``KeyboardInterrupt``
  on Ctrl-C.
"""

import itertools as _itertools
import os as _os
import pickle as _pickle
import queue as _queue
import threading as _threading
import warnings as _warnings
import weakref as _weakref
from multiprocessing import Process, active_children, cpu_count, current_process

from . import _native

__all__ = [
    "Array",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Condition",
    "Connection",
    "Event",
    "JoinableQueue",
    "Lock",
    "OwnerDiedWarning",
    "Pipe",
    "Pool",
    "Process",
    "Queue",
    "QueueClosed",
    "RLock",
    "Semaphore",
    "SimpleQueue",
    "Value",
    "WorkerDied",
    "active_children",
    "cpu_count",
    "current_process",
]

BrokenBarrierError = _threading.BrokenBarrierError
QueueClosed = _native.QueueClosed
"""Raised by a ``get`` on a queue that was shut down (or whose every sender
is gone) and is drained, and by a ``put`` on a closed queue handle."""

# Items a queue created with maxsize <= 0 holds.
_DEFAULT_CAPACITY = 1024
# Bytes of a queue slot: a pickle up to this long travels in the queue, a
# longer one out of line, in a segment of its own (see the Rust
# ObjectQueue), which costs a few system calls.
_SLOT = 4096
_PICKLE_PROTOCOL = 5

_names = _itertools.count()


def _fresh_name(kind):
    return f"shmprim-py-{_os.getpid()}-{next(_names)}-{kind}"


# Every object made or opened in this process: a child forked from it opens
# each again, so that the child is a participant of its own in every segment
# (its death then shows, as its parent's does) instead of sharing its
# parent's inherited handle.
_live = _weakref.WeakSet()


def _after_fork_in_child():
    for obj in list(_live):
        obj._reopen()


_os.register_at_fork(after_in_child=_after_fork_in_child)


class _Shared:
    """What every object shares: a name, the process its handle belongs to,
    and the reopening in a forked child."""

    def _track(self):
        self._pid = _os.getpid()
        _live.add(self)

    def _reopen(self):
        if self._pid != _os.getpid():
            self._pid = _os.getpid()
            self._open_native()


class OwnerDiedWarning(RuntimeWarning):
    """A lock was acquired after its previous holder died holding it: what it
    protected may be half-updated."""


# ---------------------------------------------------------------- queues


class Queue(_Shared):
    """``multiprocessing.Queue``: any picklable object (pickle protocol 5),
    large ones included, in a shared-memory queue.

    ``Queue.open(name)`` opens an existing one; ``q.name`` is its name.
    """

    _joinable = False

    def __init__(self, maxsize=0, *, name=None, _open=False):
        self._maxsize = maxsize if maxsize > 0 else _DEFAULT_CAPACITY
        self._create = not _open
        self.name = name or _fresh_name("queue")
        self._q = _native.Queue(
            self.name,
            self._maxsize,
            _SLOT,
            create=self._create,
            joinable=self._joinable,
            # A queue this process named for itself goes with this object;
            # one named by the caller stays until unlinked.
            unlink_on_drop=self._create and name is None,
        )
        self._bind()
        self._track()

    def _bind(self):
        # The native calls themselves: no Python frame in between.
        self.put = self._q.put
        self.get = self._q.get

    def _open_native(self):
        self._q = _native.Queue(self.name, self._maxsize, _SLOT, create=False)
        self._bind()

    @classmethod
    def open(cls, name):
        """Opens the queue called ``name`` (made by any process, in any
        language)."""
        return cls(name=name, _open=True)

    def __reduce__(self):
        return (_reopen, (type(self), self.name))

    def put(self, obj, block=True, timeout=None):
        """Puts ``obj``; ``queue.Full`` if there is no room within the wait."""
        self._q.put(obj, block, timeout)

    def get(self, block=True, timeout=None):
        """The next object; ``queue.Empty`` if none comes within the wait."""
        return self._q.get(block, timeout)

    def put_nowait(self, obj):
        return self.put(obj, False)

    def get_nowait(self):
        return self.get(False)

    def put_bytes(self, data, block=True, timeout=None):
        """Puts raw bytes, as a Rust or C program reads them with
        ``ObjectQueue::get_message``."""
        if not self._q.put_bytes(bytes(data), block, timeout):
            raise _queue.Full(f'segment "{self.name}": full')

    def get_bytes(self, block=True, timeout=None):
        """The next message as raw bytes (what ``put_bytes`` or a Rust
        ``ObjectQueue::put_message`` put)."""
        data = self._q.get_bytes(block, timeout)
        if data is None:
            raise _queue.Empty(f'segment "{self.name}": empty')
        return data

    def qsize(self):
        return self._q.qsize()

    def empty(self):
        return self._q.qsize() == 0

    def full(self):
        return self._q.qsize() >= self._q.capacity()

    def close(self):
        """This process puts no more on this handle."""
        self._q.close()

    def join_thread(self):
        """Nothing to join: shmprim has no feeder thread."""

    def cancel_join_thread(self):
        """Nothing to cancel: shmprim has no feeder thread."""

    def shutdown(self, immediate=False):
        """Python 3.13's ``Queue.shutdown``, for every process."""
        self._q.shutdown(immediate)


class SimpleQueue(Queue):
    """``multiprocessing.SimpleQueue``: ``put``, ``get``, ``empty``, ``close``."""


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue``: ``task_done`` and ``join``."""

    _joinable = True

    def task_done(self):
        """One item is finished; ``ValueError`` if more calls than items."""
        self._q.task_done()

    def join(self):
        """Waits until every item put has been ``task_done``."""
        self._q.join(None)


def _reopen(cls, name, *args):
    return cls.open(name, *args)


# ---------------------------------------------------------------- locks


class Lock(_Shared):
    """``multiprocessing.Lock``, robust: a holder's death does not lose it."""

    _recursive = False

    def __init__(self, *, name=None, _open=False):
        self.name = name or _fresh_name("rlock" if self._recursive else "lock")
        self._lock = _native.Lock(
            self.name,
            create=not _open,
            recursive=self._recursive,
            unlink_on_drop=not _open and name is None,
        )
        self._bind()
        self._track()

    def _bind(self):
        # The native calls themselves: no Python frame in between.
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def _open_native(self):
        self._lock = _native.Lock(self.name, create=False, recursive=self._recursive)
        self._bind()

    @classmethod
    def open(cls, name):
        return cls(name=name, _open=True)

    def __reduce__(self):
        return (_reopen, (type(self), self.name))

    def acquire(self, block=True, timeout=None):
        """Whether it was acquired within the wait; warns with
        ``OwnerDiedWarning`` when its previous holder died holding it."""
        return self._lock.acquire(block, timeout)

    def release(self):
        self._lock.release()

    def locked(self):
        return self._lock.locked()

    def _is_owned(self):
        return self._lock.is_owned()

    def __enter__(self):
        return self._lock.acquire(True, None)

    def __exit__(self, *exc):
        self._lock.release()

    def __repr__(self):
        return f"<shmprim.{type(self).__name__} {self.name}>"


class RLock(Lock):
    """``multiprocessing.RLock``, robust."""

    _recursive = True


class Condition(_Shared):
    """``multiprocessing.Condition`` over a shmprim ``Lock`` or ``RLock``
    (an ``RLock`` by default)."""

    def __init__(self, lock=None, *, name=None, _open=False, _lock_name=None):
        if lock is None:
            lock = RLock.open(_lock_name) if _open else RLock()
        self._lock = lock
        self.name = name or _fresh_name("cond")
        self._cv = _native.Condvar_(
            self.name, create=not _open, unlink_on_drop=not _open and name is None
        )
        self._track()

    def _open_native(self):
        self._cv = _native.Condvar_(self.name, create=False)

    def acquire(self, block=True, timeout=None):
        return self._lock.acquire(block, timeout)

    def release(self):
        self._lock.release()

    @classmethod
    def open(cls, name, lock_name, recursive=True):
        lock = (RLock if recursive else Lock).open(lock_name)
        return cls(lock, name=name, _open=True)

    def __reduce__(self):
        return (
            _reopen,
            (type(self), self.name, self._lock.name, isinstance(self._lock, RLock)),
        )

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def wait(self, timeout=None):
        """Releases the lock, waits for a notification or the timeout, and
        takes the lock back; whether it was notified."""
        if timeout is not None and timeout < 0:
            timeout = 0.0
        return self._cv.wait(self._lock._lock, timeout)

    def wait_for(self, predicate, timeout=None):
        """Waits until ``predicate()`` is true or the timeout passes; the last
        value of ``predicate()``."""
        result = predicate()
        if result:
            return result
        deadline = None
        if timeout is not None:
            import time

            deadline = time.monotonic() + timeout
        while not result:
            if deadline is not None:
                import time

                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.wait(left)
            else:
                self.wait()
            result = predicate()
        return result

    def notify(self, n=1):
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._cv.notify(n)

    def notify_all(self):
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._cv.notify_all()


class Semaphore(_Shared):
    """``multiprocessing.Semaphore``."""

    _bounded = False

    def __init__(self, value=1, *, name=None, _open=False):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self.name = name or _fresh_name("sem")
        self._sem = _native.Semaphore_(
            self.name,
            value,
            value if self._bounded else None,
            create=not _open,
            unlink_on_drop=not _open and name is None,
        )
        self._track()

    def _open_native(self):
        self._sem = _native.Semaphore_(self.name, 0, None, create=False)

    @classmethod
    def open(cls, name):
        return cls(0, name=name, _open=True)

    def __reduce__(self):
        return (_reopen, (type(self), self.name))

    def acquire(self, block=True, timeout=None):
        return self._sem.acquire(block, timeout)

    def release(self, n=1):
        """Releases ``n`` permits; ``ValueError`` above a bounded
        semaphore's initial value."""
        self._sem.release(n)

    def get_value(self):
        return self._sem.get_value()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class BoundedSemaphore(Semaphore):
    """``multiprocessing.BoundedSemaphore``."""

    _bounded = True


class Event(_Shared):
    """``multiprocessing.Event``."""

    def __init__(self, *, name=None, _open=False):
        self.name = name or _fresh_name("event")
        self._ev = _native.Event_(
            self.name, create=not _open, unlink_on_drop=not _open and name is None
        )
        self._track()

    def _open_native(self):
        self._ev = _native.Event_(self.name, create=False)

    @classmethod
    def open(cls, name):
        return cls(name=name, _open=True)

    def __reduce__(self):
        return (_reopen, (type(self), self.name))

    def is_set(self):
        return self._ev.is_set()

    def set(self):
        self._ev.set()

    def clear(self):
        self._ev.clear()

    def wait(self, timeout=None):
        if timeout is not None and timeout < 0:
            timeout = 0.0
        return self._ev.wait(timeout)


class Barrier(_Shared):
    """``multiprocessing.Barrier``. ``action`` runs in the party whose
    ``wait`` returns 0, before that ``wait`` returns (the other parties may
    already go on: unlike Python's, they do not wait for it); a timeout or a
    failing action breaks the barrier."""

    def __init__(self, parties, action=None, timeout=None, *, name=None, _open=False):
        self.name = name or _fresh_name("barrier")
        self._b = _native.Barrier_(
            self.name, parties, create=not _open, unlink_on_drop=not _open and name is None
        )
        self._action = action
        self._timeout = timeout
        self._track()

    def _open_native(self):
        self._b = _native.Barrier_(self.name, 0, create=False)

    @classmethod
    def open(cls, name, action=None, timeout=None):
        return cls(0, action, timeout, name=name, _open=True)

    def __reduce__(self):
        return (_reopen, (type(self), self.name, self._action, self._timeout))

    def wait(self, timeout=None):
        if timeout is None:
            timeout = self._timeout
        if timeout is not None and timeout < 0:
            timeout = 0.0
        index = self._b.wait(timeout)
        if index is None:
            self._b.abort()
            raise BrokenBarrierError(f'segment "{self.name}": barrier is broken')
        if index == 0 and self._action is not None:
            try:
                self._action()
            except BaseException:
                self._b.abort()
                raise
        return index

    def reset(self):
        self._b.reset()

    def abort(self):
        self._b.abort()

    @property
    def parties(self):
        return self._b.parties()

    @property
    def n_waiting(self):
        return self._b.n_waiting()

    @property
    def broken(self):
        return self._b.broken()


# ---------------------------------------------------------------- values

_TYPECODES = "bBhHiIlLqQfd"


def _typecode(typecode_or_type):
    if isinstance(typecode_or_type, str) and typecode_or_type in _TYPECODES:
        return typecode_or_type
    import ctypes

    for code, ctype in {
        "b": ctypes.c_byte,
        "B": ctypes.c_ubyte,
        "h": ctypes.c_short,
        "H": ctypes.c_ushort,
        "i": ctypes.c_int,
        "I": ctypes.c_uint,
        "q": ctypes.c_longlong,
        "Q": ctypes.c_ulonglong,
        "f": ctypes.c_float,
        "d": ctypes.c_double,
    }.items():
        if typecode_or_type is ctype:
            return code
    if typecode_or_type is ctypes.c_long:
        return "l"
    if typecode_or_type is ctypes.c_ulong:
        return "L"
    raise ValueError(f"unsupported type {typecode_or_type!r} (typecodes: {_TYPECODES})")


class Array(_Shared):
    """``multiprocessing.Array`` of numbers (typecodes ``bBhHiIlLqQfd``)."""

    def __init__(self, typecode_or_type, size_or_initializer, *, lock=True, name=None, _open=False):
        self._typecode = _typecode(typecode_or_type)
        if isinstance(size_or_initializer, int):
            size, init = size_or_initializer, None
        else:
            init = list(size_or_initializer)
            size = len(init)
        self.name = name or _fresh_name("array")
        self._a = _native.Array_(
            self.name,
            self._typecode,
            size,
            create=not _open,
            unlink_on_drop=not _open and name is None,
        )
        if init is not None:
            for i, v in enumerate(init):
                self._a.set(i, v)
        self._track()
        self._lock = None
        if lock is True:
            self._lock = RLock()
        elif lock:
            self._lock = lock

    @classmethod
    def open(cls, name, typecode, lock_name=None):
        obj = cls(typecode, 0, lock=False, name=name, _open=True)
        if lock_name is not None:
            obj._lock = RLock.open(lock_name)
        return obj

    def __reduce__(self):
        lock_name = self._lock.name if self._lock is not None else None
        return (_reopen, (type(self), self.name, self._typecode, lock_name))

    def _open_native(self):
        self._a = _native.Array_(self.name, self._typecode, 0, create=False)

    def get_lock(self):
        if self._lock is None:
            raise AttributeError("this Array was made with lock=False")
        return self._lock

    def get_obj(self):
        """The elements themselves, with the buffer protocol:
        ``memoryview(arr.get_obj())`` and ``numpy.frombuffer(arr.get_obj(),
        dtype)`` see the shared memory without a copy (as a ``RawArray``:
        no lock is taken for them)."""
        return self._a

    def __len__(self):
        return len(self._a)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._a.get(k) for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        return self._a.get(i)

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            idx = range(*i.indices(len(self)))
            values = list(value)
            if len(values) != len(idx):
                raise ValueError("can only assign a sequence of the same size")
            for k, v in zip(idx, values):
                self._a.set(k, v)
            return
        if i < 0:
            i += len(self)
        self._a.set(i, value)

    def __iter__(self):
        return iter(self[:])

    def __enter__(self):
        return self.get_lock().__enter__()

    def __exit__(self, *exc):
        return self.get_lock().__exit__(*exc)


class Value(_Shared):
    """``multiprocessing.Value`` of a number; ``get_lock()`` for updates that
    read and write."""

    def __init__(self, typecode_or_type, value=0, *, lock=True, name=None, _open=False):
        self._arr = Array(typecode_or_type, 1, lock=lock, name=name, _open=_open)
        self._a = self._arr._a
        self.name = self._arr.name
        if not _open:
            self._a.set(0, value)
        self._track()

    def _open_native(self):
        self._arr._reopen()
        self._a = self._arr._a

    @classmethod
    def open(cls, name, typecode, lock_name=None):
        obj = cls.__new__(cls)
        obj._arr = Array.open(name, typecode, lock_name)
        obj._a = obj._arr._a
        obj.name = name
        obj._track()
        return obj

    def __reduce__(self):
        lock = self._arr._lock
        return (
            _reopen,
            (type(self), self.name, self._arr._typecode, lock.name if lock else None),
        )

    @property
    def value(self):
        return self._a.get(0)

    @value.setter
    def value(self, v):
        self._a.set(0, v)

    def get_lock(self):
        return self._arr.get_lock()

    def get_obj(self):
        return self._arr

    def __enter__(self):
        return self.get_lock().__enter__()

    def __exit__(self, *exc):
        return self.get_lock().__exit__(*exc)


# ---------------------------------------------------------------- pipes


class Connection:
    """``multiprocessing.connection.Connection``: one end of a ``Pipe``. The
    first process to use an end claims it; ``EOFError`` once the other end
    is closed or its process is gone and everything sent was received."""

    def __init__(self, pipe_name, end, owner=None):
        self._pipe_name = pipe_name
        self._end = end
        self._owner = owner  # keeps the creator's segment alive here
        self._c = _native.Connection_(pipe_name, end)

    def __reduce__(self):
        return (Connection, (self._pipe_name, self._end))

    def send(self, obj):
        self._c.send_bytes(_pickle.dumps(obj, protocol=_PICKLE_PROTOCOL))

    def recv(self):
        return _pickle.loads(self._c.recv_bytes())

    def send_bytes(self, buf, offset=0, size=None):
        m = memoryview(buf).cast("B")
        if offset < 0 or offset > len(m):
            raise ValueError("offset is out of range")
        if size is None:
            size = len(m) - offset
        if size < 0 or offset + size > len(m):
            raise ValueError("size is out of range")
        self._c.send_bytes(bytes(m[offset : offset + size]))

    def recv_bytes(self, maxlength=None):
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = self._c.recv_bytes()
        if maxlength is not None and len(data) > maxlength:
            raise OSError("bad message length")
        return data

    def recv_bytes_into(self, buf, offset=0):
        m = memoryview(buf).cast("B")
        if offset < 0 or offset > len(m):
            raise ValueError("negative offset" if offset < 0 else "offset too large")
        data = self._c.recv_bytes()
        if offset + len(data) > len(m):
            from multiprocessing import BufferTooShort

            raise BufferTooShort(data)
        m[offset : offset + len(data)] = data
        return len(data)

    def poll(self, timeout=0.0):
        if timeout is not None and timeout < 0:
            timeout = 0.0
        return self._c.poll(timeout)

    def close(self):
        self._c.close()

    @property
    def closed(self):
        return self._c.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def Pipe(duplex=True, *, capacity=1 << 16, max_message=4096):
    """``multiprocessing.Pipe``: two ``Connection``s. With ``duplex=False``,
    the first only receives and the second only sends."""
    name = _fresh_name("pipe")
    owner = _native.Pipe_(name, capacity, max_message, duplex, unlink_on_drop=True)
    return Connection(name, 0, owner), Connection(name, 1, owner)


# The pool is built on the objects above.
from .pool import Pool, WorkerDied  # noqa: E402
