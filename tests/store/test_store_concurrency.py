"""Two real `sweeps run` processes on one run: every cell runs once, no row is duplicated.
Plus the lease lock's own rules (exclusive, stale leases taken over)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from store_helpers import SPEC

from analysis import load
from sweeps.lock import LeaseLock, LockHeld
from sweeps.store import METRICS, ResultStore
from tests.fault import inject
from tests.waiting import wait_until

KEY = ["cell_hash", "member", "attack", "eps"]


@pytest.mark.slow
def test_two_processes_on_one_run_never_duplicate(tmp_path: Path) -> None:
    """The test holds the run's lock until both processes are waiting for it, so they surely
    overlap; then one runs both cells while the other waits, and finds nothing left to do."""
    spec = tmp_path / "st.yaml"
    spec.write_text(SPEC.replace("n_train: [8, 16]", "n_train: [8]"))  # 2 cells
    res = str(tmp_path / "res")
    gate = ResultStore(res).run_lock("st", "same")
    gate.acquire(wait=False)
    env = {**os.environ, **inject.env("sleep::1.5")}  # each cell takes >= 1.5 s
    cmd = [sys.executable, "-m", "sweeps", "run", str(spec), "--results", res]
    cmd += ["--run-id", "same", "--workers", "0", "--quiet"]
    errs = [tmp_path / f"{i}.err" for i in range(2)]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=e.open("w"), text=True)
        for e in errs
    ]
    deadline = time.monotonic() + 90
    while not all("waiting for" in e.read_text() for e in errs):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.2)
    gate.release()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    found = [re.search(r"(\d+) run now", o) for o in outs]
    run_now = sorted(int(m.group(1)) for m in found if m)
    assert run_now == [0, 2]  # the loser waited for the winner, then found all done
    store = ResultStore(res)
    assert len(store.list_files(store.partition(METRICS, "st", "same"))) == 2
    df = load(res).collect()
    assert df.height == 2 * 6 and df.select(KEY).is_duplicated().sum() == 0
    manifest = store.read_manifest("same")
    assert manifest is not None and manifest["invocations"] == 2
    assert not list(Path(res, "locks").rglob("*.lock"))  # both released the lock


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    fs = pafs.LocalFileSystem()
    path = str(tmp_path / "locks" / "x.lock")
    a, b = LeaseLock(fs, path), LeaseLock(fs, path)
    a.acquire(wait=False)
    assert not b.try_acquire()
    with pytest.raises(LockHeld):
        b.acquire(wait=True, timeout_s=0.3, poll_s=0.1)
    a.release()
    assert not Path(path).exists()
    with b:
        assert json.loads(Path(path).read_text())["token"] == b.token
    assert not Path(path).exists()


@pytest.mark.parametrize(
    "lease",
    [
        {"token": "dead", "host": os.uname().nodename, "pid": 2**22 + 7, "expires": 4e9},
        {"token": "old", "host": "elsewhere", "pid": 1, "expires": 1.0},
        "{torn",
    ],
    ids=["dead-pid-on-this-host", "expired-lease", "torn-file"],
)
def test_stale_leases_are_taken_over(tmp_path: Path, lease: object) -> None:
    path = tmp_path / "locks" / "x.lock"
    path.parent.mkdir(parents=True)
    path.write_text(lease if isinstance(lease, str) else json.dumps(lease))
    lock = LeaseLock(pafs.LocalFileSystem(), str(path))
    assert lock.try_acquire()
    assert json.loads(path.read_text())["token"] == lock.token
    lock.release()


def test_live_lease_elsewhere_is_respected(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "x.lock"
    path.parent.mkdir(parents=True)
    live = {"token": "t", "host": "elsewhere", "pid": 1, "expires": time.time() + 60}
    path.write_text(json.dumps(live))
    assert not LeaseLock(pafs.LocalFileSystem(), str(path)).try_acquire()
    assert json.loads(path.read_text())["token"] == "t"


def test_held_lease_is_renewed(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "x.lock"
    lock = LeaseLock(pafs.LocalFileSystem(), str(path), ttl_s=0.6)
    lock.acquire(wait=False)
    first = json.loads(path.read_text())["expires"]
    try:  # the holder renews well before its 0.6 s lease runs out; others still see it held
        wait_until(lambda: json.loads(path.read_text())["expires"] > first, 30, "a renewal")
        wait_until(lambda: time.time() > first, 30, "the first lease's expiry")
        assert not LeaseLock(pafs.LocalFileSystem(), str(path)).try_acquire()
    finally:
        lock.release()
