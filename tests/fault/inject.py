"""Fault injection for the test suites, installed in every worker through the worker's plug-in
seam (``cluster.worker.HOOK_ENV``); production code never loads this file.

A fault spec joins faults with ``;``; an empty hash prefix matches every cell:

- ``raise:<hash-prefix>`` fails that cell on every attempt (an exception inside the cell);
- ``exit:<hash-prefix>:<marker-file>`` kills the worker process once, mid-cell (the marker
  file remembers that it happened, so the retry succeeds);
- ``exitnth:<n>:<marker-file>`` kills the worker process once, at the start of the ``n``-th
  cell that process runs (the first worker to get there creates the marker; no other exits);
- ``hangnth:<n>:<marker-file>`` likewise makes that one cell sleep for an hour instead;
- ``sleep:<hash-prefix>:<seconds>`` makes the cell take that much longer;
- ``gate:<n>:<folder>`` lets the first ``n`` cells started (over all workers) through; each
  later one waits, mid-cell, until ``<folder>/open`` exists (``open_gate``). Cell k takes the
  slot file ``<folder>/slot-<k>``, so a test can wait for "k cells are running" (``started``);
- ``init`` makes the worker fail while starting.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

HOOK_FILE = Path(__file__).resolve()
GATE_POLL_S = 0.02
GATE_MAX_S = 600.0  # a gate nobody opens lets its cells go after this (no worker hangs forever)
HOOK_ENV = "SWEEPS_WORKER_HOOK"  # cluster.worker.HOOK_ENV (not imported: this file loads alone)


def hook(spec: str) -> str:
    """The worker plug-in value that injects ``spec`` (for ``CellRunner(hook=...)``,
    ``RayBackend(hook=...)`` or the ``SWEEPS_WORKER_HOOK`` environment variable)."""
    return f"{HOOK_FILE}:{spec}"


def env(spec: str) -> dict[str, str]:
    """Environment entries that inject ``spec`` into the workers of a child process."""
    return {HOOK_ENV: hook(spec)}


def started(folder: Path) -> int:
    """How many cells have entered a ``gate`` (running or waiting at it)."""
    return len(list(folder.glob("slot-*")))


def open_gate(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open").touch()


def _pass_gate(n: int, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    k = 0
    while True:  # take the next free slot atomically (O_EXCL), whichever worker asks
        try:
            os.close(os.open(folder / f"slot-{k}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            k += 1
    deadline = time.monotonic() + GATE_MAX_S
    while k >= n and not (folder / "open").exists() and time.monotonic() < deadline:
        time.sleep(GATE_POLL_S)


def _claim(marker: str) -> bool:
    """Create ``marker`` (holding this pid) unless it exists: true for one caller only."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


class Faults:
    """The plug-in: parses the spec once; ``before_cell`` runs before every cell."""

    def __init__(self, spec: str) -> None:
        self.parts = [p.split(":", 2) + ["", ""] for p in filter(None, spec.split(";"))]
        self.cells = 0  # cells this process has begun
        if any(kind == "init" for kind, *_ in self.parts):
            raise RuntimeError("injected failure while starting the worker")

    def before_cell(self, cell: Any) -> None:
        self.cells += 1
        for kind, prefix, arg, *_ in self.parts:
            if kind in ("exitnth", "hangnth"):
                if self.cells == int(prefix) and _claim(arg):
                    if kind == "exitnth":
                        os._exit(17)
                    time.sleep(3600)  # the injected fault itself: a cell that hangs
                continue
            if kind != "gate" and not cell.cell_hash.startswith(prefix):
                continue
            if kind == "raise":
                raise RuntimeError(f"injected failure for cell {cell.cell_hash}")
            if kind == "exit" and arg and not os.path.exists(arg):
                with open(arg, "w") as f:
                    f.write(str(os.getpid()))
                os._exit(17)
            if kind == "sleep":
                time.sleep(float(arg or 3600))
            if kind == "gate":
                _pass_gate(int(prefix), Path(arg))


def make_hook(spec: str) -> Faults:
    return Faults(spec)
