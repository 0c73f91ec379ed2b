"""Faults of an s3:// results root: the S3 endpoint dies in the middle of a write and comes back.

moto keeps its objects in memory, so killing the moto process would also erase the bucket; the
endpoint the store talks to is a TCP proxy in front of it instead, killed mid-request (half of
the request forwarded, every connection reset, the port closed) and restarted on the same port:
to the store, exactly a server killed mid-write and restarted with its data intact.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from store_helpers import RUN, SPEC
from test_store_s3 import s3_port  # noqa: F401 - the moto server fixture

from adv_core import run_cell
from analysis import load
from sweeps import layout
from sweeps.compact import PART_ROWS, compact_locked
from sweeps.plan import plan
from sweeps.spec import loads_spec
from sweeps.store import METRICS, ResultStore
from tests.fault.harness import record

pytestmark = pytest.mark.slow
KEY = ["cell_hash", "member", "attack", "eps"]
ROOT = Path(__file__).resolve().parents[2]


class KillableEndpoint:
    """127.0.0.1:<port> forwarding to moto; ``arm(pred)`` kills it in the middle of the next
    request whose first bytes satisfy ``pred``; ``restart`` listens on the same port again."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.pred: Callable[[bytes], bool] | None = None
        self.killed = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restart()

    def restart(self) -> None:
        self.killed.clear()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def arm(self, pred: Callable[[bytes], bool]) -> None:
        self.pred = pred

    def kill(self) -> None:
        with self._lock:
            self.killed.set()
            self.listener.close()
            for s in self._socks:
                with contextlib.suppress(OSError):  # linger 0: the peer sees a reset
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
            self._socks.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            with self._lock:
                self._socks += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if upstream and self.pred is not None and self.pred(data):
                    self.pred = None
                    dst.sendall(data[: len(data) // 2])  # half the request reaches the server
                    self.kill()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


@pytest.fixture
def endpoint(s3_port: int) -> Iterator[KillableEndpoint]:  # noqa: F811
    ep = KillableEndpoint(s3_port)
    yield ep
    ep.kill()


def uri(port: int, bucket: str) -> str:
    return (
        f"s3://{bucket}/results?endpoint_override=127.0.0.1:{port}&scheme=http"
        "&allow_bucket_creation=true&region=us-east-1"
    )


def _visible_objects_parse(store: ResultStore) -> list[str]:
    """Every visible object under the root parses; returns the temporaries' paths."""
    tmp = []
    for info in layout.list_infos(store.fs, store.base, recursive=True):
        if layout.is_temporary(info.path):
            tmp.append(info.path)
        elif info.path.endswith(".parquet"):
            pq.read_metadata(info.path, filesystem=store.fs)
    return tmp


def is_put(data: bytes) -> bool:
    return data.startswith(b"PUT ") and b"x-amz-copy-source" not in data.lower()


def is_copy(data: bytes) -> bool:  # pyarrow's move on S3 is a copy, then a delete
    return data.startswith(b"PUT ") and b"x-amz-copy-source" in data.lower()


@pytest.mark.parametrize("when", [is_put, is_copy], ids=["mid-upload", "mid-rename"])
def test_s3_endpoint_killed_mid_write_and_restarted(
    endpoint: KillableEndpoint, when: Callable[[bytes], bool]
) -> None:
    """A cell's write, and then a compaction's, cut by the endpoint dying: each raises, nothing
    half-written is visible, resume redoes only what is missing, and after the restart the
    next pass removes the temporaries and every row is there exactly once."""
    cells = plan(loads_spec(SPEC))[:3]
    results = {c.cell_hash: run_cell(c) for c in cells}
    store = ResultStore(uri(endpoint.port, f"faults-{when.__name__.replace('_', '-')}"))

    def write(i: int) -> None:
        r = results[cells[i].cell_hash]
        store.write_cell(RUN, cells[i], r.rows, r.examples)

    write(0)
    endpoint.arm(when)
    with pytest.raises(OSError):
        write(1)
    assert endpoint.killed.is_set()
    endpoint.restart()
    _visible_objects_parse(store)
    assert [c.cell_hash for c in store.pending(RUN, cells)] == [c.cell_hash for c in cells[1:]]
    write(1)
    write(2)
    endpoint.arm(when)  # now the compaction's part dies mid-write
    with pytest.raises(OSError):
        compact_locked(store, RUN.sweep, RUN.run_id, merge_parts=PART_ROWS, clean_tmp=True)
    endpoint.restart()
    t0 = time.monotonic()
    left = len(_visible_objects_parse(store))
    assert store.pending(RUN, cells) == []
    compact_locked(store, RUN.sweep, RUN.run_id, merge_parts=PART_ROWS, clean_tmp=True)
    recovery_s = time.monotonic() - t0
    assert _visible_objects_parse(store) == []
    names = [
        Path(f).name for f in store.list_files(store.partition(METRICS, RUN.sweep, RUN.run_id))
    ]
    assert len(names) == 1 and names[0].startswith("part-")
    df = load(store.root, storage_options=_opts(endpoint.port)).collect()
    assert df.select(KEY).is_duplicated().sum() == 0
    assert set(df["cell_hash"]) == {c.cell_hash for c in cells}
    where = "the upload of a temporary" if when is is_put else "the rename (server-side copy)"
    record(
        f"S3 endpoint killed mid-write ({'upload' if when is is_put else 'rename'})",
        f"killed during {where} of a cell and then of a compaction part, restarted: each write "
        f"raised, resume redid only the cut cell; {left} orphan temporaries after the restart, "
        "removed by the next pass",
        None,
        recovery_s,
        cells=len(cells), cells_lost=0, duplicate_rows=0, partial_visible=0, hidden_tmp=0,
    )  # fmt: skip


def _opts(port: int) -> dict[str, str]:
    return {
        "aws_access_key_id": "test", "aws_secret_access_key": "test", "aws_region": "us-east-1",
        "aws_endpoint_url": f"http://127.0.0.1:{port}", "aws_allow_http": "true",
    }  # fmt: skip


def test_sweeps_run_stops_cleanly_when_the_s3_endpoint_dies(
    endpoint: KillableEndpoint, tmp_path: Path
) -> None:
    """`sweeps run` on an s3:// root whose endpoint dies mid-upload (and stays down) ends with
    exit 1 and one line naming the root (without its query) and the cause, not a traceback;
    after the endpoint comes back, running again resumes: the cells finished before are not run
    again and every cell's rows are there exactly once."""
    from typer.testing import CliRunner

    from sweeps.cli import app
    from sweeps.exit_codes import EXIT_OK, EXIT_STORAGE

    spec_file = tmp_path / "s3run.yaml"
    spec_file.write_text(SPEC)
    cells = plan(loads_spec(spec_file.read_text()))
    assert len(cells) == 4
    root = uri(endpoint.port, "faults-run")
    args = ["run", str(spec_file), "--results", root, "--run-id", "s3r", "--workers", "0"]
    metrics_puts = []

    def second_metrics_put(data: bytes) -> bool:  # one cell is done, the next is mid-upload
        line = data.split(b"\r\n", 1)[0]
        if is_put(data) and b"/metrics/" in line and b".parquet" in line:
            metrics_puts.append(line)
        return len(metrics_puts) == 2

    endpoint.arm(second_metrics_put)
    # a process of its own, as a user runs it (its run lock dies with it)
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps", *args, "--quiet"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert endpoint.killed.is_set()
    output = proc.stdout + proc.stderr
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert proc.returncode == EXIT_STORAGE, output
    assert "Traceback" not in output and len(lines) == 1, output
    assert lines[0].startswith("error --results: cannot write to s3://faults-run/results: ")
    assert "endpoint_override" not in lines[0]
    assert lines[0].endswith("finished cells are kept, fix the storage and run again to resume")
    endpoint.restart()
    t0 = time.monotonic()
    res = CliRunner().invoke(app, args)
    recovery_s = time.monotonic() - t0
    assert res.exit_code == EXIT_OK, res.output
    done_before = re.search(r"(\d+)\s+already\s+done", res.output)
    assert done_before is not None, res.output
    skipped = int(done_before.group(1))
    assert 1 <= skipped < 4, res.output  # the cells finished before the fault were kept
    df = load(ResultStore(root).root, storage_options=_opts(endpoint.port)).collect()
    assert df.select(KEY).is_duplicated().sum() == 0
    assert set(df["cell_hash"]) == {c.cell_hash for c in cells}
    record(
        "S3 endpoint dies during `sweeps run`",
        f"`sweeps run --workers 0` on s3:// through the proxy, killed mid-upload of the second "
        f"cell's metrics and left down: exit {EXIT_STORAGE} with one line naming the root and "
        f"the cause; endpoint restarted, the re-run kept {skipped} finished cells and ran the rest",
        None,
        recovery_s,
        cells=len(cells), cells_lost=0, duplicate_rows=0, partial_visible=0, hidden_tmp=0,
    )  # fmt: skip
