"""The garbage collector after start-up: what a service imported and built to start is frozen.

A full (generation 2) collection walks every object the collector tracks. Right after start-up a service
holds ~85,000 of them (functions, classes, dicts of every imported module: grpc, protobuf, pymongo,
OpenTelemetry, ...), all alive until the process ends; walking them took 50–110 ms per full collection on
the project's 2-core machine, and those pauses were the tail of the 1,000-subscriber fan-out and of L1 hits
(``bench/``: a gateway logging its collections showed them in the measured windows). ``gc.freeze()``
(Python's ``gc`` module documentation) moves every tracked object to a permanent generation that no
collection walks; objects made afterwards (replicas, subscriptions, requests) are collected as before.
One ``gc.collect()`` first, so start-up's own cyclic garbage is freed rather than frozen.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then freeze what is left (call once, when the service starts serving); returns how many
    objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d start-up objects (no collection walks them)", frozen)
    return frozen
