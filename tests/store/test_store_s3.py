"""An s3:// results root against a real S3-compatible server (moto's server mode) on
127.0.0.1: run, resume, lock, compact, and read back with polars exactly as from a folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from store_helpers import SPEC

from analysis import load
from analysis.load import load_examples
from sweeps.compact import compact
from sweeps.plan import plan
from sweeps.rows import RunInfo
from sweeps.runner import run_sweep
from sweeps.spec import loads_spec
from sweeps.store import METRICS, ResultStore

CREDS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
PROVENANCE = ["created_at", "wall_s", "node"]
KEY = ["cell_hash", "member", "attack", "eps"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_port() -> Iterator[int]:
    port = _free_port()
    saved = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "moto did not start"
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def storage_options(port: int) -> dict[str, str]:
    return {
        "aws_access_key_id": "test", "aws_secret_access_key": "test", "aws_region": "us-east-1",
        "aws_endpoint_url": f"http://127.0.0.1:{port}", "aws_allow_http": "true",
    }  # fmt: skip


@pytest.mark.slow
def test_s3_root_behaves_like_a_folder(s3_port: int, tmp_path: Path) -> None:
    uri = (
        f"s3://sweeps-test/results?endpoint_override=127.0.0.1:{s3_port}&scheme=http"
        "&allow_bucket_creation=true&region=us-east-1"
    )
    spec = loads_spec(SPEC.replace("n_train: [8, 16]", "n_train: [8]"))  # 2 cells
    local = str(tmp_path / "res")
    for root in (local, uri):
        assert run_sweep(spec, root, "20240101", inline=True).exit_code == 0
    again = run_sweep(spec, uri, "20240101", inline=True)  # resume: nothing left to do
    assert again.skipped == 2 and again.summary.total == 0
    opts = storage_options(s3_port)
    want = load(local).collect().drop(PROVENANCE).sort(KEY)
    got = load(uri, storage_options=opts).collect().drop(PROVENANCE).sort(KEY)
    assert_frame_equal(want, got)
    assert got.schema["run"] == pl.String and got.height == 2 * 6

    store = ResultStore(uri)
    lock = store.run_lock("st", "20240101", settle_s=0.2)
    assert lock.try_acquire()
    assert not store.run_lock("st", "20240101", settle_s=0.2).try_acquire()
    assert compact(uri)[0].skipped  # compaction keeps off a locked run
    lock.release()

    ex_before = load_examples(uri, storage_options=opts).collect()
    [res] = compact(uri)
    assert res.skipped is None and [t.files_after for t in res.tables] == [1, 1]
    assert len(store.list_files(store.partition(METRICS, "st", "20240101"))) == 1
    after = load(uri, storage_options=opts).collect().drop(PROVENANCE).sort(KEY)
    assert_frame_equal(want, after)
    ex_key = ["cell_hash", "member", "attack", "example"]
    assert_frame_equal(
        ex_before.sort(ex_key), load_examples(uri, storage_options=opts).collect().sort(ex_key)
    )
    assert store.pending(RunInfo("st", "20240101", "test"), plan(spec)) == []
    done, bad = store.cell_status("st", "20240101")
    assert set(done.values()) == {"ok"} and len(done) == 2 and bad == []
