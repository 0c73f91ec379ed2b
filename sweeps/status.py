"""``sweeps status``: every run under a results root with its cell counts and unreadable files."""

from __future__ import annotations

from typing import Any

from adv_core.results import Status
from sweeps.store import ResultStore


def collect_status(results: str) -> dict[str, Any]:
    store = ResultStore(results)
    manifests = {
        (str(m["sweep"]), str(m["run_id"])): m
        for m in store.manifests()
        if m.get("sweep") and m.get("run_id")
    }
    keys: set[tuple[str, str]] = set(manifests)
    for sweep in store.sweeps():
        keys |= {(sweep, r) for r in store.runs(sweep)}
    runs = []
    for sweep, run_id in sorted(keys):
        done, bad = store.cell_status(sweep, run_id)
        m = manifests.get((sweep, run_id), {})
        planned = int(m.get("cells", len(done)))
        counts = {s.value: sum(1 for v in done.values() if v == s) for s in Status}
        missing = max(0, planned - len(done))
        state, why = run_state(
            m, missing, counts["failed"], bad, running=_lock_live(store, sweep, run_id)
        )
        runs.append({
            "sweep": sweep, "run_id": run_id, "planned": planned, "done": counts["ok"],
            "failed": counts["failed"], "diverged": counts["diverged"],
            "missing": missing, "state": state, "why": why,
            "started_at": m.get("started_at"), "finished_at": m.get("finished_at"), "unreadable": bad,
        })  # fmt: skip
    return {"results": results, "runs": runs}


def run_state(
    manifest: dict[str, Any], missing: int, failed: int, unreadable: list[str], running: bool
) -> tuple[str, str]:
    """(state, why) of a run from what is on disk, not from what its driver last wrote:
    ``running`` while a live process holds the run's lock; ``incomplete`` when cells are
    missing or their files unreadable (the next ``sweeps run`` redoes them); ``failed`` when
    every cell has a result but some failed permanently; ``complete`` otherwise."""
    if running:
        return "running", "a live process holds the run's lock"
    problems = []
    if missing:
        problems.append(f"{missing} cell{'s' * (missing != 1)} missing")
    if unreadable:
        n = len(unreadable)
        problems.append(f"{n} unreadable file{'s' * (n != 1)}")
    if not manifest:
        problems.append("no manifest")
    if missing or unreadable:
        return "incomplete", "; ".join(problems) + " (sweeps run resumes it)"
    if failed:
        return "failed", f"{failed} cell{'s' * (failed != 1)} failed permanently"
    return "complete", "every planned cell has a result" + (
        " (no manifest: planned = found)" if not manifest else ""
    )


def _lock_live(store: ResultStore, sweep: str, run_id: str) -> bool:
    lock = store.run_lock(sweep, run_id)
    return lock.live()
