"""How many workers a sweep wants, as the cluster and the work left change (issue 17).

- ``max_workers`` set (``--workers N`` or ``resources.max_in_flight``): the pool holds
  ``min(N, cells left)`` actors at once. Actors that do not fit yet stay pending; Ray's
  autoscaler launches nodes for pending actors, and ``request_resources`` asks for the same
  bundles explicitly (held while the work lasts, dropped at the end so idle nodes can go).
- ``max_workers`` None: the pool follows the cluster as it is, re-reading its resources every
  ``REFRESH_S`` and adding actors as nodes join (up to what fits and the cells left). It asks
  the autoscaler for nothing. A node leaving does not shrink the pool: its actors are
  restarted by Ray wherever there is room.

In both modes, when fewer cells are left than actors, idle actors are retired (cluster/pool.py),
so their nodes go idle and an autoscaler can remove them.
"""

from __future__ import annotations

import contextlib
import time

import ray
from ray.exceptions import RayError

REFRESH_S = 2.0  # how often the cluster's size is re-read (one GCS call)
REQUEST_EVERY_S = 1.0  # at most one request_resources call per second


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def default_workers(cpus_per_worker: float, gpus_per_worker: float) -> int:
    """One worker per GPU share when the cluster has GPUs, else one per CPU slot."""
    return max(1, fits(ray.cluster_resources(), cpus_per_worker, gpus_per_worker))


def fits(res: dict[str, float], cpus_per_worker: float, gpus_per_worker: float) -> int:
    """Workers the resources ``res`` hold (0 when none fits)."""
    by_cpu = int(res.get("CPU", 0) / cpus_per_worker + 1e-9) if cpus_per_worker > 0 else 10**9
    if gpus_per_worker > 0 and res.get("GPU", 0) > 0:
        return min(int(res["GPU"] / gpus_per_worker + 1e-9), by_cpu)
    return by_cpu


class Growth:
    """The pool's target size; ``target`` is called on every scheduler loop, so it is cheap."""

    def __init__(self, cpus: float, gpus: float, max_workers: int | None) -> None:
        self.cpus, self.gpus, self.max_workers = cpus, gpus, max_workers
        self._fits, self._read_at = 0, -1e9
        self._requested: int | None = None
        self._requested_at = -1e9

    @property
    def follows(self) -> bool:
        """Whether the pool's size follows the cluster (no fixed size)."""
        return self.max_workers is None

    def target(self, cells_left: int, current: int) -> int:
        """Actors wanted now for ``cells_left`` cells, given ``current`` actors."""
        if self.max_workers is not None:
            want = min(self.max_workers, cells_left)
            self._request(want)
            return want
        now = time.monotonic()
        if now - self._read_at > REFRESH_S:
            self._read_at = now
            # the GCS restarting: keep the last size, the cells keep running
            with contextlib.suppress(RayError):
                self._fits = fits(ray.cluster_resources(), self.cpus, self.gpus)
        # never below the actors there are: a lost node's actors restart elsewhere (Ray)
        return min(cells_left, max(self._fits, current, 1))

    def _request(self, n: int) -> None:
        now = time.monotonic()
        if n == self._requested or (n and now - self._requested_at < REQUEST_EVERY_S):
            return
        from ray.autoscaler.sdk import request_resources

        bundle = {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus > 0 else {})}
        request_resources(bundles=[bundle] * n)
        self._requested, self._requested_at = n, now

    def release(self) -> None:
        """Drop the standing request, so the autoscaler may remove idle nodes."""
        if self._requested:
            self._request(0)
