"""``python tests/fault/slow_driver.py PAUSE_S <sweeps arguments>``: the ``sweeps`` CLI with a
slow results disk. Each metrics file is written to its temporary name, then the driver pauses
``PAUSE_S`` seconds before renaming it into place, so a test can kill the driver exactly while
a write is in progress. ``SWEEPS_SLOW_PATH`` (default ``/metrics/``) picks which files are slow:
``/models/`` pauses checkpoint renames instead. Nothing else changes."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from sweeps.store import ResultStore

PAUSE_S = float(sys.argv.pop(1))
SLOW_PATH = os.environ.get("SWEEPS_SLOW_PATH", "/metrics/")
_write_bytes = ResultStore.write_bytes


class _SlowRename:
    """Delegates to the real filesystem; ``move`` (the rename) waits first."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def move(self, src: str, dest: str) -> None:
        time.sleep(PAUSE_S)
        self._fs.move(src, dest)


def slow_write_bytes(self: ResultStore, path: str, data: bytes) -> None:
    if SLOW_PATH not in path:
        _write_bytes(self, path, data)
        return
    real = self.fs
    self.fs = _SlowRename(real)  # the inline driver is single-threaded
    try:
        _write_bytes(self, path, data)
    finally:
        self.fs = real


ResultStore.write_bytes = slow_write_bytes  # type: ignore[method-assign]

if __name__ == "__main__":
    from sweeps.cli import main

    main()
