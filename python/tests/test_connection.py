"""Pipe and Connection: CPython's _test_multiprocessing connection cases
(named after the ones they mirror), end of file on a closed or dead peer,
messages of any length."""
import multiprocessing
import os
import signal

import pytest

import shmprim


def test_connection():
    a, b = shmprim.Pipe()
    a.send({"x": (1, 2.0, "three")})
    assert b.recv() == {"x": (1, 2.0, "three")}
    b.send_bytes(b"0123456789", 2, 5)
    assert a.recv_bytes() == b"23456"
    a.send_bytes(b"hello")
    buf = bytearray(10)
    assert b.recv_bytes_into(buf, 3) == 5
    assert bytes(buf) == b"\0\0\0hello\0\0"
    a.send_bytes(b"x" * 20)
    with pytest.raises(multiprocessing.BufferTooShort):
        b.recv_bytes_into(bytearray(4))
    assert b.poll() is False
    assert b.poll(0.05) is False
    a.send(None)
    assert b.poll(1) is True
    assert b.recv() is None
    a.send_bytes(b"long" * 100)
    with pytest.raises(OSError):
        b.recv_bytes(maxlength=10)


def test_duplex_false():
    reader, writer = shmprim.Pipe(duplex=False)
    writer.send(1)
    assert reader.recv() == 1
    with pytest.raises(ValueError):
        reader.send(2)


def test_large_messages_of_any_length():
    a, b = shmprim.Pipe()
    import threading

    big = os.urandom(16 << 20)
    t = threading.Thread(target=lambda: a.send_bytes(big))
    t.start()
    assert b.recv_bytes() == big
    t.join()


def test_eof_after_close():
    a, b = shmprim.Pipe()
    a.send("last")
    a.close()
    assert b.recv() == "last"
    with pytest.raises(EOFError, match=r'segment "[^"]+": closed'):
        b.recv()
    assert a.closed


def _send_then_die(conn):
    conn.send("before")
    os.kill(os.getpid(), signal.SIGKILL)


def test_eof_after_the_peers_death():
    a, b = shmprim.Pipe()
    p = multiprocessing.Process(target=_send_then_die, args=(b,))
    p.start()
    assert a.recv() == "before"
    with pytest.raises(EOFError):
        a.recv()
    p.join(30)
    assert p.exitcode == -signal.SIGKILL
