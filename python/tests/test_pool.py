"""shmprim.Pool: multiprocessing.Pool's calls (CPython's _TestPool cases,
named after the ones they mirror), and a SIGKILLed worker costing only the
task it was running."""
import multiprocessing
import os
import signal
import time

import pytest

import shmprim


def sqr(x, wait=0.0):
    time.sleep(wait)
    return x * x


def mul(x, y):
    return x * y


def raising():
    raise KeyError("key")


def die_on(x, victim):
    if x == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.002)
    return x


def set_flag(value):
    global _flag
    _flag = value


def get_flag(_):
    return _flag


@pytest.fixture
def pool():
    p = shmprim.Pool(2)
    yield p
    p.terminate()


def test_apply(pool):
    assert pool.apply(sqr, (5,)) == 25
    assert pool.apply(sqr, (), {"x": 3}) == 9


def test_map(pool):
    assert pool.map(sqr, range(10)) == [x * x for x in range(10)]
    assert pool.map(sqr, range(100), chunksize=20) == [x * x for x in range(100)]
    assert pool.map(sqr, []) == []


def test_starmap(pool):
    assert pool.starmap(mul, [(1, 2), (3, 4)]) == [2, 12]


def test_async(pool):
    got = []
    r = pool.apply_async(sqr, (7, 0.05), callback=got.append)
    assert r.get(timeout=30) == 49
    assert r.successful()
    assert got == [49]


def test_async_timeout(pool):
    r = pool.apply_async(sqr, (6, 1.0))
    with pytest.raises(multiprocessing.TimeoutError):
        r.get(timeout=0.05)


def test_async_error_callback(pool):
    errors = []
    r = pool.apply_async(raising, error_callback=errors.append)
    with pytest.raises(KeyError):
        r.get(timeout=30)
    assert isinstance(errors[0], KeyError)


def test_imap(pool):
    assert list(pool.imap(sqr, range(10))) == [x * x for x in range(10)]


def test_imap_unordered(pool):
    assert sorted(pool.imap_unordered(sqr, range(10))) == [x * x for x in range(10)]


def test_initializer():
    with shmprim.Pool(2, initializer=set_flag, initargs=(42,)) as p:
        assert p.map(get_flag, range(4)) == [42] * 4


def test_close_and_join():
    p = shmprim.Pool(2)
    r = p.map_async(sqr, range(20))
    p.close()
    p.join()
    assert r.get(timeout=1) == [x * x for x in range(20)]
    with pytest.raises(ValueError):
        p.apply_async(sqr, (1,))


def test_a_sigkilled_worker_fails_only_its_task(pool):
    """Python's Pool hangs here; shmprim's reports the one task and goes on."""
    results = [pool.apply_async(die_on, (x, 17)) for x in range(60)]
    lost = []
    for x, r in enumerate(results):
        try:
            assert r.get(timeout=60) == x
        except shmprim.WorkerDied as e:
            lost.append(x)
            assert e.exitcode == -signal.SIGKILL
    assert lost == [17]
    # The pool replaced the worker and keeps working.
    assert len(pool.worker_pids()) == 2
    assert pool.map(sqr, range(5)) == [0, 1, 4, 9, 16]
