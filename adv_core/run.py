"""Run one cell in a plain Python process: load data, train (or reuse) the ensemble, attack the
ensemble and each member at every eps (adv_core.evaluate), and return metrics rows plus a
per-example table.

No Ray, no files: the caller decides where results and weights go.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from adv_core import checks, data
from adv_core.config import Cell
from adv_core.data.base import DataBundle
from adv_core.defenses import build_defense
from adv_core.evaluate import evaluate
from adv_core.models import Ensemble, new_ensemble
from adv_core.results import MetricsRow, Status
from adv_core.rng import generator
from adv_core.training import Diverged, TrainLog, train


@dataclass
class CellResult:
    """rows: one dict per (member, attack, eps) (``MetricsRow`` fields); examples: column name
    -> list (``ExampleRow`` fields)."""

    rows: list[dict[str, Any]]
    examples: dict[str, list[Any]]
    ensemble: Ensemble | None = None
    trained: bool = False
    train_log: TrainLog | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return Status(self.rows[0]["status"]) if self.rows else Status.OK


def load_data(cell: Cell) -> DataBundle:
    return data.load(
        cell.dataset, cell.n_train, cell.n_eval, cell.seed, cell.training.unlabeled_pool
    )


def build_preprocess(cell: Cell) -> torch.nn.Module | None:
    """Negative-control defenses live in adv_core.defenses (registered by name)."""
    if cell.training.defense == "none":
        return None
    return build_defense(cell.training.defense, cell.training.defense_param)


def train_cell(cell: Cell, bundle: DataBundle, device: torch.device) -> tuple[Ensemble, TrainLog]:
    ens = new_ensemble(
        cell.model,
        bundle.input_shape,
        bundle.n_classes,
        cell.ensemble_size,
        cell.seed,
        build_preprocess(cell),
    ).to(device)
    log = train(ens, bundle, cell.training, generator("train", cell.train_part()), device)
    return ens, log


def run_cell(
    cell: Cell,
    device: torch.device | str = "cpu",
    ensemble: Ensemble | None = None,
    bundle: DataBundle | None = None,
) -> CellResult:
    """Train (unless ``ensemble`` is given) and evaluate one cell. Divergence gives
    ``diverged`` rows, never an exception; other exceptions propagate to the caller."""
    dev = torch.device(device)
    t0 = time.perf_counter()
    bundle = bundle if bundle is not None else load_data(cell)
    trained, log = False, None
    if ensemble is None and cell.training.method == "none":  # evaluate a given model
        ensemble = new_ensemble(
            cell.model, bundle.input_shape, bundle.n_classes, 1, cell.seed, build_preprocess(cell)
        )
    elif ensemble is None:
        try:
            ensemble, log = train_cell(cell, bundle, dev)
        except Diverged as exc:
            rows = failure_rows(cell, Status.DIVERGED, str(exc))
            return CellResult(rows, {}, timings={"total_s": time.perf_counter() - t0})
        trained = True
    ensemble = ensemble.to(dev).eval()
    t1 = time.perf_counter()
    records, examples = evaluate(cell, ensemble, bundle, dev)
    t2 = time.perf_counter()
    co = log is not None and bool(log.info.get(checks.CATASTROPHIC_OVERFITTING))
    extra = [checks.CATASTROPHIC_OVERFITTING] if co else []  # the FGSM-AT guard fired
    rows = [
        dataclasses.replace(
            r, wall_s=t2 - t0, device=str(dev), flags=sorted(set(r.flags) | set(extra))
        ).as_dict()
        for r in records
    ]
    timings = {"train_s": t1 - t0, "eval_s": t2 - t1, "total_s": t2 - t0}
    return CellResult(rows, examples.columns, ensemble, trained, log, timings)


def failure_rows(cell: Cell, status: Status, error: str) -> list[dict[str, Any]]:
    """One row per (attack, eps) for the whole ensemble, accuracies null, saying why."""
    return [
        MetricsRow.failure(a.name, a.norm, eps, Status(status), error).as_dict()
        for a in cell.attacks
        for eps in a.eps
    ]


def error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()[-2000:]
