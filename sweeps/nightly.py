"""``sweeps nightly``: run a spec as ``nightly-YYYYMMDD``, compare it with the most recent
earlier nightly of the same sweep and with the whole ``nightly-*`` history, and write a
regression report.

The rule lives in sweeps/regression.py, shared with analysis/notebooks/nightly.ipynb: per group
(seeds pooled) a paired exact test on the per-example outcomes when the trained weights and the
test points are the same on both nights, else an unpaired score test; Holm over the groups; a
drop beyond ``threshold`` that Holm rejects is a regression. A change-point test (ruptures) on
each group's series over every nightly catches a slow drift that no single night shows; it is a
regression too, and the report names the night where the change began.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from adv_core.results import FINISHED
from sweeps import regression
from sweeps.nightly_report import render_markdown
from sweeps.regression import GROUP_KEYS, HIDDEN_KEYS, Drift, GroupTest
from sweeps.store import EXAMPLES, METRICS, ResultStore

NIGHTLY_RE = re.compile(r"^nightly-(\d{8})$")
__all__ = ["GROUP_KEYS", "HIDDEN_KEYS", "Comparison", "compare_runs", "run_nightly"]


def nightly_run_id(date: dt.date) -> str:
    return f"nightly-{date:%Y%m%d}"


def nightly_history(store: ResultStore, sweep: str, run_id: str) -> list[str]:
    """Every nightly run of ``sweep`` up to and including ``run_id``, oldest first."""
    return sorted(r for r in store.runs(sweep) if NIGHTLY_RE.match(r) and r <= run_id)


def previous_nightly(store: ResultStore, sweep: str, run_id: str) -> str | None:
    """The most recent nightly run of ``sweep`` before ``run_id`` that has results."""
    earlier = [r for r in nightly_history(store, sweep, run_id) if r < run_id]
    return max(earlier) if earlier else None


@dataclass
class Comparison:
    run_id: str
    previous: str | None
    threshold: float
    alpha: float
    groups: list[GroupTest] = field(default_factory=list)
    only_previous: list[dict[str, Any]] = field(default_factory=list)
    only_now: list[dict[str, Any]] = field(default_factory=list)
    drifts: list[Drift] = field(default_factory=list)
    nights: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[GroupTest]:
        return [g for g in self.groups if g.regression]

    @property
    def drift_regressions(self) -> list[Drift]:
        return [d for d in self.drifts if d.regression]


_METRIC_COLS = [*GROUP_KEYS, *HIDDEN_KEYS, "run_id", "status", "n_robust", "n_eval"]
_METRIC_COLS += ["cell_hash", "seed", "train_hash"]


def _frame(
    store: ResultStore, table: str, sweep: str, run_id: str, cols: list[str]
) -> pl.DataFrame:
    frame = pl.from_arrow(store.read_table(table, sweep, run_id, columns=cols))
    assert isinstance(frame, pl.DataFrame)
    return frame


def compare_runs(
    store: ResultStore,
    sweep: str,
    run_id: str,
    previous: str | None,
    threshold: float = 0.05,
    alpha: float = 0.05,
) -> Comparison:
    """This night against ``previous`` (paired where possible) and against the history."""
    out = Comparison(run_id, previous, threshold, alpha)
    nights = nightly_history(store, sweep, run_id)
    out.nights = nights
    if previous is not None:
        now, prev = (_frame(store, METRICS, sweep, r, _METRIC_COLS) for r in (run_id, previous))
        ex_now, ex_prev = (
            _frame(store, EXAMPLES, sweep, r, regression.EXAMPLE_COLUMNS)
            for r in (run_id, previous)
        )
        out.groups, out.only_now, out.only_previous = regression.compare_nights(
            now, prev, ex_now, ex_prev, threshold=threshold, alpha=alpha
        )
    if len(nights) >= 3:
        frames = [_frame(store, METRICS, sweep, r, _METRIC_COLS) for r in nights]
        out.drifts = regression.history(pl.concat(frames), threshold=threshold, alpha=alpha)
    return out


def model_reuse(store: ResultStore, sweep: str, run_id: str) -> dict[str, list[str]]:
    """train_hashes whose ensembles were loaded from an earlier run vs trained in this one."""
    t = store.read_table(METRICS, sweep, run_id, columns=["train_hash", "model_reused"])
    reused: set[str] = set()
    trained: set[str] = set()
    for h, r in zip(t["train_hash"].to_pylist(), t["model_reused"].to_pylist(), strict=True):
        if r is not None:
            (reused if r else trained).add(h)
    return {"reused": sorted(reused), "trained": sorted(trained - reused)}


_RUN_FIELDS = (
    "code_version", "git_revision", "host", "devices", "nodes", "started_at", "finished_at",
    "cells", "cells_done", "cells_failed", "cells_diverged", "cells_run_now",
    "unreadable_files", "reuse_models",
)  # fmt: skip


def _rows(items: list[GroupTest] | list[Drift]) -> list[dict[str, Any]]:
    return [{**asdict(g), "label": g.label()} for g in items]


def build_report(
    cmp: Comparison, manifest: dict[str, Any], models: dict[str, list[str]]
) -> dict[str, Any]:
    return {
        "sweep": manifest.get("sweep"),
        "run_id": cmp.run_id,
        "previous_run_id": cmp.previous,
        "regression": bool(cmp.regressions or cmp.drift_regressions),
        "threshold": cmp.threshold,
        "alpha": cmp.alpha,
        "groups_compared": len(cmp.groups),
        "groups_paired": sum(g.paired for g in cmp.groups),
        "regressions": _rows(cmp.regressions),
        "changes": _rows(cmp.groups),
        "nights": cmp.nights,
        "drift_regressions": _rows(cmp.drift_regressions),
        "drifts": _rows(cmp.drifts),
        "only_now": cmp.only_now,
        "only_previous": cmp.only_previous,
        "models": models,
        "run": {k: manifest.get(k) for k in _RUN_FIELDS},
    }


@dataclass
class NightlyOutcome:
    run_id: str
    report: dict[str, Any]
    paths: list[str]
    exit_code: int


def render_html(store: ResultStore, sweep: str, run_id: str) -> str | None:
    """Execute analysis/notebooks/nightly.ipynb (where it exists) into reports/<run_id>.html."""
    import tempfile
    from pathlib import Path

    from analysis.report import NOTEBOOKS, render_report

    if not (NOTEBOOKS / "nightly.ipynb").is_file():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = render_report(store.root, Path(tmp) / "nightly.html", ["nightly"], sweep, run_id)
        return store.write_report(run_id, "html", out.read_bytes())


def write_reports(
    store: ResultStore,
    sweep: str,
    run_id: str,
    *,
    threshold: float = 0.05,
    alpha: float = 0.05,
    html: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """Compare ``run_id`` with the previous nightly and write reports/<run_id>.{md,json,html}."""
    cmp = compare_runs(
        store, sweep, run_id, previous_nightly(store, sweep, run_id), threshold, alpha
    )
    manifest = store.read_manifest(run_id) or {}
    rep = build_report(cmp, {"sweep": sweep, **manifest}, model_reuse(store, sweep, run_id))
    paths = [store.write_report(run_id, "md", render_markdown(rep))]  # sweeps/nightly_report.py
    if html:
        try:
            page = render_html(store, sweep, run_id)
        except Exception as exc:  # the notebook is optional; its failure must not hide a verdict
            rep["html_error"] = f"{type(exc).__name__}: {exc}"[-2000:]
        else:
            paths += [page] if page else []
    paths.append(store.write_report(run_id, "json", json.dumps(rep, indent=2, default=str)))
    return rep, paths


def run_nightly(
    spec: Any,
    results: str,
    date: dt.date,
    *,
    threshold: float = 0.05,
    alpha: float = 0.05,
    retrain: bool = False,
    html: bool = True,
    report_only: bool = False,
    **run_kwargs: Any,
) -> NightlyOutcome:
    """Run (or resume) ``spec`` as nightly-YYYYMMDD, then report; exit 3 on regression.
    ``report_only`` skips the run (the cells were run elsewhere, e.g. by ``sweeps submit``)."""
    from sweeps.runner import EXIT_FAILED, EXIT_OK, EXIT_REGRESSION, run_sweep

    run_id = nightly_run_id(date)
    nightly = {"date": date.isoformat(), "threshold": threshold, "alpha": alpha, "retrain": retrain}
    store = ResultStore(results)
    if report_only:  # a cell that is missing or failed makes the night a failure (exit 1)
        from sweeps.plan import plan

        done, _ = store.cell_status(spec.name, run_id)
        ok = all(done.get(c.cell_hash) in FINISHED for c in plan(spec))
        run_code = EXIT_OK if ok else EXIT_FAILED
    else:
        run_code = run_sweep(
            spec,
            results,
            run_id,
            reuse_models=not retrain,
            extra_manifest={"nightly": nightly},
            **run_kwargs,
        ).exit_code
    rep, paths = write_reports(
        store, spec.name, run_id, threshold=threshold, alpha=alpha, html=html
    )
    code = EXIT_REGRESSION if rep["regression"] else run_code
    return NightlyOutcome(run_id, rep, paths, code)
