"""What one worker does with one cell, with no Ray in sight: load or train the ensemble, run
the evaluation, save the checkpoint, write the rows through the sink, return the receipt.

``CellRunner`` holds per-process state (device, dataset cache) and is wrapped as a Ray actor
by cluster/pool.py; tests drive it directly too.

The plug-in seam (``HOOK_ENV``, ``load_hook``) lets a test suite run code in every worker
before each cell (fault injection lives in tests/fault/inject.py); production sets nothing and
carries no fault of its own.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from collections import OrderedDict
from typing import Any, Protocol

import torch

from adv_core.config import Cell
from adv_core.data.base import DataBundle
from adv_core.models import ensemble_from_bytes, ensemble_to_bytes
from adv_core.results import Status
from adv_core.run import error_text, load_data, run_cell
from cluster.allocator import tune_allocator
from cluster.outcome import HOOK_ENV, Outcome
from cluster.sink import ResultSink


class WorkerHook(Protocol):
    """What a plug-in loaded by ``load_hook`` provides."""

    def before_cell(self, cell: Cell) -> None: ...


def load_hook(value: str) -> WorkerHook | None:
    """The worker's plug-in seam: ``FILE.py[:ARG]`` loads that Python file and returns its
    ``make_hook(ARG)``, whose ``before_cell(cell)`` runs before every cell; '' loads nothing.
    A file path (not a module name) so that Ray workers find it whatever their sys.path."""
    if not value:
        return None
    m = re.fullmatch(r"(.+?\.py)(?::(.*))?", value, flags=re.DOTALL)
    spec = importlib.util.spec_from_file_location("sweeps_worker_hook", m[1]) if m else None
    if m is None or spec is None or spec.loader is None:
        raise ValueError(f"{HOOK_ENV}={value!r}: expected FILE.py[:ARG]")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hook: WorkerHook = module.make_hook(m[2] or "")
    return hook


__all__ = ["HOOK_ENV", "CellRunner", "Outcome", "load_hook", "pick_device", "torch_threads"]


def pick_device(gpu_ids: list[Any]) -> torch.device:
    """The first visible CUDA device when this worker was given a GPU and torch sees one.

    Ray sets CUDA_VISIBLE_DEVICES to the worker's assigned GPU(s), so the assigned GPU is
    always ``cuda:0`` inside the worker. Declared GPUs that torch cannot see (a CPU machine
    started with ``num_gpus``) fall back to the CPU."""
    if gpu_ids and torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return torch.device("cuda", 0)
    return torch.device("cpu")


def torch_threads(cpus: float) -> int:
    """Intra-op threads for a worker owning ``cpus`` CPUs (a fractional share gets one)."""
    return max(1, int(cpus + 1e-9))


def warm_up() -> None:
    """Build one optimiser: torch imports torch._dynamo on the first (seconds of start-up), which
    would otherwise land inside the first cell and count against its timeout."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


class CellRunner:
    """A long-lived worker: one device, torch threads = its CPU share, a dataset cache, the C
    allocator tuned to reuse large temporaries (``cluster.allocator``).

    ``hook`` is a plug-in (``load_hook``); by default it is read from ``SWEEPS_WORKER_HOOK``
    in this process. Ray actors get the driver's value passed in.
    """

    def __init__(
        self,
        sink: ResultSink,
        cpus: float = 1.0,
        gpu_ids: list[Any] | None = None,
        cache_size: int = 8,
        hook: str | None = None,
        node: str | None = None,
    ) -> None:
        self.sink = sink
        self.malloc_tuned = tune_allocator()  # before any large tensor of this process
        torch.set_num_threads(torch_threads(cpus))
        warm_up()
        self.gpu_ids = [str(g) for g in gpu_ids or []]
        self.device = pick_device(self.gpu_ids)
        self._cache: OrderedDict[str, DataBundle] = OrderedDict()
        self._cache_size = cache_size
        self.hook = load_hook(os.environ.get(HOOK_ENV, "") if hook is None else hook)
        self.node = node or os.uname().nodename
        self.name = f"{self.node}:{os.getpid()}"
        self.cache_hits = 0

    def info(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "gpu_ids": self.gpu_ids,
            "pid": os.getpid(),
            "threads": torch.get_num_threads(),
            "malloc_tuned": self.malloc_tuned,
            "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "node": self.node,
            "name": self.name,
            "cached_datasets": len(self._cache),
            "cache_hits": self.cache_hits,
        }

    def _bundle(self, cell: Cell) -> DataBundle:
        key = "|".join(
            [
                cell.dataset.model_dump_json(),
                str(cell.n_train),
                str(cell.n_eval),
                str(cell.seed),
                str(cell.training.unlabeled_pool),
            ]
        )
        if key in self._cache:
            self.cache_hits += 1
            self._cache.move_to_end(key)
            return self._cache[key]
        bundle = load_data(cell)
        self._cache[key] = bundle
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return bundle

    def run(self, cell: Cell, attempt: int = 1) -> Outcome:
        t0 = time.perf_counter()
        try:
            if self.hook is not None:
                self.hook.before_cell(cell)
            saved = self.sink.load_model(cell.train_hash)
            ensemble = ensemble_from_bytes(saved[0], saved[1], self.device) if saved else None
            result = run_cell(cell, self.device, ensemble=ensemble, bundle=self._bundle(cell))
            if result.trained and result.ensemble is not None and result.status == Status.OK:
                self.sink.save_model(cell.train_hash, *ensemble_to_bytes(result.ensemble))
            receipt = self.sink.write_result(
                cell, result.rows, result.examples, attempt=attempt, model_reused=saved is not None
            )
            return Outcome(
                cell.cell_hash,
                True,
                result.status,
                receipt,
                None,
                time.perf_counter() - t0,
                self.name,
            )
        except Exception as exc:  # an attempt failed: report it, the driver decides to retry
            return Outcome(
                cell.cell_hash,
                False,
                "error",
                None,
                error_text(exc),
                time.perf_counter() - t0,
                self.name,
            )
