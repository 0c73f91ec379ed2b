"""The Ray backend: long-lived CellRunner actors (one per GPU share, or per CPU slot), each
holding one running cell and one queued behind it, restarted by Ray when their process or node
dies; the driver re-queues lost cells and routes work to live actors only.

Placement: each actor asks Ray for ``num_gpus = gpus_per_worker`` (fractional values pack
several actors onto one GPU) and ``num_cpus = cpus_per_worker``; on a cluster without GPUs the
GPU request is dropped and there is one actor per CPU slot.

Two cells per actor: ``run`` calls execute one at a time, in order (the actor's default
concurrency group has one thread), so the second waits inside the actor and starts the moment
the first ends, without a round trip to the driver; pings run in their own ``ping`` group and
are answered while a cell runs. A queued cell's timeout starts when the cell before it is seen
to finish. When an actor is lost, its running cell is a lost attempt and its queued cell is
re-queued without counting an attempt (``Outcome.started`` False).

Actor life cycle, as the driver sees it: ``starting`` (created, its first ping in flight: it
may wait for a node to join, which can take many minutes, so it is never killed as stuck) ->
``live`` -> (lost or cancelled) ``reviving`` (pinged until Ray has restarted it; one that
answered before but stays unreachable past ``revive_timeout_s`` is killed and replaced) ->
``live``. The pool follows the cluster (cluster/grow.py): it adds actors as nodes join and
retires idle ones when less work is left than workers. An actor whose constructor fails (the
project missing on a node, a broken device) raises ``WorkerStartError``.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, WorkerCrashedError

from adv_core.config import Cell
from cluster.grow import REFRESH_S, Growth, cluster_gpus, default_workers
from cluster.outcome import HOOK_ENV, Outcome
from cluster.sink import ResultSink

__all__ = ["RayBackend", "RayCellRunner", "WorkerStartError", "cluster_gpus", "default_workers"]

PING_BACKOFF_S = 0.5
POLL_S = 1.0  # longest the driver blocks while actors start or are being revived
PER_ACTOR = 2  # cells handed to one actor at a time: one running, one queued behind it


class RayCellRunner:
    """The actor: a torch-free shell, so the driver can define it without importing torch;
    the worker process imports torch (cluster/worker.py) in the constructor."""

    def __init__(self, sink: ResultSink, cpus: float = 1.0, hook: str | None = None) -> None:
        from cluster.worker import CellRunner

        node_id = ray.get_runtime_context().get_node_id()
        self.runner = CellRunner(
            sink,
            cpus=cpus,
            gpu_ids=list(ray.get_gpu_ids()),
            hook=hook,
            node=f"{socket.gethostname()}/{node_id[:8]}",
        )

    @ray.method(concurrency_group="ping")
    def info(self) -> dict[str, Any]:
        return self.runner.info()

    def run(self, cell: Cell, attempt: int = 1) -> Outcome:
        return self.runner.run(cell, attempt)


class WorkerStartError(RuntimeError):
    """A worker actor failed in its constructor; retrying cannot help."""


def _check_start(exc: RayError) -> None:
    if isinstance(exc, RayActorError) and exc.actor_init_failed:
        raise WorkerStartError(f"a worker actor could not start: {str(exc)[:2000]}") from exc


class RayBackend:
    """Scheduler backend over a pool of actors. ``capacity`` is two cells per live actor.

    ``n_workers`` actors start now. ``max_workers`` caps the pool: with a number, the pool
    grows to ``min(max_workers, cells left)`` at once (actors that do not fit yet wait for the
    autoscaler, which sees them and ``request_resources`` bundles as demand); with None it
    follows the cluster, adding actors as nodes join (up to what fits and the cells left)."""

    def __init__(
        self,
        sink: ResultSink,
        n_workers: int,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        revive_timeout_s: float = 300.0,
        hook: str | None = None,
        max_workers: int | None = None,
    ) -> None:
        self.gpus_per_worker = gpus_per_worker if cluster_gpus() > 0 else 0.0
        # cells run one after another, in order; a ping is answered while a cell runs
        # (ray's type stubs for remote() lack these two documented options)
        actor = ray.remote(concurrency_groups={"ping": 1}, max_concurrency=1)(  # type: ignore[call-overload]
            RayCellRunner
        )
        self._cls = actor.options(
            num_cpus=cpus_per_worker,
            num_gpus=self.gpus_per_worker,
            max_restarts=-1,
            max_task_retries=0,  # the driver decides about retries, never Ray
        )
        # The driver's worker plug-in (tests' fault injection) travels to every actor.
        self._args = (sink, cpus_per_worker, os.environ.get(HOOK_ENV, "") if hook is None else hook)
        self.growth = Growth(cpus_per_worker, self.gpus_per_worker, max_workers)
        self.handles: dict[int, Any] = {}  # actor index -> actor handle
        self._next_index = 0
        self.live: set[int] = set()
        self.answered: set[int] = set()  # actors that have answered a ping at least once
        self.queues: dict[int, list[Any]] = {}  # actor index -> its run refs, running first
        self.owner: dict[Any, int] = {}  # run ref -> actor index
        self.started: dict[Any, float] = {}  # run ref -> when it began (head of its queue)
        self.doomed: set[Any] = set()  # queued refs on an actor that was lost before they ran
        self.reviving: dict[Any, tuple[int, float]] = {}  # ping ref -> (actor index, since)
        self.backoff: dict[int, tuple[float, float]] = {}  # actor index -> (ping again at, since)
        self.revive_timeout_s = revive_timeout_s
        self.lost = 0  # actors lost (process or node died) or killed after a timeout
        self.retired = 0  # idle actors let go because less work was left than workers
        self.replaced = 0  # actors killed and replaced after staying unreachable
        for _ in range(n_workers):
            self._add_actor()

    @property
    def actors(self) -> list[Any]:
        return list(self.handles.values())

    def _add_actor(self) -> None:
        """A new actor gets work once it answers a ping, so that its start-up (waiting for a
        node, process spawn, imports) never counts against a cell's timeout."""
        i = self._next_index
        self._next_index += 1
        self.handles[i] = self._cls.remote(*self._args)
        self.queues[i] = []
        self._revive(i, time.monotonic())

    def capacity(self) -> int:
        return PER_ACTOR * len(self.live)

    def set_demand(self, cells_left: int) -> None:
        """Grow towards the work left (as the cluster allows) and retire idle actors beyond it."""
        want = self.growth.target(cells_left, len(self.handles))
        for _ in range(max(0, want - len(self.handles))):
            self._add_actor()
        if len(self.handles) > want:
            self._retire(len(self.handles) - want)

    def _retire(self, n: int) -> None:
        """Kill up to ``n`` actors holding no cell: not yet started ones first, then idle."""
        unstarted = [i for i in self.handles if i not in self.answered and not self.queues[i]]
        idle = [i for i in self.live if not self.queues[i]]
        for i in (unstarted + idle)[:n]:
            self._forget(i)
            self.retired += 1

    def _forget(self, i: int) -> None:
        ray.kill(self.handles.pop(i), no_restart=True)
        self.live.discard(i)
        self.answered.discard(i)
        self.backoff.pop(i, None)
        for ref in [r for r, (j, _) in self.reviving.items() if j == i]:
            del self.reviving[ref]
        for ref in self.queues.pop(i):
            self.doomed.add(ref)

    def submit(self, cell: Cell, attempt: int) -> Any:
        i = min(self.live, key=lambda j: (self._load(j), j))
        ref = self.handles[i].run.remote(cell, attempt)
        self.owner[ref] = i
        if not self._load(i):
            self.started[ref] = time.monotonic()
        self.queues[i].append(ref)
        return ref

    def _load(self, i: int) -> int:
        return sum(1 for r in self.queues[i] if r not in self.doomed)

    def started_at(self, handle: Any) -> float | None:
        return self.started.get(handle)

    def wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, Outcome]]:
        """Block until a cell finishes (or ``timeout``); meanwhile bring actors up."""
        self._ping_due()
        refs = list(handles) + list(self.reviving)
        if self.reviving or self.backoff:
            timeout = POLL_S if timeout is None else min(timeout, POLL_S)
        else:  # act on the cluster's size and the work left soon, even while cells run long
            timeout = REFRESH_S if timeout is None else min(timeout, REFRESH_S)
        if not refs:
            time.sleep(timeout or 0.0)
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        # each actor's running cell before the one queued behind it
        for ref in sorted(ready, key=self._position):
            if ref in self.reviving:
                self._revived(ref)
            else:
                out.append((ref, self._outcome(ref)))
        self._replace_stuck()
        return out

    def _position(self, ref: Any) -> int:
        i = self.owner.get(ref)
        return self.queues[i].index(ref) if i in self.queues else 0

    def _outcome(self, ref: Any) -> Outcome:
        i = self.owner.pop(ref)
        since = self.started.pop(ref, None)  # None: still queued behind another cell
        queue = self.queues.get(i, [])
        if ref in queue:
            queue.remove(ref)
        try:
            outcome: Outcome = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:
            _check_start(exc)
            if ref in self.doomed or since is None:
                self.doomed.discard(ref)
                return Outcome("", False, "error", error="queued on a lost worker", started=False)
            self.lost += 1
            self._lose(i)
            return Outcome(
                "", False, "error", error=f"worker lost: {type(exc).__name__}: {str(exc)[:300]}"
            )
        except RayError as exc:
            self.doomed.discard(ref)
            self._next_starts(i)
            return Outcome("", False, "error", error=f"{type(exc).__name__}: {str(exc)[:500]}")
        self.doomed.discard(ref)
        self._next_starts(i)
        return outcome

    def _next_starts(self, i: int) -> None:
        """The cell queued behind a finished one is running now."""
        waiting = [r for r in self.queues.get(i, []) if r not in self.doomed]
        if waiting and waiting[0] not in self.started:
            self.started[waiting[0]] = time.monotonic()

    def _lose(self, i: int) -> None:
        """Actor ``i`` died (or was killed): its queued cells never ran; ping until it is back."""
        for ref in self.queues.get(i, []):
            self.doomed.add(ref)
            self.started.pop(ref, None)
        self.live.discard(i)
        self._revive(i, time.monotonic())

    def _revive(self, i: int, since: float) -> None:
        """Route nothing to actor ``i`` until it answers a ping (Ray restarts it)."""
        self.reviving[self.handles[i].info.remote()] = (i, since)

    def _revived(self, ref: Any) -> None:
        i, since = self.reviving.pop(ref)
        try:
            ray.get(ref)
        except RayError as exc:  # not restarted yet: ask again shortly
            _check_start(exc)
            self.backoff[i] = (time.monotonic() + PING_BACKOFF_S, since)
            return
        self.live.add(i)
        self.answered.add(i)

    def _ping_due(self) -> None:
        now = time.monotonic()
        for i, (due, since) in list(self.backoff.items()):
            if due <= now:
                del self.backoff[i]
                self._revive(i, since)

    def _replace_stuck(self) -> None:
        """An actor that answered before but stays unreachable past ``revive_timeout_s`` is
        killed and replaced. One that never answered is still starting (its node may be
        booting): it is left alone."""
        now = time.monotonic()
        stuck = [(r, i) for r, (i, s) in self.reviving.items() if now - s > self.revive_timeout_s]
        stuck += [
            (None, i) for i, (_, s) in self.backoff.items() if now - s > self.revive_timeout_s
        ]
        for ref, i in stuck:
            if i not in self.answered or i not in self.handles:
                continue
            self.reviving.pop(ref, None)
            self.backoff.pop(i, None)
            self.answered.discard(i)
            ray.kill(self.handles[i], no_restart=True)
            self.handles[i] = self._cls.remote(*self._args)
            self.replaced += 1
            self._revive(i, now)

    def cancel(self, handle: Any) -> None:
        """A cell past its timeout: kill the actor's process (Ray restarts it) and move on."""
        i = self.owner.pop(handle)
        self.started.pop(handle, None)
        if handle in self.queues.get(i, []):
            self.queues[i].remove(handle)
        if i not in self.handles:
            return
        self.lost += 1
        ray.kill(self.handles[i], no_restart=False)
        self._lose(i)

    def worker_info(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        try:
            return list(ray.get([a.info.remote() for a in self.actors], timeout=timeout_s))
        except GetTimeoutError:
            return []

    def shutdown(self) -> None:
        self.growth.release()
        for a in self.handles.values():
            ray.kill(a, no_restart=True)
