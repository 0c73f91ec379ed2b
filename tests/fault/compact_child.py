"""A driver with background compaction, as a process the fault test can SIGKILL at an exact
filesystem operation (tests/fault/test_storage_faults.py).

    python compact_child.py STAGING TARGET KILL_AT LOG    (or ``forked(...)`` from a test)

Copies the staged per-cell files of each cell into TARGET the way a worker writes them
(examples, then metrics: the done-marker), runs a compaction pass every second cell and the end
pass (small parts merged, temporaries deleted), appending ``done <cell>`` to LOG once a cell's
metrics file is in place. Every mutating operation on TARGET (a file written, renamed or
deleted) is counted; at operation KILL_AT the process SIGKILLs itself: in the middle of a write
(half the bytes written), or just before a rename or delete. KILL_AT = 0 never kills and prints
the number of operations.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from sweeps.compact import PART_ROWS, compact_locked
from sweeps.layout import EXAMPLES, METRICS
from sweeps.store import ResultStore


class _HalfThenDie:
    def __init__(self, inner: Any) -> None:
        self.inner, self.closed = inner, False

    def write(self, data: bytes) -> int:
        self.inner.write(bytes(data)[: max(1, len(data) // 2)])
        self.inner.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        return 0

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


class KillingFS(pafs.FileSystemHandler):
    """LocalFileSystem that dies at its ``kill_at``-th mutating operation."""

    def __init__(self, kill_at: int) -> None:
        self.fs, self.kill_at, self.ops = pafs.LocalFileSystem(), kill_at, 0

    def _op(self) -> bool:
        self.ops += 1
        return self.ops == self.kill_at

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        stream = self.fs.open_output_stream(path)
        if self._op():
            return pa.PythonFile(_HalfThenDie(stream), mode="w")
        return stream

    def move(self, src: str, dest: str) -> None:
        if self._op():
            os.kill(os.getpid(), signal.SIGKILL)
        self.fs.move(src, dest)

    def delete_file(self, path: str) -> None:
        if self._op():
            os.kill(os.getpid(), signal.SIGKILL)
        self.fs.delete_file(path)

    # -- plain delegation ---------------------------------------------------------------------
    def get_type_name(self) -> str:
        return "killing-local"

    def equals(self, other: Any) -> bool:
        return self is other

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> Any:
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector: Any) -> Any:
        return self.fs.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refused")

    def copy_file(self, src: str, dest: str) -> None:
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path: str) -> Any:
        return self.fs.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        return self.fs.open_input_file(path)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self.fs.open_append_stream(path)


def main(staging: str, target: str, kill_at: int, log: str) -> int:
    handler = KillingFS(kill_at)
    store = ResultStore(os.path.abspath(target), filesystem=pafs.PyFileSystem(handler))
    src = Path(staging) / METRICS / "sweep=kc" / "run=r"
    cells = sorted(p.stem for p in src.glob("*.parquet"))
    with open(log, "a") as out:
        for i, h in enumerate(cells, 1):
            for table in (EXAMPLES, METRICS):  # a failed cell has no examples file
                staged = Path(staging) / table / "sweep=kc" / "run=r" / f"{h}.parquet"
                if staged.exists():
                    store.write_bytes(store.cell_file(table, "kc", "r", h), staged.read_bytes())
            out.write(f"done {h}\n")
            out.flush()
            os.fsync(out.fileno())
            if i % 2 == 0:
                compact_locked(store, "kc", "r", min_cells=1)
        compact_locked(store, "kc", "r", merge_parts=PART_ROWS, clean_tmp=True)
    return handler.ops


def forked(staging: str, target: str, kill_at: int, log: str) -> tuple[int, int]:
    """Run ``main`` in a forked child (no interpreter start-up): (wait status, operations)."""
    ops_file = f"{log}.ops"
    pid = os.fork()
    if pid == 0:  # the child: never returns into the test
        code = 1
        try:
            Path(ops_file).write_text(str(main(staging, target, kill_at, log)))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    ops = int(Path(ops_file).read_text()) if Path(ops_file).exists() else -1
    return status, ops


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
