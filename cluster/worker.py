"""What one worker does with one cell, with no Ray in sight: load or train the ensemble, run
the evaluation, save the checkpoint, write the rows through the sink, return the receipt.

``CellRunner`` holds per-process state (device, dataset cache) and is wrapped as a Ray actor
by cluster/pool.py; tests drive it directly too.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from adv_core.config import Cell
from adv_core.data.base import DataBundle
from adv_core.models import ensemble_from_bytes, ensemble_to_bytes
from adv_core.run import STATUS_OK, error_text, load_data, run_cell
from cluster.sink import ResultSink


@dataclass(frozen=True)
class Outcome:
    """A worker's answer: the sink's receipt, or the error that stopped the attempt."""

    cell_hash: str
    ok: bool
    status: str
    receipt: Any = None
    error: str | None = None
    wall_s: float = 0.0
    worker: str = ""


def pick_device(gpu_ids: list[Any]) -> torch.device:
    """The first visible CUDA device when this worker was given a GPU and torch sees one."""
    if gpu_ids and torch.cuda.is_available():
        return torch.device("cuda", 0)  # CUDA_VISIBLE_DEVICES is set to the assigned GPU(s)
    return torch.device("cpu")


class CellRunner:
    """A long-lived worker. ``fail_hook`` lets fault tests inject errors by cell hash."""

    def __init__(
        self,
        sink: ResultSink,
        cpus: float = 1.0,
        gpu_ids: list[Any] | None = None,
        cache_size: int = 8,
    ) -> None:
        self.sink = sink
        torch.set_num_threads(max(1, int(cpus)))
        self.device = pick_device(list(gpu_ids or []))
        self._cache: OrderedDict[str, DataBundle] = OrderedDict()
        self._cache_size = cache_size
        self.name = f"{os.uname().nodename}:{os.getpid()}"

    def info(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "pid": os.getpid(),
            "threads": torch.get_num_threads(),
            "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "name": self.name,
        }

    def _bundle(self, cell: Cell) -> DataBundle:
        key = "|".join(
            [
                cell.dataset.model_dump_json(),
                str(cell.n_train),
                str(cell.n_eval),
                str(cell.seed),
                str(getattr(cell.training, "n_unlabeled", 0)),
            ]
        )
        if key in self._cache:
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
            _maybe_inject_fault(cell)
            saved = self.sink.load_model(cell.train_hash)
            ensemble = ensemble_from_bytes(saved[0], saved[1], self.device) if saved else None
            result = run_cell(cell, self.device, ensemble=ensemble, bundle=self._bundle(cell))
            if result.trained and result.ensemble is not None and result.status == STATUS_OK:
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


FAULT_ENV = "SWEEPS_FAULT_INJECT"


def _maybe_inject_fault(cell: Cell) -> None:
    """Test hook: ``SWEEPS_FAULT_INJECT=raise:<hash-prefix>`` fails that cell every attempt;
    ``exit:<hash-prefix>:<marker-file>`` kills the worker process once (the marker remembers)."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    kind, _, rest = spec.partition(":")
    prefix, _, marker = rest.partition(":")
    if not cell.cell_hash.startswith(prefix):
        return
    if kind == "raise":
        raise RuntimeError(f"injected failure for cell {cell.cell_hash}")
    if kind == "exit" and marker and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(17)
    if kind == "sleep":
        time.sleep(float(marker or 3600))
