"""The cron scheduler driven by a fake clock: fire times, the missed-run policy, the lock that
keeps runs from overlapping, and a failing night that does not stop the schedule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from sweeps.lock import LeaseLock
from sweeps.schedule import overall_exit, run_schedule

UTC = dt.UTC


class FakeClock:
    def __init__(self, start: dt.datetime) -> None:
        self.t = start
        self.slept = 0.0

    def now(self) -> dt.datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= 60
        self.slept += seconds
        self.t += dt.timedelta(seconds=seconds)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def lock(tmp_path: Path) -> LeaseLock:
    return LeaseLock(pafs.LocalFileSystem(), str(tmp_path / "locks" / "schedule.lock"))


def test_fires_at_each_cron_time(lock: LeaseLock) -> None:
    clock = FakeClock(at(20, 1, 30))
    seen: list[dt.datetime] = []

    def job(fire: dt.datetime) -> int:
        seen.append(fire)
        assert clock.now() == fire
        return 0

    firings = run_schedule(job, "0 2 * * *", lock=lock, clock=clock, max_runs=3, log=lambda m: None)
    assert seen == [at(20, 2), at(21, 2), at(22, 2)]
    assert [f.missed for f in firings] == [0, 0, 0] and overall_exit(firings) == 0


def test_missed_fire_times_are_coalesced_into_one_run(lock: LeaseLock) -> None:
    clock = FakeClock(at(20, 1, 59))
    seen: list[dt.datetime] = []

    def job(fire: dt.datetime) -> int:
        seen.append(fire)
        if len(seen) == 1:
            clock.t += dt.timedelta(hours=50)  # the first night runs until the 22nd, 04:00
        return 0

    firings = run_schedule(job, "0 2 * * *", lock=lock, clock=clock, max_runs=3, log=lambda m: None)
    # the 21st is skipped; the 22nd runs at once (04:00), then the schedule resumes
    assert seen == [at(20, 2), at(22, 2), at(23, 2)]
    assert [f.missed for f in firings] == [0, 1, 0]
    assert firings[1].started == at(22, 4)


def test_a_held_lock_skips_the_night_and_a_failure_does_not_stop(
    lock: LeaseLock, tmp_path: Path
) -> None:
    clock = FakeClock(at(20, 1))
    other = LeaseLock(pafs.LocalFileSystem(), lock.path)
    other.acquire(wait=False)  # another scheduler (or a manual nightly) is running
    calls: list[dt.datetime] = []

    def job(fire: dt.datetime) -> int:
        calls.append(fire)
        if len(calls) == 1:
            raise RuntimeError("results root unreachable")
        return 3

    first = run_schedule(job, "0 2 * * *", lock=lock, clock=clock, max_runs=1, log=lambda m: None)
    assert calls == [] and first[0].skipped and first[0].exit_code is None
    other.release()
    rest = run_schedule(job, "0 2 * * *", lock=lock, clock=clock, max_runs=2, log=lambda m: None)
    assert [f.exit_code for f in rest] == [1, 3] and overall_exit(rest) == 3
    assert not Path(lock.path).exists()  # released after every night
