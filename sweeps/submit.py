"""Submitting a sweep to a running Ray cluster as a Ray job (the Jobs API on the dashboard
port, e.g. ``http://HEAD:8265``), and following its output.

The job's runtime environment carries everything it needs: the project's packages as
``py_modules`` (so the cluster runs exactly this code) and a small working directory holding
the spec as ``spec.yaml``. The job's entrypoint is ``python -m sweeps run spec.yaml ...`` on the
head node, which joins the cluster (Ray sets RAY_ADDRESS for jobs) and schedules the actors.

With Ray's token authentication the token (``--token``, RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
~/.ray/auth_token) is sent as an ``Authorization: Bearer`` header on every request.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.connect import resolve_token

PACKAGES = ("adv_core", "cluster", "sweeps", "analysis")
EXCLUDES = [".venv", "results", ".git", "__pycache__", "*.pyc", ".cache", ".pytest_cache"]
SPEC_NAME = "spec.yaml"
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@dataclass(frozen=True)
class JobRequest:
    """What to run: a spec file and the ``sweeps run`` options it runs with."""

    spec: Path
    results: str
    run_id: str | None = None
    workers: int | None = None
    python: str = "python"

    def results_for_cluster(self) -> str:
        """A URI as given; a local folder made absolute (the job runs in another directory)."""
        return self.results if "://" in self.results else str(Path(self.results).resolve())

    def entrypoint(self) -> str:
        args = [self.python, "-m", "sweeps", "run", SPEC_NAME, "--results"]
        args.append(self.results_for_cluster())
        if self.run_id:
            args += ["--run-id", self.run_id]
        if self.workers is not None:
            args += ["--workers", str(self.workers)]
        return " ".join(shlex.quote(a) for a in args)


def package_dirs() -> list[str]:
    """Folders of the project's packages, wherever they are installed."""
    dirs = []
    for name in PACKAGES:
        mod = importlib.import_module(name)
        dirs.append(str(Path(mod.__file__ or "").resolve().parent))
    return dirs


def runtime_env(stage: Path) -> dict[str, Any]:
    return {"working_dir": str(stage), "py_modules": package_dirs(), "excludes": EXCLUDES}


def auth_headers(token: str | None) -> dict[str, str]:
    tok = resolve_token(token)
    return {"Authorization": f"Bearer {tok}"} if tok else {}


def jobs_address(address: str | None) -> str | None:
    """``--address``, else RAY_ADDRESS when it is a dashboard (http) address."""
    addr = address or os.environ.get("RAY_ADDRESS") or ""
    return addr if addr.startswith(("http://", "https://")) else None


def client(address: str, token: str | None = None) -> Any:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address, headers=auth_headers(token))


def submit(req: JobRequest, address: str, token: str | None = None) -> str:
    """Submit the sweep as a Ray job; returns the job id."""
    jobs = client(address, token)
    stage = Path(tempfile.mkdtemp(prefix="sweeps-job-"))
    try:
        shutil.copyfile(req.spec, stage / SPEC_NAME)
        job_id: str = jobs.submit_job(
            entrypoint=req.entrypoint(),
            runtime_env=runtime_env(stage),
            metadata={"sweeps_spec": req.spec.name},
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # uploaded by submit_job
    return job_id


def follow(jobs: Any, job_id: str, write: Callable[[str], Any]) -> int:
    """Stream the job's output until it ends; returns its exit code (see ``exit_code``)."""

    async def tail() -> None:
        async for chunk in jobs.tail_job_logs(job_id):
            write(chunk)

    asyncio.run(tail())
    return wait(jobs, job_id, timeout_s=60.0)


def wait(jobs: Any, job_id: str, timeout_s: float, poll_s: float = 0.5) -> int:
    """Block until the job ends (or ``timeout_s``); returns its exit code."""
    deadline = time.monotonic() + timeout_s
    while _status(jobs.get_job_status(job_id)) not in TERMINAL and time.monotonic() < deadline:
        time.sleep(poll_s)
    return exit_code(jobs.get_job_info(job_id))


def exit_code(info: Any) -> int:
    """The driver's exit code (0 ok, 1 failed cells, 2 invalid input); 1 for a job that
    ended without one; 124 for a job still running."""
    status = _status(info.status)
    if status not in TERMINAL:
        return 124
    code = getattr(info, "driver_exit_code", None)
    if code is not None:
        return int(code)
    return 0 if status == "SUCCEEDED" else 1


def _status(status: Any) -> str:
    return str(getattr(status, "value", status))
