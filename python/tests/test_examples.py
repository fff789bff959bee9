"""The examples run and print what their Python originals print."""
import pathlib
import re
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def run(name):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_process_queue_delivers_every_url_once():
    # Two processes print at once, and print writes a line's text and its
    # newline separately: look for the messages, not for whole lines.
    got = sorted(re.findall(r"Get (url\d+) from queue", run("process_queue.py")))
    assert got == [f"url{i}" for i in range(1, 7)]


def test_lock_printer_prints_each_item_on_its_own_line():
    assert sorted(run("lock_printer.py").split()) == ["chinese", "english", "japanese", "spanish"]


def test_value_array_prints_the_updated_values():
    assert run("value_array.py").strip() == "1.0 [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]"


def test_pipe_receives_every_url_then_end_of_file():
    got = re.findall(r"recv: (url\d+)", run("pipe.py"))
    assert got == [f"url{i}" for i in range(10)]


def test_to_rust_sums_in_rust():
    assert run("to_rust.py").strip() == f"Rust summed {sum(range(100))}"
