"""Shared pieces of the benchmarks: sizes, timing, results, the printed table and JSON output.

Timing: the two sides of a comparison run interleaved in one process (A, B, A, B, ...), and
each side's best (minimum) time is used, which is the fairest estimate on a shared, noisy
machine; every sample is kept in the JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Scale:
    """Problem sizes: ``full`` for ``make bench``, ``quick`` for the smoke test."""

    name: str
    batch: int  # attack batch (item 1-3)
    steps: int  # PGD steps
    repeats: int  # timed repetitions per side
    n_eps: int  # eps values of the robust-accuracy curve (item 3)
    n_members: int  # ensemble size (item 4)
    train_n: int  # training examples (item 4)
    train_epochs: int
    n_cells: int  # sweep-engine cells (item 5)
    workers: int
    metric_rows: int  # analysis rows (item 6)
    metric_files: int
    demo_spec: str  # "demo" or "tiny" (item 7)
    scale_cells: int = 100_000  # cells of the large sweep (item 8)
    engine_cells_large: int = 5000  # the engine's second size (item 5); 0: skip it


FULL = Scale("full", 1000, 20, 3, 8, 16, 1024, 5, 200, 2, 1_000_000, 100, "demo")
QUICK = Scale("quick", 64, 2, 1, 3, 2, 64, 1, 4, 2, 20_000, 4, "tiny", 40, 0)


@dataclass
class Measurement:
    """One line of the table. ``ratio`` is ours / reference (lower is better) unless
    ``higher_is_better``; ``goal`` is the bound the issue sets on ``ratio``."""

    item: str
    metric: str
    ratio: float
    goal: float
    higher_is_better: bool = False
    ours_s: float | None = None
    reference_s: float | None = None
    reference: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleaved(
    sides: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run each side ``warmup`` times untimed, then ``repeats`` timed rounds, alternating sides.

    Returns (samples per side, last result per side)."""
    last: dict[str, Any] = {}
    for _ in range(warmup):
        for name, fn in sides.items():
            last[name] = fn()
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            t, last[name] = timed(fn)
            samples[name].append(t)
    return samples, last


def best(samples: Sequence[float]) -> float:
    return min(samples)


def machine() -> dict[str, Any]:
    import torch

    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"


def table(rows: Sequence[Measurement]) -> str:
    """The printed table: one line per measurement."""
    head = ("item", "metric", "ours", "reference", "ratio", "goal", "met")
    lines = [
        (
            m.item,
            m.metric,
            _fmt_s(m.ours_s),
            f"{_fmt_s(m.reference_s)} {m.reference}".strip(),
            f"{m.ratio:.3f}",
            f"{'>=' if m.higher_is_better else '<='} {m.goal:g}",
            "yes" if m.met else "NO",
        )
        for m in rows
    ]
    widths = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*head), sep, *(fmt.format(*r) for r in lines)])


def save(
    rows: Sequence[Measurement],
    scale: Scale,
    out_dir: Path,
    wall_s: float,
    errors: dict[str, str],
    latest: bool,
) -> Path:
    """Write ``<timestamp>.json`` (and ``latest.json`` when asked) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    doc = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "scale": asdict(scale),
        "machine": machine(),
        "wall_s": wall_s,
        "errors": errors,
        "measurements": [m.to_json() for m in rows],
    }
    text = json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
    path = out_dir / f"{stamp}.json"
    path.write_text(text)
    if latest:
        (out_dir / "latest.json").write_text(text)
    return path
