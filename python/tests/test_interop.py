"""The very same objects from Python, Rust and C: a Python producer feeding a
Rust consumer through one named queue, and a Python process and a C process
taking turns on one lock. The Rust example and the C library come from the
repository's own build (`.ci/run` builds them first); a missing one fails
the test."""
import os
import pathlib
import struct
import subprocess
import time

import shmprim

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"


def test_a_python_producer_feeds_a_rust_consumer():
    exe = TARGET / "examples" / "queue_from_python"
    assert exe.exists(), f"{exe} is missing: cargo build --example queue_from_python"
    q = shmprim.Queue(maxsize=64)
    n = 10_000
    rust = subprocess.Popen([str(exe), q.name, str(n)], stdout=subprocess.PIPE, text=True)
    try:
        for i in range(n):
            q.put_bytes(struct.pack("<Q", i), timeout=30)
        out, _ = rust.communicate(timeout=60)
    finally:
        rust.kill()
        rust.wait()
    assert rust.returncode == 0
    assert int(out) == n * (n - 1) // 2


def test_a_python_process_and_a_c_process_take_turns_on_one_lock(tmp_path):
    lib = TARGET / "libshmprim.so"
    assert lib.exists(), f"{lib} is missing: cargo build -p shmprim-capi"
    exe = tmp_path / "lock_turns"
    subprocess.run(
        [
            "gcc", "-std=c11", "-O1", "-o", str(exe),
            str(pathlib.Path(__file__).parent / "c" / "lock_turns.c"),
            f"-I{ROOT / 'include'}", f"-L{TARGET}", "-lshmprim", f"-Wl,-rpath,{TARGET}",
        ],
        check=True,
    )
    lock = shmprim.Lock()
    count = shmprim.Value("i", 0, lock=False)
    n = 300
    c = subprocess.Popen([str(exe), lock.name, count.name, str(n)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(n):
            with lock:
                v = count.value
                time.sleep(0.00002)
                count.value = v + 1
        out, _ = c.communicate(timeout=60)
    finally:
        c.kill()
        c.wait()
    assert c.returncode == 0 and out.strip() == "done"
    assert count.value == 2 * n
