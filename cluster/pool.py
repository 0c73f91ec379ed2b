"""The Ray backend: one long-lived CellRunner actor per GPU share (or per CPU slot), restarted
by Ray when its process or node dies; the driver re-queues the lost cell and routes work to
live actors only.

Placement: each actor asks Ray for ``num_gpus = gpus_per_worker`` (fractional values pack
several actors onto one GPU) and ``num_cpus = cpus_per_worker``; on a cluster without GPUs the
GPU request is dropped and there is one actor per CPU slot.

Actor life cycle, as the driver sees it (every actor index is in exactly one place):
``idle`` -> ``busy`` (running a cell) -> ``idle``, or, when the actor is lost or cancelled,
-> ``reviving`` (a ping is in flight; Ray restarts the process, possibly on another node) ->
``idle``. A ping that fails is retried after ``PING_BACKOFF_S``; an actor that does not
answer within ``revive_timeout_s`` is killed for good and replaced by a new one. An actor whose
constructor fails (the project or its dependencies missing on a node, a broken device) raises
``WorkerStartError``: the sweep stops with that message instead of waiting for a worker that
can never start.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, WorkerCrashedError

from adv_core.config import Cell
from cluster.sink import ResultSink
from cluster.worker import HOOK_ENV, CellRunner, Outcome

PING_BACKOFF_S = 0.5
POLL_S = 1.0  # longest the driver blocks while actors are being revived


class RayCellRunner(CellRunner):
    """CellRunner that learns its GPUs and node from Ray (Ray sets CUDA_VISIBLE_DEVICES)."""

    def __init__(self, sink: ResultSink, cpus: float = 1.0, hook: str | None = None) -> None:
        node_id = ray.get_runtime_context().get_node_id()
        super().__init__(
            sink,
            cpus=cpus,
            gpu_ids=list(ray.get_gpu_ids()),
            hook=hook,
            node=f"{socket.gethostname()}/{node_id[:8]}",
        )


class WorkerStartError(RuntimeError):
    """A worker actor failed in its constructor; retrying cannot help."""


def _check_start(exc: RayError) -> None:
    if isinstance(exc, RayActorError) and exc.actor_init_failed:
        raise WorkerStartError(f"a worker actor could not start: {str(exc)[:2000]}") from exc


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def default_workers(cpus_per_worker: float, gpus_per_worker: float) -> int:
    """One worker per GPU share when the cluster has GPUs, else one per CPU slot."""
    res = ray.cluster_resources()
    if gpus_per_worker > 0 and res.get("GPU", 0) > 0:
        by_gpu = int(res["GPU"] / gpus_per_worker + 1e-9)
        by_cpu = int(res.get("CPU", 1) / cpus_per_worker + 1e-9)
        return max(1, min(by_gpu, by_cpu))
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
        hook: str | None = None,
    ) -> None:
        self.gpus_per_worker = gpus_per_worker if cluster_gpus() > 0 else 0.0
        self._cls = ray.remote(RayCellRunner).options(
            num_cpus=cpus_per_worker,
            num_gpus=self.gpus_per_worker,
            max_restarts=-1,
            max_task_retries=0,  # the driver decides about retries, never Ray
            max_concurrency=2,  # a ping is answered while a cell runs
        )
        # The driver's worker plug-in (tests' fault injection) travels to every actor.
        self._args = (sink, cpus_per_worker, os.environ.get(HOOK_ENV, "") if hook is None else hook)
        self.actors: list[Any] = [self._cls.remote(*self._args) for _ in range(n_workers)]
        self.idle: list[int] = []
        self.busy: dict[Any, int] = {}  # task ref -> actor index
        self.reviving: dict[Any, tuple[int, float]] = {}  # ping ref -> (actor index, since)
        # A new actor gets work once it answers a ping, so that its start-up (process spawn,
        # imports) never counts against a cell's timeout.
        for i in range(n_workers):
            self.reviving[self.actors[i].info.remote()] = (i, time.monotonic())
        self.backoff: dict[int, tuple[float, float]] = {}  # actor index -> (ping again at, since)
        self.revive_timeout_s = revive_timeout_s
        self.lost = 0  # actors lost (process or node died) or killed after a timeout

    def capacity(self) -> int:
        return len(self.idle) + len(self.busy)

    def submit(self, cell: Cell, attempt: int) -> Any:
        i = self.idle.pop(0)
        ref = self.actors[i].run.remote(cell, attempt)
        self.busy[ref] = i
        return ref

    def wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, Outcome]]:
        """Block until a cell finishes (or ``timeout``); meanwhile bring lost actors back."""
        self._ping_due()
        refs = list(handles) + list(self.reviving)
        if self.reviving or self.backoff:
            timeout = POLL_S if timeout is None else min(timeout, POLL_S)
        if not refs:
            time.sleep(timeout or 0.0)
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in ready:
            if ref in self.reviving:
                self._revived(ref)
            else:
                out.append((ref, self._outcome(ref)))
        self._replace_stuck()
        return out

    def _outcome(self, ref: Any) -> Outcome:
        i = self.busy.pop(ref)
        try:
            outcome: Outcome = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:
            _check_start(exc)
            self.lost += 1
            self._revive(i, time.monotonic())
            return Outcome(
                "", False, "error", error=f"worker lost: {type(exc).__name__}: {str(exc)[:300]}"
            )
        except RayError as exc:
            self.idle.append(i)
            return Outcome("", False, "error", error=f"{type(exc).__name__}: {str(exc)[:500]}")
        self.idle.append(i)
        return outcome

    def _revive(self, i: int, since: float) -> None:
        """Route nothing to actor ``i`` until it answers a ping (Ray restarts it)."""
        self.reviving[self.actors[i].info.remote()] = (i, since)

    def _revived(self, ref: Any) -> None:
        i, since = self.reviving.pop(ref)
        try:
            ray.get(ref)
        except RayError as exc:  # not restarted yet: ask again shortly, never replace it
            _check_start(exc)
            self.backoff[i] = (time.monotonic() + PING_BACKOFF_S, since)
            return
        self.idle.append(i)

    def _ping_due(self) -> None:
        now = time.monotonic()
        for i, (due, since) in list(self.backoff.items()):
            if due <= now:
                del self.backoff[i]
                self._revive(i, since)

    def _replace_stuck(self) -> None:
        """An actor that stays unreachable past ``revive_timeout_s`` is killed and replaced."""
        now = time.monotonic()
        stuck = [
            (ref, i, s) for ref, (i, s) in self.reviving.items() if now - s > self.revive_timeout_s
        ]
        stuck += [
            (None, i, s) for i, (_, s) in self.backoff.items() if now - s > self.revive_timeout_s
        ]
        for ref, i, _ in stuck:
            self.reviving.pop(ref, None)
            self.backoff.pop(i, None)
            ray.kill(self.actors[i], no_restart=True)
            self.actors[i] = self._cls.remote(*self._args)
            self._revive(i, now)

    def cancel(self, handle: Any) -> None:
        """A cell past its timeout: kill the actor's process (Ray restarts it) and move on."""
        i = self.busy.pop(handle)
        self.lost += 1
        ray.kill(self.actors[i], no_restart=False)
        self._revive(i, time.monotonic())

    def worker_info(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        try:
            return list(ray.get([a.info.remote() for a in self.actors], timeout=timeout_s))
        except GetTimeoutError:
            return []

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a, no_restart=True)
