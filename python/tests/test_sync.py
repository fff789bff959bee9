"""Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier, Value
and Array: CPython's _test_multiprocessing cases (each test named after the
one it mirrors), and shmprim's behaviour where it differs on purpose."""
import multiprocessing
import os
import signal
import threading
import time
import warnings

import pytest

import shmprim


def test_lock():
    lock = shmprim.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.locked()
    lock.release()
    assert not lock.locked()
    # Python raises ValueError for a release of an unlocked lock; shmprim's
    # lock belongs to the thread that took it, and says so: RuntimeError.
    with pytest.raises(RuntimeError):
        lock.release()


def test_lock_context():
    lock = shmprim.Lock()
    with lock:
        assert lock.locked()
    assert not lock.locked()


def test_rlock():
    lock = shmprim.RLock()
    assert lock.acquire() and lock.acquire() and lock.acquire()
    lock.release()
    lock.release()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def _hold_and_die(lock, ready):
    lock.acquire()
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def test_lock_of_a_killed_holder_is_acquired_with_a_warning():
    """Python's lock would stay held for ever; shmprim's is handed on."""
    lock, ready = shmprim.Lock(), shmprim.Event()
    p = multiprocessing.Process(target=_hold_and_die, args=(lock, ready))
    p.start()
    assert ready.wait(30)
    p.join(30)
    with pytest.warns(shmprim.OwnerDiedWarning):
        assert lock.acquire(timeout=10)
    lock.release()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lock.acquire(timeout=1)  # marked consistent: no second warning
    lock.release()


def test_semaphore():
    sem = shmprim.Semaphore(2)
    assert sem.get_value() == 2
    assert sem.acquire()
    assert sem.acquire(False)
    assert sem.get_value() == 0
    assert sem.acquire(False) is False
    sem.release()
    assert sem.get_value() == 1
    sem.release()
    sem.release()  # unbounded
    assert sem.get_value() == 3


def test_bounded_semaphore():
    sem = shmprim.BoundedSemaphore(2)
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()


def test_timeout():
    sem = shmprim.Semaphore(0)
    t = time.monotonic()
    assert sem.acquire(timeout=0.1) is False
    assert time.monotonic() - t >= 0.09
    assert sem.acquire(timeout=-1) is False


def _set_later(ev, delay):
    time.sleep(delay)
    ev.set()


def test_event():
    ev = shmprim.Event()
    assert ev.is_set() is False
    assert ev.wait(0.0) is False
    assert ev.wait(0.05) is False
    ev.set()
    assert ev.is_set() is True
    assert ev.wait() is True
    assert ev.wait(0.0) is True
    ev.clear()
    p = multiprocessing.Process(target=_set_later, args=(ev, 0.1))
    p.start()
    assert ev.wait(30) is True
    p.join(30)


def _notify_after(cond, state, delay):
    time.sleep(delay)
    with cond:
        state.value = 1
        cond.notify_all()


def test_notify_all():
    cond = shmprim.Condition()
    state = shmprim.Value("i", 0)
    p = multiprocessing.Process(target=_notify_after, args=(cond, state, 0.1))
    p.start()
    with cond:
        assert cond.wait_for(lambda: state.value == 1, timeout=30)
    p.join(30)


def test_waitfor_timeout():
    cond = shmprim.Condition()
    with cond:
        t = time.monotonic()
        assert not cond.wait_for(lambda: False, timeout=0.1)
        assert time.monotonic() - t >= 0.09


def test_condition_notify_needs_the_lock():
    cond = shmprim.Condition(shmprim.Lock())
    with pytest.raises(RuntimeError):
        cond.notify()
    with cond:
        cond.notify(2)
        assert cond.wait(0.01) is False


def _party(barrier, out):
    out.put(barrier.wait(30))


def test_barrier():
    barrier = shmprim.Barrier(3)
    out = shmprim.Queue()
    ps = [multiprocessing.Process(target=_party, args=(barrier, out)) for _ in range(2)]
    for p in ps:
        p.start()
    mine = barrier.wait(30)
    got = sorted([mine, out.get(timeout=30), out.get(timeout=30)])
    assert got == [0, 1, 2]
    for p in ps:
        p.join(30)


def test_action():
    calls = []
    barrier = shmprim.Barrier(1, action=lambda: calls.append(1))
    barrier.wait()
    barrier.wait()
    assert calls == [1, 1]


def test_timeout_breaks_the_barrier():
    barrier = shmprim.Barrier(2)
    with pytest.raises(shmprim.BrokenBarrierError):
        barrier.wait(0.05)
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken


def test_abort():
    barrier = shmprim.Barrier(2)
    barrier.abort()
    with pytest.raises(shmprim.BrokenBarrierError):
        barrier.wait(1)


def _add(counter, n):
    for _ in range(n):
        with counter.get_lock():
            counter.value += 1


def test_value():
    counter = shmprim.Value("i", 0)
    ps = [multiprocessing.Process(target=_add, args=(counter, 500)) for _ in range(4)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert counter.value == 2000
    d = shmprim.Value("d", 1.5)
    d.value *= 2
    assert d.value == 3.0


def test_array():
    arr = shmprim.Array("i", range(10))
    assert len(arr) == 10
    assert arr[:] == list(range(10))
    arr[3] = -3
    arr[-1] = 99
    assert arr[3] == -3 and arr[9] == 99
    arr[0:2] = [7, 8]
    assert list(arr)[:3] == [7, 8, 2]
    with pytest.raises(ValueError):
        arr[0:2] = [1]
    z = shmprim.Array("d", 4)
    assert z[:] == [0.0] * 4


def test_getobj_getlock():
    val = shmprim.Value("i", 5)
    assert isinstance(val.get_lock(), shmprim.RLock)
    raw = shmprim.Value("i", 5, lock=False)
    with pytest.raises(AttributeError):
        raw.get_lock()


def test_objects_cross_to_a_spawned_child_by_name():
    ctx = multiprocessing.get_context("spawn")
    ev, sem = shmprim.Event(), shmprim.Semaphore(0)
    p = ctx.Process(target=_set_later, args=(ev, 0.0))
    p.start()
    assert ev.wait(30)
    p.join(30)
    assert p.exitcode == 0
    del sem


def _fill_with_numpy(arr):
    import numpy as np

    view = np.frombuffer(arr.get_obj(), dtype=np.float64)
    view[:] = np.arange(len(view)) * 0.5


def test_a_numpy_array_filled_in_one_process_is_read_in_another_without_a_copy():
    np = __import__("numpy")
    arr = shmprim.Array("d", 1000)
    p = multiprocessing.Process(target=_fill_with_numpy, args=(arr,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    view = np.frombuffer(arr.get_obj(), dtype=np.float64)
    assert (view == np.arange(1000) * 0.5).all()
    # The same memory, not a copy: a write through numpy shows in the Array.
    view[7] = -1.0
    assert arr[7] == -1.0
    m = memoryview(arr.get_obj())
    assert (m.format, m.itemsize, m.shape, m.readonly) == ("d", 8, (1000,), False)
    m.release()
    del view
