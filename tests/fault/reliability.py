"""Regenerate RELIABILITY.md's table: run the fault-injection suite with measurement on and
print one Markdown row per scenario.

    .venv/bin/python tests/fault/reliability.py            # runs the suite, prints the table
    .venv/bin/python tests/fault/reliability.py FILE.jsonl # prints the table of an earlier run

The node-removal scenario is the cluster suite's test (issue 5); its measured times are taken
from the line it prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = [
    ("scenario", "scenario"),
    ("what_happened", "what happened"),
    ("cells", "cells"),
    ("cells_lost", "cells lost"),
    ("duplicate_rows", "duplicate rows"),
    ("partial_visible", "partial files visible"),
    ("hidden_tmp", "orphan .tmp files"),
    ("recovery_s", "time to recover (s)"),
]


def table(entries: list[dict[str, object]]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for e in entries:
        lines.append("| " + " | ".join(str(e.get(k, "")) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


S3_TEST = "tests/store/test_store_s3_faults.py"
NODE_TEST = "tests/cluster/test_cluster_faults.py::test_node_removed_mid_sweep_loses_nothing"
BATCH_TEST = "tests/cluster/test_cluster_batches.py"
NODE_LINE = re.compile(
    r"node killed -> loss noticed ([\d.]+) s, its cell done elsewhere ([\d.]+) s"
)


def node_entry(output: str) -> dict[str, object] | None:
    """The cluster suite's node-removal test asserts every cell exactly once; it prints times."""
    m = NODE_LINE.search(output)
    if not m:
        return None
    return {
        "scenario": "node removed (1 of 2 worker nodes)",
        "what_happened": f"loss noticed after {m[1]} s; the lost cell re-ran on the other node",
        "cells": 8, "cells_lost": 0, "duplicate_rows": 0, "partial_visible": 0, "hidden_tmp": 0,
        "recovery_s": round(float(m[2]), 2),
    }  # fmt: skip


def run_suite(path: Path) -> int:
    env = {**os.environ, "SWEEPS_RELIABILITY_OUT": str(path)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [*cmd, "tests/fault", S3_TEST, NODE_TEST, BATCH_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    node = node_entry(proc.stdout)
    if node is not None and proc.returncode == 0:
        with path.open("a") as f:
            f.write(json.dumps(node) + "\n")
    return proc.returncode


def main() -> int:
    if len(sys.argv) > 1:
        path, code = Path(sys.argv[1]), 0
    else:
        path = Path(tempfile.mkdtemp(prefix="reliability-")) / "figures.jsonl"
        code = run_suite(path)
    entries = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    print(table(entries))
    print(f"\n(figures: {path})")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
