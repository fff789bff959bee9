"""A Python producer feeding a Rust consumer through one named queue: run
`cargo build --example queue_from_python` first, from the repository root."""
import pathlib
import struct
import subprocess

import shmprim

if __name__ == "__main__":
    exe = pathlib.Path(__file__).resolve().parents[2] / "target/debug/examples/queue_from_python"
    q = shmprim.Queue(maxsize=64)
    rust = subprocess.Popen([str(exe), q.name, "100"], stdout=subprocess.PIPE, text=True)
    for i in range(100):
        q.put_bytes(struct.pack("<Q", i))
    out, _ = rust.communicate(timeout=60)
    print("Rust summed", out.strip())
