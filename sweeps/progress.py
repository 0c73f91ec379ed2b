"""A rich progress bar for the driver: cells done / failed / total, throughput, ETA."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cluster.scheduler import CellState, Summary


class SweepProgress:
    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
            disable=not enabled,
        )  # fmt: skip
        self.task: TaskID | None = None
        self.t0 = time.monotonic()

    def __enter__(self) -> SweepProgress:
        self.progress.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.__exit__(et, ev, tb)

    def start(self, planned: int, done: int) -> None:
        self.task = self.progress.add_task("cells", total=planned - done, failed=0, rate="")
        if done:
            self.progress.console.print(
                f"{done} of {planned} cells already done; resuming with {planned - done}"
            )

    def update(self, s: Summary) -> None:
        if self.task is None:
            return
        finished = s.count(CellState.DONE) + s.count(CellState.DIVERGED) + s.failed
        elapsed = max(1e-9, time.monotonic() - self.t0)
        self.progress.update(
            self.task,
            completed=finished,
            failed=s.failed,
            rate=f"{finished / elapsed * 60:.1f} cells/min",
        )
