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
import threading

import ray
from ray.exceptions import RayError

REFRESH_S = 2.0  # how often the cluster's size is re-read (one GCS call)
REQUEST_EVERY_S = 0.5  # the watcher's pause after each pass (bounds its GCS calls)


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
    """The pool's target size. ``target`` runs on every scheduler loop and never calls Ray: a
    watcher thread reads the cluster's size and sends the autoscaler request, so a GCS that is
    restarting (its calls block) never stalls the driver, whose cells keep running."""

    def __init__(self, cpus: float, gpus: float, max_workers: int | None) -> None:
        self.cpus, self.gpus, self.max_workers = cpus, gpus, max_workers
        self._fits = fits(ray.cluster_resources(), cpus, gpus) if max_workers is None else 0
        self._want: int | None = None  # bundles the pool wants requested
        self._sent: int | None = None  # bundles of the standing request
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sweeps-growth", daemon=True)
        self._thread.start()

    @property
    def follows(self) -> bool:
        """Whether the pool's size follows the cluster (no fixed size)."""
        return self.max_workers is None

    @property
    def requested(self) -> int | None:
        """Bundles of the standing ``request_resources`` call (None: never sent)."""
        return self._sent

    def target(self, cells_left: int, current: int) -> int:
        """Actors wanted now for ``cells_left`` cells, given ``current`` actors."""
        if self.max_workers is not None:
            want = min(self.max_workers, cells_left)
            if want != self._want:
                self._want = want
                self._wake.set()
            return want
        # never below the actors there are: a lost node's actors restart elsewhere (Ray)
        return min(cells_left, max(self._fits, current, 1))

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(REFRESH_S)
            self._wake.clear()
            with contextlib.suppress(RayError):  # the GCS restarting: try again later
                if self.follows:
                    self._fits = fits(ray.cluster_resources(), self.cpus, self.gpus)
                self._send()
            self._stop.wait(REQUEST_EVERY_S)

    def _send(self) -> None:
        want = self._want
        if want is None or want == self._sent:
            return
        from ray.autoscaler.sdk import request_resources

        bundle = {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus > 0 else {})}
        request_resources(bundles=[bundle] * want)
        self._sent = want

    def release(self) -> None:
        """Stop watching and drop the standing request, so the autoscaler may remove idle
        nodes."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        if self._sent:
            self._want = 0
            with contextlib.suppress(RayError):
                self._send()
