"""What the driver and the workers exchange, with no torch or Ray in sight: the driver imports
this module (and cluster/scheduler.py, cluster/pool.py) without importing torch; only worker
processes import cluster/worker.py and adv_core's numerics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HOOK_ENV = "SWEEPS_WORKER_HOOK"  # the workers' plug-in (cluster/worker.py load_hook)


@dataclass(frozen=True)
class Outcome:
    """A worker's answer: the sink's receipt, or the error that stopped the attempt.

    ``started`` is False for a cell that was queued behind another on an actor that was lost
    (or killed after a timeout) before the cell began: the attempt did not happen, so the
    scheduler re-queues the cell without counting it."""

    cell_hash: str
    ok: bool
    status: str
    receipt: Any = None
    error: str | None = None
    wall_s: float = 0.0
    worker: str = ""
    started: bool = True
