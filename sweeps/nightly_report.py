"""The Markdown page of a nightly report (the dict ``sweeps.nightly.build_report`` returns)."""

from __future__ import annotations

import json
from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _table(changes: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| group | previous | now | difference | interval | test | p (Holm level) | n (prev / now) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in changes:
        test = "unpaired score"
        if g["paired"]:
            b, c = g["discordant"]
            test = f"paired exact ({b} lost, {c} gained)"
        lines.append(
            f"| {g['label']} | {_pct(g['acc_prev'])} | {_pct(g['acc_now'])} | "
            f"{100 * g['diff']:+.1f} pp | [{100 * g['lo']:+.1f}, {100 * g['hi']:+.1f}] pp | "
            f"{test} | {g['p_value']:.2g} ({g['level']:.2g}) | {g['n_prev']} / {g['n_now']} |"
        )
    return lines


def _drift_table(drifts: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| group | change began | baseline | last night | difference | p (Holm level) |",
        "|---|---|---|---|---|---|",
    ]
    for g in drifts:
        lines.append(
            f"| {g['label']} | {g['began'] or '-'} | {_pct(g['baseline_acc'])} | "
            f"{_pct(g['last_acc'])} | {100 * g['diff']:+.1f} pp | "
            f"{g['p_value']:.2g} ({g['level']:.2g}) |"
        )
    return lines


def _verdict(rep: dict[str, Any]) -> str:
    if not rep["regression"]:
        return f"no regression ({rep['groups_compared']} groups compared)"
    parts = []
    if rep["regressions"]:
        parts.append(f"{len(rep['regressions'])} of {rep['groups_compared']} groups")
    if rep["drift_regressions"]:
        parts.append(f"a drift in {len(rep['drift_regressions'])} groups over the history")
    return f"**REGRESSION in {' and '.join(parts)}**"


def _header(rep: dict[str, Any]) -> list[str]:
    run, models = rep["run"], rep["models"]
    return [
        f"# Nightly robustness report: {rep['sweep']} {rep['run_id']}",
        "",
        f"- verdict: {_verdict(rep)}",
        f"- compared with: {rep['previous_run_id'] or 'nothing (first nightly of this sweep)'}"
        f"; history: {len(rep['nights'])} nightly runs",
        f"- rule (sweeps/regression.py): a group regressed when robust accuracy dropped by more "
        f"than {100 * rep['threshold']:g} pp and Holm's step-down over the "
        f"{rep['groups_compared']} groups rejects 'no change' at family-wise level "
        f"{100 * rep['alpha']:g}%; {rep['groups_paired']} groups reuse the trained weights and "
        f"test points and get the paired exact test on discordant examples, the others the "
        f"unpaired score test (Newcombe interval). Over the history (3 nights or more), a "
        f"change point (ruptures PELT) whose last night lies more than the same threshold "
        f"below the baseline before it, Holm-significant, is a regression too.",
        f"- code: {run['code_version']} (git {run['git_revision']}); host {run['host']}; "
        f"devices {', '.join(run['devices'] or []) or '?'}",
        f"- run: {run['started_at']} to {run['finished_at']}; cells {run['cells']}: "
        f"{run['cells_done']} ok, {run['cells_failed']} failed, {run['cells_diverged']} "
        f"diverged, {run['cells_run_now']} run in this invocation",
        f"- trained ensembles: {len(models['reused'])} reused from earlier runs (train_hash "
        f"unchanged), {len(models['trained'])} trained in this run"
        + ("" if run["reuse_models"] in (True, None) else " (--retrain)"),
    ]


def render_markdown(rep: dict[str, Any], top: int = 10) -> str:
    run, models = rep["run"], rep["models"]
    lines = _header(rep)
    if run.get("unreadable_files"):
        lines.append(f"- unreadable files (re-run next time): {run['unreadable_files']}")
    if rep["regressions"]:
        lines += ["", "## Regressions", "", *_table(rep["regressions"])]
    if rep["drift_regressions"]:
        lines += ["", "## Drifts over the nightly history", ""]
        lines += _drift_table(rep["drift_regressions"])
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
