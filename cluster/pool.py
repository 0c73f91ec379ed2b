"""The Ray backend: long-lived CellRunner actors (one per GPU share, or per CPU slot), each
holding one running cell and the next ones queued behind it, restarted by Ray when their process
or node dies; the driver re-queues lost cells and routes work to live actors only.

Placement: each actor asks Ray for ``num_gpus = gpus_per_worker`` (fractional values pack
several actors onto one GPU) and ``num_cpus = cpus_per_worker``; on a cluster without GPUs the
GPU request is dropped and there is one actor per CPU slot.

Cells travel in batches (issue 17: the driver's cost per cell). One actor call,
``run_batch``, is a Ray streaming generator: the actor runs its cells one after another and
yields each cell's Outcome as it ends, so the driver sees every cell settle on its own (its
timeout, its loss) while paying one call for the batch. The batch size follows the cells:
``BATCH_S`` of measured cell time per call (one cell per call until cells have been measured;
at most ``MAX_BATCH``), and never more than an even share of the cells still queued, so the
last cells spread over every worker. An actor holds at most two batches (one running, one
queued behind it, started the moment the first ends without a round trip to the driver) and is
topped up once its second batch has begun. Calls run one at a time, in order (the actor's
default concurrency group has one thread); pings run in their own ``ping`` group and are
answered while a cell runs. A queued cell's timeout starts when the cell before it is seen to
finish.

When an actor is lost, the cells it held are settled in order: those whose result is already
in the store (the actor wrote them, its answer was lost with it) and the first one that is not
are reported as lost attempts (the scheduler finds the written ones done), and the cells behind
it are re-queued without counting an attempt (``Outcome.started`` False): they never began.

Actor life cycle, as the driver sees it: ``starting`` (created, its first ping in flight: it
may wait for a node to join, which can take many minutes, so it is never killed as stuck) ->
``live`` -> (lost or cancelled) ``reviving`` (pinged until Ray has restarted it; one that
answered before but stays unreachable past ``revive_timeout_s`` is killed and replaced) ->
``live``. The pool follows the cluster (cluster/grow.py): it adds actors as nodes join and
retires idle ones when less work is left than workers. An actor whose constructor fails (the
project missing on a node, a broken device) raises ``WorkerStartError``.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
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
BATCH_S = 0.2  # measured cell time one actor call aims to carry
MAX_BATCH = 16  # most cells in one actor call
EWMA = 0.2  # weight of the newest cell time in the running mean that sizes batches


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

    @ray.method(num_returns="streaming")
    def run_batch(self, cells: list[tuple[Cell, int]]) -> Iterator[Outcome]:
        """Each (cell, attempt) in order, one Outcome yielded as each cell ends."""
        for cell, attempt in cells:
            yield self.runner.run(cell, attempt)


class WorkerStartError(RuntimeError):
    """A worker actor failed in its constructor; retrying cannot help."""


def _check_start(exc: RayError) -> None:
    if isinstance(exc, RayActorError) and exc.actor_init_failed:
        raise WorkerStartError(f"a worker actor could not start: {str(exc)[:2000]}") from exc


@dataclass(eq=False)
class Slot:
    """The driver's handle for one cell handed to an actor (compared by identity)."""

    actor: int
    cell: Cell
    attempt: int


@dataclass(eq=False)
class _Call:
    """One ``run_batch`` call: its streaming generator and the slots not yet answered."""

    gen: Any
    slots: deque[Slot] = field(default_factory=deque)


class RayBackend:
    """Scheduler backend over a pool of actors. ``capacity`` is two batches per live actor
    (two cells each until cells have been measured).

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
        self.sink = sink
        # The driver's worker plug-in (tests' fault injection) travels to every actor.
        self._args = (sink, cpus_per_worker, os.environ.get(HOOK_ENV, "") if hook is None else hook)
        self.growth = Growth(cpus_per_worker, self.gpus_per_worker, max_workers)
        self.handles: dict[int, Any] = {}  # actor index -> actor handle
        self._next_index = 0
        self.live: set[int] = set()
        self.answered: set[int] = set()  # actors that have answered a ping at least once
        self.queues: dict[int, deque[Slot]] = {}  # actor index -> its cells, running first
        self.staged: dict[int, list[Slot]] = {}  # actor index -> cells not yet sent to it
        self.calls: dict[int, deque[_Call]] = {}  # actor index -> its batches, running first
        self.started: dict[Slot, float] = {}  # slot -> when it began (head of its queue)
        self.reports: list[tuple[Slot, Outcome]] = []  # answers the driver decided itself
        self.reviving: dict[Any, tuple[int, float]] = {}  # ping ref -> (actor index, since)
        self.backoff: dict[int, tuple[float, float]] = {}  # actor index -> (ping again at, since)
        self.revive_timeout_s = revive_timeout_s
        self.cell_s: float | None = None  # running mean of the cells' own time
        self.cells_left: int | None = None  # queued + in flight, as the scheduler last said
        self.lost = 0  # actors lost (process or node died) or killed after a timeout
        self.retired = 0  # idle actors let go because less work was left than workers
        self.replaced = 0  # actors killed and replaced after staying unreachable
        self.calls_made = 0  # run_batch calls sent (cells per call = cells / calls_made)
        self.previously_failed: set[str] = set()  # stored rows that are an earlier failure
        self.process: dict[int, str] = {}  # actor index -> "node:pid" of its live process
        self.gone: dict[int, str | None] = {}  # actor index -> the process it lost or killed
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
        self.queues[i] = deque()
        self.staged[i] = []
        self.calls[i] = deque()
        self._revive(i, time.monotonic())

    def batch_size(self) -> int:
        """Cells per call: ``BATCH_S`` of measured cell time (1 before any is measured), at most
        ``MAX_BATCH``, and at most an even share (over two batches per live actor) of the
        cells still queued, so the last ones spread over every worker."""
        if self.cell_s is None:
            return 1
        size = min(MAX_BATCH, int(BATCH_S / max(self.cell_s, 1e-6)))
        if self.cells_left is not None:
            queued = self.cells_left - sum(len(q) for q in self.queues.values())
            size = min(size, math.ceil(max(0, queued) / (2 * max(1, len(self.live)))))
        return max(1, size)

    def _room(self, i: int, size: int) -> int:
        """Cells actor ``i`` takes now: once no more than one batch is left with it (cells
        staged this round aside), it is topped up to two batches."""
        held = len(self.queues[i])
        return 2 * size - held if held - len(self.staged[i]) <= size else 0

    def capacity(self) -> int:
        size = self.batch_size()
        return sum(len(self.queues[i]) + self._room(i, size) for i in self.live)

    def set_demand(self, cells_left: int) -> None:
        """Grow towards the work left (as the cluster allows) and retire idle actors beyond it."""
        self.cells_left = cells_left
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
        del self.queues[i], self.staged[i], self.calls[i]  # retired only when holding none

    def submit(self, cell: Cell, attempt: int) -> Any:
        """Stage the cell on the live actor with the most room; ``wait`` sends the batch."""
        size = self.batch_size()
        i = max(self.live, key=lambda j: (self._room(j, size), -len(self.queues[j]), -j))
        slot = Slot(i, cell, attempt)
        if not self.queues[i]:
            self.started[slot] = time.monotonic()
        self.queues[i].append(slot)
        self.staged[i].append(slot)
        return slot

    def _flush(self) -> None:
        """Send each actor's staged cells: the fewest ``run_batch`` calls of at most
        ``MAX_BATCH`` cells, evenly split (a top-up to two batches sends two calls)."""
        for i, slots in self.staged.items():
            calls = math.ceil(len(slots) / MAX_BATCH)
            for k in range(calls):
                part = slots[k * len(slots) // calls : (k + 1) * len(slots) // calls]
                gen = self.handles[i].run_batch.remote([(s.cell, s.attempt) for s in part])
                self.calls[i].append(_Call(gen, deque(part)))
                self.calls_made += 1
            self.staged[i] = []

    def started_at(self, handle: Any) -> float | None:
        return self.started.get(handle)

    def wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, Outcome]]:
        """Block until a cell finishes (or ``timeout``); meanwhile bring actors up."""
        self._flush()
        if self.reports:
            out, self.reports = self.reports, []
            return out
        self._ping_due()
        heads = {id(calls[0].gen): (i, calls[0]) for i, calls in self.calls.items() if calls}
        refs = [call.gen for _, call in heads.values()] + list(self.reviving)
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
        for obj in ready:  # one answer per batch: each actor's cells settle in order
            if id(obj) in heads:
                out += self._answer(*heads[id(obj)])
            else:
                self._revived(obj)
        out, self.reports = out + self.reports, []
        self._replace_stuck()
        return out

    def _answer(self, i: int, call: _Call) -> list[tuple[Slot, Outcome]]:
        """The next answer of actor ``i``'s running batch: its head cell's Outcome."""
        slot = call.slots.popleft()
        self.queues[i].popleft()
        if not call.slots:
            self.calls[i].popleft()
        self.started.pop(slot, None)
        try:
            outcome: Outcome = ray.get(next(call.gen))
        except (RayActorError, WorkerCrashedError) as exc:
            _check_start(exc)
            self.lost += 1
            error = f"worker lost: {type(exc).__name__}: {str(exc)[:300]}"
            return self._lose(i, [slot], running_known=False, error=error)
        except (RayError, StopIteration) as exc:  # the batch itself failed; the actor lives
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            out = [(slot, Outcome("", False, "error", error=error))]
            if call.slots:  # the cells behind it in this batch never ran
                self.calls[i].popleft()
                for s in call.slots:
                    self.queues[i].remove(s)
                    self.started.pop(s, None)
                    out.append((s, _not_started("its batch failed before it began")))
            self._next_starts(i)
            return out
        if outcome.wall_s > 0:
            w = outcome.wall_s
            self.cell_s = w if self.cell_s is None else (1 - EWMA) * self.cell_s + EWMA * w
        self._next_starts(i)
        return [(slot, outcome)]

    def _next_starts(self, i: int) -> None:
        """The cell queued behind a finished one is running now."""
        queue = self.queues.get(i)
        if queue and queue[0] not in self.started:
            self.started[queue[0]] = time.monotonic()

    def _lose(
        self, i: int, head: list[Slot], *, running_known: bool, error: str
    ) -> list[tuple[Slot, Outcome]]:
        """Actor ``i`` died (or was killed): settle what it held; ping until it is back."""
        out = self._settle_held(i, head, running_known=running_known, error=error)
        self.live.discard(i)
        self.gone[i] = self.process.get(i)  # a ping this process still answers does not count
        self._revive(i, time.monotonic())
        return out

    def _settle_held(
        self, i: int, head: list[Slot], *, running_known: bool, error: str
    ) -> list[tuple[Slot, Outcome]]:
        """Answers for the cells actor ``i`` held when it went, in order. Cells up to the first
        one without a stored result are lost attempts (the scheduler finds the stored ones
        done); that first one was running, unless ``running_known`` (a timeout named it, or
        nothing was running), and every cell after it never began."""
        held = head + list(self.queues.get(i, ()))
        for s in held:
            self.started.pop(s, None)
        if i in self.queues:
            self.queues[i].clear()
            self.staged[i] = []
            self.calls[i].clear()
        out: list[tuple[Slot, Outcome]] = []
        for s in held:
            if not running_known:
                running_known = not self._written(s.cell.cell_hash)
                out.append((s, Outcome("", False, "error", error=error)))
            elif self._written(s.cell.cell_hash):  # written before the actor went
                out.append((s, Outcome("", False, "error", error=error)))
            else:
                out.append((s, _not_started(f"queued on a lost worker ({error})")))
        return out

    def _written(self, cell_hash: str) -> bool:
        """Whether the cell's result is in the store from this run (an earlier run's failure
        rows do not count: the scheduler's ``previously_failed``)."""
        return cell_hash not in self.previously_failed and self.sink.is_done(cell_hash)

    def _revive(self, i: int, since: float) -> None:
        """Route nothing to actor ``i`` until it answers a ping (Ray restarts it)."""
        self.reviving[self.handles[i].info.remote()] = (i, since)

    def _revived(self, ref: Any) -> None:
        i, since = self.reviving.pop(ref)
        try:
            name = ray.get(ref)["name"]
        except RayError as exc:  # not restarted yet: ask again shortly
            _check_start(exc)
            self.backoff[i] = (time.monotonic() + PING_BACKOFF_S, since)
            return
        if name == self.gone.get(i):  # the killed process answered before it went: not back
            self.backoff[i] = (time.monotonic() + PING_BACKOFF_S, since)
            return
        self.process[i] = name
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
        """A cell past its timeout: kill the actor's process (Ray restarts it) and move on; the
        cells queued behind it are re-queued (``wait`` reports them)."""
        slot: Slot = handle
        i = slot.actor
        self.started.pop(slot, None)
        if slot in self.queues.get(i, ()):
            self.queues[i].remove(slot)
            for call in self.calls[i]:
                if slot in call.slots:
                    call.slots.remove(slot)
        if i not in self.handles:
            return
        self.lost += 1
        ray.kill(self.handles[i], no_restart=False)
        self.reports += self._lose(
            i, [], running_known=True, error=f"cell {slot.cell.cell_hash[:12]} timed out"
        )

    def worker_info(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        try:
            return list(ray.get([a.info.remote() for a in self.actors], timeout=timeout_s))
        except GetTimeoutError:
            return []

    def shutdown(self) -> None:
        self.growth.release()
        for a in self.handles.values():
            ray.kill(a, no_restart=True)


def _not_started(why: str) -> Outcome:
    return Outcome("", False, "error", error=why, started=False)
