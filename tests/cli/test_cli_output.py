"""The CLI pipes cleanly and tells the truth: `sweeps status` through a real pipe is one
tab-separated table with every id whole; in an 80-column terminal (a real pty) long ids fold
instead of being cut; a run with a missing cell and an unreadable file is `incomplete`."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweeps.cli import app
from tests.specs import tiny_spec

ROOT = Path(__file__).resolve().parents[2]
LONG_RUN = "a-run-id-long-enough-to-overflow-any-80-column-table-" + "x" * 40


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 cells run inline, then one metrics file deleted and one truncated."""
    tmp = tmp_path_factory.mktemp("status")
    spec = tmp / "tiny.yaml"
    spec.write_text(tiny_spec())
    results = tmp / "results"
    res = CliRunner().invoke(
        app, ["run", str(spec), "--results", str(results), "--run-id", LONG_RUN,
              "--workers", "0", "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    files = sorted((results / "metrics" / "sweep=tiny" / f"run={LONG_RUN}").glob("*.parquet"))
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:100])
    return results


def sweeps(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "sweeps", *args], capture_output=True, text=True, env=env,
        timeout=120, check=False, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_status_through_a_pipe_is_whole_tsv(damaged: Path) -> None:
    res = sweeps("status", "--results", str(damaged))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = lines[0].split("\t")
    assert header[:3] == ["sweep", "run_id", "planned"] and "state" in header
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert len(rows) == 1 and rows[0]["run_id"] == LONG_RUN  # whole, never "a-run…"
    assert rows[0]["state"] == "incomplete" and rows[0]["missing"] == "2"
    assert rows[0]["unreadable"] == "1" and "unreadable" in rows[0]["why"]
    assert "…" not in res.stdout and "\x1b[" not in res.stdout  # no ellipsis, no colour codes
    # the unreadable file's full path, on stderr (stdout stays one table)
    bad = sorted((damaged / "metrics").rglob("*.parquet"))[0]
    assert str(bad) in res.stderr.replace("\n", "")
    js = json.loads(sweeps("status", "--results", str(damaged), "--json").stdout)
    assert js["runs"][0]["state"] == "incomplete" and js["runs"][0]["run_id"] == LONG_RUN


def test_status_in_an_80_column_terminal_folds_instead_of_cutting(damaged: Path) -> None:
    main, sub = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeps", "status", "--results", str(damaged)],
            stdout=sub, stderr=sub, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"},
        )  # fmt: skip
        os.close(sub)
        chunks = []
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:  # the pty closes when the process exits
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=120) == 0
    finally:
        os.close(main)
    text = b"".join(chunks).decode()
    assert "…" not in text
    body = [line for line in text.splitlines() if line.count("│") >= 9]  # header: ┃
    assert body and max(len(line) for line in body) <= 80
    run_col = "".join(line.split("│")[2].strip() for line in body)
    assert LONG_RUN in run_col


def test_complete_and_failed_states() -> None:
    from sweeps.status import run_state

    assert run_state({"status": "complete"}, 0, 0, [], running=False)[0] == "complete"
    assert run_state({"status": "complete"}, 1, 0, [], running=False)[0] == "incomplete"
    assert run_state({"status": "complete"}, 0, 0, ["x.parquet"], running=False)[0] == (
        "incomplete"
    )
    assert run_state({"status": "failed"}, 0, 2, [], running=False) == (
        "failed",
        "2 cells failed permanently",
    )
    assert run_state({"status": "complete"}, 3, 0, [], running=True)[0] == "running"


def test_validate_json(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(tiny_spec())
    bad.write_text(tiny_spec(n_eval=-1))
    ok = CliRunner().invoke(app, ["validate", str(good), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output) == {"ok": True, "sweep": "tiny", "cells": 8}
    no = CliRunner().invoke(app, ["validate", str(bad), "--json"])
    assert no.exit_code == 2
    errors = json.loads(no.output)["errors"]
    assert [e["field"] for e in errors] == ["n_eval"]
