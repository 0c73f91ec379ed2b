"""Faults of the driver and the results disk: the driver SIGKILLed while a result file is being
renamed into place, and the results disk filling up mid-sweep. After each, readers never see a
partial file and a re-run completes with every cell's rows exactly once."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analysis import load
from sweeps.cli import app
from sweeps.runner import EXIT_FAILED, EXIT_OK
from tests.fault.harness import KEY, assert_complete, audit, fault_spec, fault_spec_text, record
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def sweeps_cmd(*args: str, pause_s: float | None = None) -> list[str]:
    if pause_s is None:
        return [sys.executable, "-m", "sweeps", *args]
    return [sys.executable, str(ROOT / "tests" / "fault" / "slow_driver.py"), str(pause_s), *args]


def rerun(spec_file: Path, results: Path, run_id: str) -> tuple[Any, float]:
    t0 = time.monotonic()
    res = CliRunner().invoke(
        app,
        ["run", str(spec_file), "--results", str(results), "--run-id", run_id]
        + ["--workers", "0", "--quiet"],
    )
    return res, time.monotonic() - t0


def test_driver_killed_while_a_file_is_renamed(tmp_path: Path) -> None:
    """A driver (a real process, running cells inline) pauses between writing a metrics file's
    temporary name and renaming it; it is SIGKILLed in that pause. Readers see only complete
    files, the dead driver's run lock is taken over, and the re-run completes the sweep."""
    spec_file = tmp_path / "dkill.yaml"
    spec_file.write_text(fault_spec_text("dkill", seeds="[0]"))
    spec = fault_spec("dkill", seeds="[0]")
    results = tmp_path / "results"
    metrics = results / "metrics" / "sweep=dkill" / "run=k"
    args = ["run", str(spec_file), "--results", str(results), "--run-id", "k", "--workers", "0"]
    proc = subprocess.Popen(
        sweeps_cmd(*args, "--quiet", pause_s=1.0),
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    in_flight: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        done = [p for p in metrics.glob("*.parquet") if not p.name.startswith(".")]
        in_flight = list(metrics.glob(".tmp-*"))
        if done and in_flight:  # mid-sweep, and a rename is pending right now
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    t_kill = time.monotonic()
    proc.wait()
    assert in_flight, "the driver was not killed during a write"
    victim = in_flight[0].name.split("-")[-1]  # .tmp-<uuid>-<cell_hash>.parquet
    assert not (metrics / victim).exists()
    a = audit(results, spec, "k")
    assert a.partial_visible == 0 and a.duplicate_rows == 0
    assert 1 <= len(a.status) < 4
    res, rerun_s = rerun(spec_file, results, "k")
    assert res.exit_code == EXIT_OK, res.output
    b = audit(results, spec, "k")
    assert_complete(b, spec, ok_cells=4)
    assert (metrics / victim).exists()
    record(
        "driver SIGKILL during a rename",
        f"killed with {len(a.status)}/4 cells done and one rename pending; re-run resumed",
        b,
        time.monotonic() - t_kill,
        rerun_s=rerun_s,
    )


def test_driver_killed_while_a_checkpoint_is_renamed(tmp_path: Path) -> None:
    """A driver (a real process, running cells inline) pauses between writing a checkpoint's
    temporary (``models/<h[:2]>/.tmp-*``) and renaming it; it is SIGKILLed in that pause. No half
    checkpoint is visible; the re-run's start pass deletes the killed run's temporary once it is
    older than MODEL_TMP_AGE_S (its mtime is set back, as if the kill were an hour ago) but keeps
    a young one (it may belong to a concurrent run still writing), and never reads either as a
    checkpoint: the young one is garbage under the victim's own train hash."""
    from sweeps.compact import MODEL_TMP_AGE_S

    spec_file = tmp_path / "mkill.yaml"
    spec_file.write_text(fault_spec_text("mkill", seeds="[0]"))
    spec = fault_spec("mkill", seeds="[0]")
    results = tmp_path / "results"
    args = ["run", str(spec_file), "--results", str(results), "--run-id", "m", "--workers", "0"]
    proc = subprocess.Popen(
        sweeps_cmd(*args, "--quiet", pause_s=30.0),
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SWEEPS_SLOW_PATH": "/models/"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    in_flight: list[Path] = []

    def writing_or_gone() -> bool:
        in_flight[:] = list((results / "models").glob("*/.tmp-*"))
        return bool(in_flight) or proc.poll() is not None

    wait_until(writing_or_gone, 120, "a checkpoint temporary (or the driver's exit)")
    proc.send_signal(signal.SIGKILL)
    t_kill = time.monotonic()
    proc.wait()
    assert len(in_flight) == 1, "the driver was not killed during a checkpoint write"
    killed = in_flight[0]
    victim = killed.name.split("-", 2)[2]  # .tmp-<uuid>-<train_hash>.safetensors
    assert not (killed.parent / victim).exists()  # no half checkpoint under the real name
    a = audit(results, spec, "m")
    assert a.partial_visible == 0 and a.duplicate_rows == 0 and len(a.status) < 4
    hour_ago = time.time() - MODEL_TMP_AGE_S - 60
    os.utime(killed, (hour_ago, hour_ago))
    young = killed.parent / f".tmp-{'0' * 32}-{victim}"
    young.write_bytes(b"not a checkpoint: a concurrent writer is still writing this")
    res, rerun_s = rerun(spec_file, results, "m")
    assert res.exit_code == EXIT_OK, res.output
    assert not killed.exists(), "the start pass kept a stale checkpoint temporary"
    assert young.exists(), "the start pass deleted a temporary a live writer may own"
    assert (killed.parent / victim).exists()  # trained again and saved whole
    young.unlink()
    b = audit(results, spec, "m")
    assert_complete(b, spec, ok_cells=4)
    record(
        "driver SIGKILL during a checkpoint rename",
        f"killed with {len(a.status)}/4 cells done and one checkpoint rename pending; "
        "re-run resumed, deleted the stale temporary, kept a young one",
        b,
        time.monotonic() - t_kill,
        rerun_s=rerun_s,
    )


@contextmanager
def small_disk(path: Path, kib: int) -> Iterator[Callable[[], None] | None]:
    """A tmpfs of ``kib`` KiB at ``path``; yields a function that grows it (freeing space), or
    None where mounting is not permitted (not root)."""
    path.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        yield None
        return
    try:
        yield lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(path)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _file_size_limit(kib: int) -> Callable[[], None]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (kib * 1024, kib * 1024))

    return limit


def fill_disk_run(
    spec_file: Path, results: Path, ray_cluster: Any, grow: Callable[[], None] | None
) -> tuple[int, str]:
    """The first run, on a disk that fills up: on the tmpfs through the Ray cluster, or (without
    root) an inline driver process whose writes fail past 8 KiB per file."""
    args = ["run", str(spec_file), "--results", str(results), "--run-id", "d", "--quiet"]
    if grow is not None:
        res = CliRunner().invoke(app, [*args, "--workers", "2"])
        return res.exit_code, res.output
    proc = subprocess.run(
        sweeps_cmd(*args, "--workers", "0"),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit(8),
        timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_results_disk_fills_up(ray_cluster: Any, tmp_path: Path) -> None:
    """The results disk (a 160 KiB tmpfs) fills after a few cells: the run stops with exit 1
    and a message naming --results, no partial or temporary file is left, and once space is
    freed the re-run completes."""
    spec_file = tmp_path / "disk.yaml"
    spec_file.write_text(fault_spec_text("disk", seeds="[0, 1]"))
    spec = fault_spec("disk", seeds="[0, 1]")
    with small_disk(tmp_path / "disk", 160) as grow:
        results = tmp_path / "disk"
        code, output = fill_disk_run(spec_file, results, ray_cluster, grow)
        assert code == EXIT_FAILED, output
        assert "error --results: cannot write to" in output, output
        assert ("No space left" if grow else "File too large") in output, output
        a = audit(results, spec, "d")
        assert a.partial_visible == 0 and a.hidden_tmp == 0 and a.duplicate_rows == 0, a
        assert a.cells_lost > 0, "the disk did not fill up"
        t0 = time.monotonic()
        if grow:
            grow()
        res, rerun_s = rerun(spec_file, results, "d")
        assert res.exit_code == EXIT_OK, res.output
        b = audit(results, spec, "d")
        assert_complete(b, spec, ok_cells=8)
        assert b.hidden_tmp == 0
    record(
        "results disk full" + (" (160 KiB tmpfs)" if grow else " (8 KiB file-size limit)"),
        f"run stopped with exit 1 after {8 - a.cells_lost}/8 cells; space freed, re-run resumed",
        b,
        time.monotonic() - t0,
        rerun_s=rerun_s,
    )


KC_SPEC = """
name: kc
seeds: [0, 1, 2]
datasets: [{name: gaussian, d: [4, 8]}]
n_train: [4]
n_eval: 20
models: [{name: linear}]
training: [{method: standard, epochs: 1}]
attacks: [{name: fgsm, eps: [0.0, 0.1]}]
"""


def _stage(staging: Path) -> list[str]:
    """6 cells' per-cell files (5 ok, the last failed), as workers write them."""
    from adv_core import run_cell
    from adv_core.results import Status
    from adv_core.run import failure_rows
    from sweeps.plan import plan
    from sweeps.rows import RunInfo
    from sweeps.spec import loads_spec
    from sweeps.store import ResultStore

    cells = plan(loads_spec(KC_SPEC))
    res = run_cell(cells[0])
    store, run = ResultStore(str(staging)), RunInfo("kc", "r", "test")
    for c in cells[:-1]:
        store.write_cell(run, c, res.rows, res.examples)
    store.write_cell(run, cells[-1], failure_rows(cells[-1], Status.FAILED, "boom"), None)
    return [c.cell_hash for c in cells]


def _check_after_kill(target: Path, logged: set[str], cells: list[str]) -> None:
    """No row lost or doubled, no half file visible, the index claims exactly what is there."""
    import polars as pl

    from analysis.load import load_examples
    from sweeps.store import ResultStore
    from tests.fault.harness import _parses, visible_files

    assert all(_parses(p) for p in visible_files(target))
    df = load(str(target)).collect()
    assert df.select(KEY).is_duplicated().sum() == 0
    present = set(df["cell_hash"])
    assert logged <= present <= set(cells), (logged - present, present - set(cells))
    ex = load_examples(str(target)).collect()
    assert ex.select("cell_hash", "member", "attack", "example").is_duplicated().sum() == 0
    ok = set(df.filter(pl.col("status") == "ok")["cell_hash"])
    # every ok cell's examples; an unfinished cell's may be there (written before its metrics)
    assert ok <= set(ex["cell_hash"]) <= ok | (set(cells) - present)
    done, bad = ResultStore(str(target)).cell_status("kc", "r")
    assert set(done) == present and bad == []


def test_background_compaction_sigkilled_at_random_points(tmp_path: Path) -> None:
    """A driver that writes cells and compacts them (a pass every second cell, the end pass) is
    SIGKILLed at seeded random filesystem operations: mid-write, before a rename, before a
    delete. After each kill no row is lost or doubled and nothing half-written is visible;
    the next run's start pass removes the temporaries and leftovers and loses nothing."""
    import random

    from sweeps.compact import PART_ROWS, compact_locked
    from sweeps.store import ResultStore
    from tests.fault.compact_child import forked

    cells = _stage(tmp_path / "staging")
    staging = str(tmp_path / "staging")
    status, total = forked(staging, str(tmp_path / "dry"), 0, str(tmp_path / "dry.log"))
    assert status == 0 and total > 0
    kills = sorted(random.Random(17).sample(range(1, total + 1), 8))
    recovery: list[float] = []
    tmp_seen = 0
    for k in kills:
        target, log = tmp_path / f"k{k}", tmp_path / f"k{k}.log"
        status, _ = forked(staging, str(target), k, str(log))
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, status)
        logged = (
            {line.split()[1] for line in log.read_text().splitlines()} if log.exists() else set()
        )
        _check_after_kill(target, logged, cells)
        tmp_seen += len(list(target.rglob(".tmp-*")))
        t0 = time.monotonic()  # the next run's start pass (and the end pass of a compaction)
        store = ResultStore(str(target))
        compact_locked(store, "kc", "r", merge_parts=PART_ROWS, clean_tmp=True)
        recovery.append(time.monotonic() - t0)
        assert not list(target.rglob(".tmp-*"))
        _check_after_kill(target, logged, cells)
        metrics = store.list_files(store.partition("metrics", "kc", "r"))
        assert sum(Path(f).name.startswith("part-") for f in metrics) <= 1
        assert all(Path(f).name.startswith("part-") or Path(f).stem == cells[-1] for f in metrics)
    assert tmp_seen > 0, "no kill landed in the middle of a write"
    record(
        "background compaction SIGKILLed at random points",
        f"{len(kills)} kills at seeded random file operations (of {total}: writes cut in half, "
        "renames, deletes); after each, every cell whose metrics file was in place had its rows "
        f"once; {tmp_seen} half-written temporaries, removed by the next pass",
        None,
        max(recovery),
        cells=len(cells), cells_lost=0, duplicate_rows=0, partial_visible=0, hidden_tmp=0,
    )  # fmt: skip
