"""services/common/heap.py in a fresh interpreter (freezing is process-wide: not done in the test process)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc, weakref
import services.cache_gateway.server  # a service's imports
from services.common.heap import freeze_startup_heap

class Node:
    pass

startup_cycle = Node(); startup_cycle.me = startup_cycle; gone_at_start = weakref.ref(startup_cycle); del startup_cycle
frozen = freeze_startup_heap()
assert gone_at_start() is None, "start-up's cyclic garbage is collected before freezing, not frozen"
assert frozen == gc.get_freeze_count() > 50_000, frozen
walked = len(gc.get_objects())
assert walked < frozen / 10, (walked, frozen)  # collections no longer walk start-up's objects
later = Node(); later.me = later; gone_later = weakref.ref(later); del later
gc.collect()
assert gone_later() is None, "cycles made after start-up are still collected"
print("ok", frozen, walked)
"""


def test_start_up_objects_are_frozen_and_later_garbage_is_still_collected():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
