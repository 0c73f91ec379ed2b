"""``sweeps schedule``: run the nightly in the foreground on a cron schedule.

- Cron expressions are parsed by croniter and evaluated in UTC; the nightly's date is the
  scheduled fire time's UTC date.
- No overlap: each firing takes the schedule lock ``ROOT/locks/schedule/sweep=<name>.lock``
  (sweeps/lock.py; works on local and object-store roots) without waiting. If another scheduler
  or a manual nightly of the same sweep holds it, this firing is skipped and logged. The nightly
  also takes its run's lock, so it never overlaps a ``sweeps run`` of the same run id.
- Missed runs: fire times that pass while a nightly is still running (or while the machine is
  suspended) are coalesced into ONE run, started at once, for the most recent missed fire time;
  the older ones are counted as ``missed`` and not run. Fire times before the scheduler started
  are not caught up: the first run is the next fire time after start. (This is systemd's
  ``Persistent=true`` and Kubernetes' ``concurrencyPolicy: Forbid`` behaviour.)
- A nightly that raises is logged and recorded with exit code 1; the scheduler keeps going.

The clock is injectable and ``max_runs`` bounds the loop, so tests drive it without waiting.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from croniter import croniter

from sweeps.lock import LeaseLock

MAX_SLEEP_S = 60.0  # re-read the clock at least this often (suspend, clock changes)


class Clock(Protocol):
    def now(self) -> dt.datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class Firing:
    scheduled: dt.datetime
    started: dt.datetime
    exit_code: int | None
    missed: int = 0
    skipped: str | None = None


def next_fire(cron: str, after: dt.datetime) -> dt.datetime:
    """The first fire time strictly after ``after``."""
    nxt: dt.datetime = croniter(cron, after).get_next(dt.datetime)
    return nxt


def coalesce(cron: str, due: dt.datetime, now: dt.datetime) -> tuple[dt.datetime, int]:
    """The latest fire time <= now, starting from the due one, and how many were skipped."""
    latest, missed = due, 0
    while (cand := next_fire(cron, latest)) <= now:
        latest, missed = cand, missed + 1
    return latest, missed


def validate_cron(cron: str) -> str | None:
    return None if croniter.is_valid(cron) else f"not a valid cron expression: {cron!r}"


def run_schedule(
    job: Callable[[dt.datetime], int],
    cron: str,
    *,
    lock: LeaseLock,
    clock: Clock | None = None,
    max_runs: int | None = None,
    log: Callable[[str], None] = print,
) -> list[Firing]:
    """Call ``job(fire_time)`` at each fire time of ``cron`` until ``max_runs`` firings."""
    clock = clock or SystemClock()
    due = next_fire(cron, clock.now())
    log(f"schedule {cron!r} (UTC): next run at {due.isoformat()}")
    firings: list[Firing] = []
    while max_runs is None or len(firings) < max_runs:
        now = clock.now()
        if now < due:
            clock.sleep(min(MAX_SLEEP_S, (due - now).total_seconds()))
            continue
        fire, missed = coalesce(cron, due, now)
        if missed:
            log(f"{missed} fire time(s) missed; running once for {fire.isoformat()}")
        firings.append(_fire(job, fire, missed, lock, clock, log))
        due = next_fire(cron, fire)
        log(f"next run at {due.isoformat()}")
    return firings


def _fire(
    job: Callable[[dt.datetime], int],
    fire: dt.datetime,
    missed: int,
    lock: LeaseLock,
    clock: Clock,
    log: Callable[[str], None],
) -> Firing:
    started = clock.now()
    if not lock.try_acquire():
        log(f"skipping {fire.isoformat()}: {lock.path} is held by {lock.holder()}")
        return Firing(fire, started, None, missed, skipped=f"locked by {lock.holder()}")
    try:
        code = job(fire)
    except Exception as exc:  # a failed night must not stop the schedule
        log(f"nightly for {fire.isoformat()} raised {type(exc).__name__}: {exc}")
        code = 1
    finally:
        lock.release()
    log(f"nightly for {fire.isoformat()} exited {code}")
    return Firing(fire, started, code, missed)


def overall_exit(firings: list[Firing]) -> int:
    """3 if any night regressed, else 1 if any failed, else 0."""
    codes = [f.exit_code for f in firings if f.exit_code is not None]
    return 3 if 3 in codes else (1 if any(codes) else 0)
