"""``sweeps nightly``: run a spec as ``nightly-YYYYMMDD``, compare it with the most recent
earlier nightly of the same sweep, and write a regression report.

Comparison, group by group (dataset, d, n_train, model, training, attack, norm, eps, member;
seeds are pooled): robust accuracy p = n_robust / n_eval from the binomial counts of ok rows.
The difference p_now - p_prev gets Newcombe's hybrid score interval (built from the two Wilson
intervals, adv_core.stats.wilson). With G groups compared, each interval is taken at the
family-wise level 1 - alpha / G (Bonferroni), so a night that only differs by sampling noise
flags no group with probability >= 1 - alpha. A group regressed when its drop is larger than
``threshold`` AND the whole interval lies below zero: noise alone is not a regression, and
neither is a statistically clear but negligible drop.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import polars as pl

from adv_core.results import FINISHED, Status
from adv_core.stats import wilson
from sweeps.store import METRICS, ResultStore

NIGHTLY_RE = re.compile(r"^nightly-(\d{8})$")
GROUP_KEYS = (
    "dataset", "d", "n_train", "model", "train_method", "train_norm", "train_eps",
    "attack", "norm", "eps", "member",
)  # fmt: skip
# Configs beyond the names (e.g. sigma of a dataset, width of an mlp) keep groups apart.
HIDDEN_KEYS = ("dataset_config", "model_config", "training_config")


def nightly_run_id(date: dt.date) -> str:
    return f"nightly-{date:%Y%m%d}"


def previous_nightly(store: ResultStore, sweep: str, run_id: str) -> str | None:
    """The most recent nightly run of ``sweep`` before ``run_id`` that has results."""
    earlier = [r for r in store.runs(sweep) if NIGHTLY_RE.match(r) and r < run_id]
    return max(earlier) if earlier else None


def diff_interval(k1: int, n1: int, k0: int, n0: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p0 (p1 = k1/n1 now, p0 = k0/n0 before)."""
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1, z)
    l0, u0 = wilson(k0, n0, z)
    d = p1 - p0
    return d - math.hypot(p1 - l1, u0 - p0), d + math.hypot(u1 - p1, p0 - l0)


def judge(
    k_now: int, n_now: int, k_prev: int, n_prev: int, z: float, threshold: float
) -> tuple[float, float, float, bool]:
    """(difference, interval lo, hi, regressed): a drop beyond the threshold AND the interval."""
    lo, hi = diff_interval(k_now, n_now, k_prev, n_prev, z)
    diff = k_now / n_now - k_prev / n_prev
    return diff, lo, hi, (-diff > threshold and hi < 0.0)


@dataclass
class GroupChange:
    key: dict[str, Any]
    n_prev: int
    n_now: int
    acc_prev: float
    acc_now: float
    diff: float
    lo: float
    hi: float
    regression: bool

    def label(self) -> str:
        k = self.key
        train = k["train_method"] + (
            f"({k['train_norm']}, eps={k['train_eps']:g})" if k["train_eps"] is not None else ""
        )
        return (
            f"{k['dataset']} d={k['d']} n_train={k['n_train']} {k['model']} {train} "
            f"{k['attack']}/{k['norm']} eps={k['eps']:g} member={k['member']}"
        )


@dataclass
class Comparison:
    run_id: str
    previous: str | None
    threshold: float
    alpha: float
    z: float
    groups: list[GroupChange] = field(default_factory=list)
    only_previous: list[dict[str, Any]] = field(default_factory=list)
    only_now: list[dict[str, Any]] = field(default_factory=list)

    @property
    def regressions(self) -> list[GroupChange]:
        return [g for g in self.groups if g.regression]


def group_counts(store: ResultStore, sweep: str, run_id: str) -> pl.DataFrame:
    """Pooled binomial counts per group of a run's ok rows."""
    cols = [*GROUP_KEYS, *HIDDEN_KEYS, "status", "n_robust", "n_eval"]
    frame = pl.from_arrow(store.read_table(METRICS, sweep, run_id, columns=cols))
    assert isinstance(frame, pl.DataFrame)
    return (
        frame.filter((pl.col("status") == Status.OK) & pl.col("n_robust").is_not_null())
        .group_by([*GROUP_KEYS, *HIDDEN_KEYS])
        .agg(pl.col("n_robust").sum().alias("k"), pl.col("n_eval").sum().alias("n"))
        .sort([*GROUP_KEYS, *HIDDEN_KEYS], nulls_last=True)
    )


def compare_runs(
    store: ResultStore,
    sweep: str,
    run_id: str,
    previous: str | None,
    threshold: float = 0.05,
    alpha: float = 0.05,
) -> Comparison:
    if previous is None:
        return Comparison(run_id, None, threshold, alpha, float("nan"))
    now, prev = group_counts(store, sweep, run_id), group_counts(store, sweep, previous)
    keys = [*GROUP_KEYS, *HIDDEN_KEYS]
    both = now.join(prev, on=keys, how="inner", suffix="_prev", nulls_equal=True)
    z = NormalDist().inv_cdf(1 - alpha / (2 * max(1, both.height)))
    out = Comparison(run_id, previous, threshold, alpha, z)
    for r in both.iter_rows(named=True):
        diff, lo, hi, bad = judge(r["k"], r["n"], r["k_prev"], r["n_prev"], z, threshold)
        out.groups.append(GroupChange(
            {k: r[k] for k in GROUP_KEYS}, r["n_prev"], r["n"], r["k_prev"] / r["n_prev"],
            r["k"] / r["n"], diff, lo, hi, bad,
        ))  # fmt: skip
    out.only_now = (
        now.join(prev, on=keys, how="anti", nulls_equal=True).select(GROUP_KEYS).to_dicts()
    )
    out.only_previous = (
        prev.join(now, on=keys, how="anti", nulls_equal=True).select(GROUP_KEYS).to_dicts()
    )
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


def build_report(
    cmp: Comparison, manifest: dict[str, Any], models: dict[str, list[str]]
) -> dict[str, Any]:
    return {
        "sweep": manifest.get("sweep"),
        "run_id": cmp.run_id,
        "previous_run_id": cmp.previous,
        "regression": bool(cmp.regressions),
        "threshold": cmp.threshold,
        "alpha": cmp.alpha,
        "z": None if math.isnan(cmp.z) else cmp.z,
        "groups_compared": len(cmp.groups),
        "regressions": [{**asdict(g), "label": g.label()} for g in cmp.regressions],
        "changes": [{**asdict(g), "label": g.label()} for g in cmp.groups],
        "only_now": cmp.only_now,
        "only_previous": cmp.only_previous,
        "models": models,
        "run": {
            k: manifest.get(k)
            for k in (
                "code_version",
                "git_revision",
                "host",
                "devices",
                "nodes",
                "started_at",
                "finished_at",
                "cells",
                "cells_done",
                "cells_failed",
                "cells_diverged",
                "cells_run_now",
                "unreadable_files",
                "reuse_models",
            )
        },  # fmt: skip
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _table(changes: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| group | previous | now | difference | interval | n (prev / now) |",
        "|---|---|---|---|---|---|",
    ]
    for g in changes:
        lines.append(
            f"| {g['label']} | {_pct(g['acc_prev'])} | {_pct(g['acc_now'])} | "
            f"{100 * g['diff']:+.1f} pp | [{100 * g['lo']:+.1f}, {100 * g['hi']:+.1f}] pp | "
            f"{g['n_prev']} / {g['n_now']} |"
        )
    return lines


def render_markdown(rep: dict[str, Any], top: int = 10) -> str:
    run, models = rep["run"], rep["models"]
    verdict = (
        f"**REGRESSION in {len(rep['regressions'])} of {rep['groups_compared']} groups**"
        if rep["regression"]
        else f"no regression ({rep['groups_compared']} groups compared)"
    )
    lines = [
        f"# Nightly robustness report: {rep['sweep']} {rep['run_id']}",
        "",
        f"- verdict: {verdict}",
        f"- compared with: {rep['previous_run_id'] or 'nothing (first nightly of this sweep)'}",
        f"- rule: a group regressed when robust accuracy dropped by more than "
        f"{100 * rep['threshold']:g} pp and the whole interval for the difference is below 0 "
        f"(Newcombe score interval, family-wise level {100 * (1 - rep['alpha']):g}% over "
        f"{rep['groups_compared']} groups, z = {rep['z'] or float('nan'):.2f})",
        f"- code: {run['code_version']} (git {run['git_revision']}); host {run['host']}; "
        f"devices {', '.join(run['devices'] or []) or '?'}",
        f"- run: {run['started_at']} to {run['finished_at']}; cells {run['cells']}: "
        f"{run['cells_done']} ok, {run['cells_failed']} failed, {run['cells_diverged']} "
        f"diverged, {run['cells_run_now']} run in this invocation",
        f"- trained ensembles: {len(models['reused'])} reused from earlier runs (train_hash "
        f"unchanged), {len(models['trained'])} trained in this run"
        + ("" if run["reuse_models"] in (True, None) else " (--retrain)"),
    ]
    if run.get("unreadable_files"):
        lines.append(f"- unreadable files (re-run next time): {run['unreadable_files']}")
    if rep["regressions"]:
        lines += ["", "## Regressions", "", *_table(rep["regressions"])]
    biggest = sorted(rep["changes"], key=lambda g: abs(g["diff"]), reverse=True)[:top]
    if biggest and all(g["diff"] == 0 for g in biggest):
        lines += ["", "Every group's robust accuracy equals the previous night's exactly."]
    elif biggest:
        lines += ["", f"## Largest changes (top {len(biggest)} by size)", "", *_table(biggest)]
    for key, title in (("only_previous", "Groups missing now"), ("only_now", "New groups")):
        if rep[key]:
            lines += ["", f"## {title}", ""]
            lines += [f"- {json.dumps(g, sort_keys=True)}" for g in rep[key]]
    lines += ["", "## Trained ensembles (train_hash)", ""]
    for what in ("reused", "trained"):
        hashes = models[what]
        more = f" and {len(hashes) - top * 3} more" if len(hashes) > top * 3 else ""
        if hashes:
            lines.append(f"- {what}: {', '.join(hashes[: top * 3])}{more}")
    return "\n".join(lines) + "\n"


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
    paths = [store.write_report(run_id, "md", render_markdown(rep))]
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
