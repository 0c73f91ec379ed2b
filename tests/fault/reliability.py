"""Regenerate RELIABILITY.md's table: run the fault-injection suite with measurement on and
print one Markdown row per scenario.

    .venv/bin/python tests/fault/reliability.py            # runs pytest tests/fault, prints the table
    .venv/bin/python tests/fault/reliability.py FILE.jsonl # prints the table of an earlier run
"""

from __future__ import annotations

import json
import os
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


def main() -> int:
    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
        code = 0
    else:
        path = Path(tempfile.mkdtemp(prefix="reliability-")) / "figures.jsonl"
        env = {**os.environ, "SWEEPS_RELIABILITY_OUT": str(path)}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/fault"]
        code = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    entries = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    print(table(entries))
    print(f"\n(figures: {path})")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
