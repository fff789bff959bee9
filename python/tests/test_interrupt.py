"""Ctrl-C ends a blocked call with KeyboardInterrupt, within 100 ms."""
import os
import signal
import subprocess
import sys
import time

SCRIPT = r"""
import sys, time, shmprim
q = shmprim.Queue()
print("ready", flush=True)
try:
    q.get()
except KeyboardInterrupt:
    print(time.monotonic(), flush=True)
    sys.exit(0)
sys.exit(1)
"""


def test_ctrl_c_during_a_blocked_get_raises_keyboard_interrupt_within_100_ms():
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # well inside the get by now
        sent = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        raised = float(child.stdout.readline())
        assert child.wait(10) == 0
    finally:
        child.kill()
        child.wait()
    assert raised - sent < 0.1, f"KeyboardInterrupt came {raised - sent:.3f} s after Ctrl-C"
