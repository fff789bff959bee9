"""Queue, SimpleQueue and JoinableQueue: CPython's _test_multiprocessing
cases (each test is named after the one it mirrors), and what shmprim adds."""
import multiprocessing
import pickle
import queue
import time

import pytest

import shmprim


def test_put():
    q = shmprim.Queue(maxsize=6)
    for i in range(6):
        q.put(i)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put(7, block=False)
    with pytest.raises(queue.Full):
        q.put(7, timeout=0.05)
    with pytest.raises(queue.Full, match=f'segment "{q.name}": full'):
        q.put_nowait(7)
    assert [q.get() for _ in range(6)] == list(range(6))
    assert q.empty()


def test_get():
    q = shmprim.Queue()
    with pytest.raises(queue.Empty, match=f'segment "{q.name}": empty'):
        q.get(block=False)
    t = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    assert time.monotonic() - t >= 0.09
    with pytest.raises(queue.Empty):
        q.get(timeout=-1)  # negative counts as 0
    q.put({"k": [1, 2]})
    assert q.get_nowait() == {"k": [1, 2]}


def _child_puts(q, n):
    for i in range(n):
        q.put(("item", i))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_fork(method):
    """Objects cross to a child of either start method (by name, pickled)."""
    ctx = multiprocessing.get_context(method)
    q = shmprim.Queue()
    p = ctx.Process(target=_child_puts, args=(q, 50))
    p.start()
    got = [q.get(timeout=30) for _ in range(50)]
    p.join(30)
    assert p.exitcode == 0
    assert got == [("item", i) for i in range(50)]


def test_qsize():
    q = shmprim.Queue()
    assert q.qsize() == 0
    q.put(1)
    q.put(2)
    assert q.qsize() == 2
    q.get()
    assert q.qsize() == 1


def test_large_objects_of_any_size_round_trip():
    q = shmprim.Queue()
    for n in (0, 1, 500, 511, 512, 100_000, 16 << 20):
        obj = bytes(range(256)) * (n // 256) + b"x" * (n % 256)
        q.put(obj)
        assert q.get(timeout=10) == obj


def _worker(q):
    while True:
        item = q.get()
        if item is None:
            q.task_done()
            return
        q.task_done()


def test_task_done():
    q = shmprim.JoinableQueue()
    workers = [multiprocessing.Process(target=_worker, args=(q,)) for _ in range(4)]
    for w in workers:
        w.start()
    for i in range(40):
        q.put(i)
    q.join()
    for _ in workers:
        q.put(None)
    q.join()
    for w in workers:
        w.join(30)
        assert w.exitcode == 0


def test_task_done_too_many_times_is_value_error():
    q = shmprim.JoinableQueue()
    q.put(1)
    q.get()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()


def test_closed_queue_put_get_exceptions():
    """After close, put raises ValueError as in Python (shmprim's
    QueueClosed is one); and get on the drained queue raises it too, since
    the only sender left (shmprim's end of stream)."""
    q = shmprim.Queue()
    q.put("last")
    q.close()
    with pytest.raises(ValueError):
        q.put("more")
    assert q.get() == "last"
    with pytest.raises(shmprim.QueueClosed):
        q.get()


def test_shutdown_immediate_wakes_a_blocked_get():
    q = shmprim.Queue()
    import threading

    errors = []

    def getter():
        try:
            q.get(timeout=30)
        except shmprim.QueueClosed as e:
            errors.append(e)

    t = threading.Thread(target=getter)
    t.start()
    time.sleep(0.1)
    q.shutdown(immediate=True)
    t.join(5)
    assert not t.is_alive() and len(errors) == 1


def test_open_by_name_and_pickle_by_name():
    q = shmprim.Queue()
    other = shmprim.Queue.open(q.name)
    q.put(5)
    assert other.get() == 5
    again = pickle.loads(pickle.dumps(q))
    assert again.name == q.name
    again.put(6)
    assert q.get() == 6


def test_simple_queue():
    q = shmprim.SimpleQueue()
    assert q.empty()
    q.put(1)
    assert not q.empty()
    assert q.get() == 1
    q.close()


def _report_participant(q, out):
    out.put(q._q.participant())


def test_a_forked_child_is_a_participant_of_its_own():
    """A forked child opens every object again, so that it holds a
    participant slot of its own: its death then shows to the survivors
    (a put it dies in the middle of is recovered), where with the parent's
    inherited handle it would look alive as long as the parent lives."""
    ctx = multiprocessing.get_context("fork")
    q, out = shmprim.Queue(), shmprim.Queue()
    p = ctx.Process(target=_report_participant, args=(q, out))
    p.start()
    child = out.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    assert child != q._q.participant()
