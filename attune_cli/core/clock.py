"""The wall clock every part of attune reads, and the one place a simulation can move it.

``ATTUNE_SEED`` likewise seeds the router's exploration (``random_source``), so a simulation
that passes a different seed per step (``sim-3-h17``) replays exactly.

``ATTUNE_NOW`` (epoch seconds, e.g. ``1767225600``) pins "now" for the whole process: the
telemetry store stamps new rows with it, the router measures ages and windows from it. It exists
for simulations and reproducible reports (``benchmarks/routing_sim.py`` steps an hour at a time
with it); it is never needed in normal use. Monotonic time (latency, deadlines) is not affected.
"""

from __future__ import annotations

import math
import os
import random
import time

from attune_cli.core.errors import UsageError

ENV_NOW = "ATTUNE_NOW"
ENV_SEED = "ATTUNE_SEED"


def now() -> float:
    """Epoch seconds now: ``ATTUNE_NOW`` when set, else the system clock.

    Raises:
        UsageError: ``ATTUNE_NOW`` is set but is not a finite number of seconds.
    """
    pinned = os.environ.get(ENV_NOW)
    if not pinned:
        return time.time()
    try:
        value = float(pinned)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(
            f"{ENV_NOW} must be epoch seconds (got {pinned[:80]!r})",
            hint=f"unset {ENV_NOW} to use the system clock",
        )
    return value


def random_source() -> random.Random:
    """The random source for exploration: seeded by ``ATTUNE_SEED`` when set."""
    seed = os.environ.get(ENV_SEED)
    return random.Random(seed) if seed else random.Random()
