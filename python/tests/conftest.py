import os

import pytest


@pytest.fixture(autouse=True)
def nothing_left_in_dev_shm():
    """Every test removes what it made: the objects a test names for itself go
    with the test's references to them."""
    before = {n for n in os.listdir("/dev/shm") if n.startswith(f"shmprim-py-{os.getpid()}-")}
    yield
    import gc

    gc.collect()
    after = {n for n in os.listdir("/dev/shm") if n.startswith(f"shmprim-py-{os.getpid()}-")}
    assert after <= before, f"left in /dev/shm: {sorted(after - before)}"
