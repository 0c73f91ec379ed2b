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
        runs.append({
            "sweep": sweep, "run_id": run_id, "planned": planned, "done": counts["ok"],
            "failed": counts["failed"], "diverged": counts["diverged"],
            "missing": max(0, planned - len(done)), "state": m.get("status", "unknown"),
            "started_at": m.get("started_at"), "finished_at": m.get("finished_at"), "unreadable": bad,
        })  # fmt: skip
    return {"results": results, "runs": runs}
