"""The Ray backend: one long-lived CellRunner actor per GPU (or per CPU slot), restarted by Ray
when its process dies; the driver re-queues the lost cell and routes work to live actors only.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, WorkerCrashedError

from adv_core.config import Cell
from cluster.sink import ResultSink
from cluster.worker import CellRunner, Outcome


class RayCellRunner(CellRunner):
    """CellRunner that learns its GPUs from Ray (Ray sets CUDA_VISIBLE_DEVICES for it)."""

    def __init__(self, sink: ResultSink, cpus: float = 1.0) -> None:
        super().__init__(sink, cpus=cpus, gpu_ids=list(ray.get_gpu_ids()))


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def default_workers(cpus_per_worker: float, gpus_per_worker: float) -> int:
    """One worker per GPU share when the cluster has GPUs, else one per CPU slot."""
    res = ray.cluster_resources()
    if gpus_per_worker > 0 and res.get("GPU", 0) > 0:
        return max(1, int(res["GPU"] / gpus_per_worker + 1e-9))
    return max(1, int(res.get("CPU", 1) / cpus_per_worker + 1e-9))


class RayBackend:
    """Scheduler backend over a pool of actors. ``capacity`` counts live actors."""

    def __init__(
        self,
        sink: ResultSink,
        n_workers: int,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        revive_timeout_s: float = 300.0,
    ) -> None:
        gpus = gpus_per_worker if cluster_gpus() > 0 else 0.0
        self._cls = ray.remote(RayCellRunner).options(
            num_cpus=cpus_per_worker,
            num_gpus=gpus,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=2,
        )  # type: ignore[attr-defined]
        self._sink, self._cpus = sink, cpus_per_worker
        self.actors: list[Any] = [self._cls.remote(sink, cpus_per_worker) for _ in range(n_workers)]
        self.idle: list[int] = list(range(n_workers))
        self.busy: dict[Any, int] = {}  # task ref -> actor index
        self.reviving: dict[Any, tuple[int, float]] = {}  # ping ref -> (actor index, since)
        self.revive_timeout_s = revive_timeout_s

    def capacity(self) -> int:
        return len(self.idle) + len(self.busy)

    def submit(self, cell: Cell, attempt: int) -> Any:
        i = self.idle.pop(0)
        ref = self.actors[i].run.remote(cell, attempt)
        self.busy[ref] = i
        return ref

    def wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, Outcome]]:
        refs = list(handles) + list(self.reviving)
        if not refs:
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in ready:
            if ref in self.reviving:
                self._revived(ref)
                continue
            out.append((ref, self._outcome(ref)))
        self._give_up_on_stuck_revivals()
        return out

    def _outcome(self, ref: Any) -> Outcome:
        i = self.busy.pop(ref)
        try:
            outcome: Outcome = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:
            self._revive(i)
            return Outcome(
                "", False, "error", error=f"worker lost: {type(exc).__name__}: {str(exc)[:300]}"
            )
        except RayError as exc:
            self.idle.append(i)
            return Outcome("", False, "error", error=f"{type(exc).__name__}: {str(exc)[:500]}")
        self.idle.append(i)
        return outcome

    def _revive(self, i: int) -> None:
        """Ray restarts a dead actor; route nothing to it until it answers a ping."""
        self.reviving[self.actors[i].info.remote()] = (i, time.monotonic())

    def _revived(self, ref: Any) -> None:
        i, _ = self.reviving.pop(ref)
        try:
            ray.get(ref)
        except RayError:
            self.actors[i] = self._cls.remote(self._sink, self._cpus)  # permanently dead: replace
            self._revive(i)
            return
        self.idle.append(i)

    def _give_up_on_stuck_revivals(self) -> None:
        now = time.monotonic()
        for ref, (i, since) in list(self.reviving.items()):
            if now - since > self.revive_timeout_s:
                self.reviving.pop(ref)
                ray.kill(self.actors[i], no_restart=True)
                self.actors[i] = self._cls.remote(self._sink, self._cpus)
                self._revive(i)

    def cancel(self, handle: Any) -> None:
        """A cell past its timeout: kill the actor's process (Ray restarts it) and move on."""
        i = self.busy.pop(handle)
        ray.kill(self.actors[i], no_restart=False)
        self._revive(i)

    def worker_info(self) -> list[dict[str, Any]]:
        try:
            return list(ray.get([a.info.remote() for a in self.actors], timeout=60))
        except GetTimeoutError:
            return []

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a, no_restart=True)
