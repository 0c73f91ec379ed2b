"""Before a sweep is submitted: can the cluster's Python import the project's dependencies?

A tiny Ray job (no upload) runs ``python -c PROBE`` on the head with the same interpreter the
sweep's job would use; the probe looks each module up with ``importlib.util.find_spec`` (nothing
is imported) and prints one JSON line. ``check`` turns the answer into one sentence that says
what is missing and how to fix it, or None when everything is there.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from typing import Any

# The import names of pyproject's runtime dependencies (tests/cluster/test_submit_preflight.py keeps
# this list and pyproject.toml in step).
DEPENDENCIES = {
    "ray": "ray[default]", "torch": "torch", "torchvision": "torchvision", "pyarrow": "pyarrow",
    "polars": "polars", "pydantic": "pydantic", "typer": "typer", "rich": "rich",
    "yaml": "pyyaml", "sklearn": "scikit-learn", "mlxtend": "mlxtend",
    "matplotlib": "matplotlib", "safetensors": "safetensors", "numpy": "numpy", "scipy": "scipy",
    "croniter": "croniter", "filelock": "filelock", "ruptures": "ruptures",
}  # fmt: skip
MARK = "SWEEPS_PREFLIGHT "
PROBE = (
    "import importlib.util, json, sys; "
    f"m = [n for n in {sorted(DEPENDENCIES)!r} if importlib.util.find_spec(n) is None]; "
    f"print({MARK!r} + json.dumps({{'python': sys.executable, "
    "'version': sys.version.split()[0], 'missing': m}))"
)


@dataclass(frozen=True)
class Answer:
    python: str
    version: str
    missing: list[str]


def entrypoint(python: str) -> str:
    return f"{shlex.quote(python)} -c {shlex.quote(PROBE)}"


def run_probe(jobs: Any, python: str, timeout_s: float = 120.0) -> tuple[Answer | None, str]:
    """Submit the probe job and wait for it; (answer, the job's log tail)."""
    deadline = time.monotonic() + timeout_s
    job_id = _submit_when_ready(jobs, entrypoint(python), deadline)
    while time.monotonic() < deadline:
        try:
            status = str(getattr(jobs.get_job_status(job_id), "value", ""))
        except OSError:  # a busy head drops a request now and then: ask again
            status = ""
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(0.5)
    logs = str(jobs.get_job_logs(job_id))
    for line in logs.splitlines():
        if line.startswith(MARK):
            d = json.loads(line[len(MARK) :])
            return Answer(d["python"], d["version"], list(d["missing"])), logs
    return None, logs


def _submit_when_ready(jobs: Any, command: str, deadline: float) -> str:
    """Submit, retrying while a freshly started head says its job agent is not up yet."""
    while True:
        try:
            return str(jobs.submit_job(entrypoint=command, metadata={"sweeps": "preflight"}))
        except (RuntimeError, OSError) as exc:  # requests' ConnectionError is an OSError
            retry = isinstance(exc, OSError) or "No available agent" in str(exc)
            if not retry or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def problem(answer: Answer | None, logs: str, python: str) -> str | None:
    """One sentence naming what is missing and how to fix it; None when nothing is."""
    if answer is None:
        tail = " ".join(logs.strip().splitlines()[-1:])[:200]
        return (
            f"preflight: the cluster could not run `{python}` ({tail or 'no output'}); start "
            "Ray with the project's environment on PATH, or pass --python /path/to/python"
        )
    if not answer.missing:
        return None
    reqs = " ".join(shlex.quote(DEPENDENCIES[m]) for m in answer.missing)
    return (
        f"preflight: the cluster's Python ({answer.python}, {answer.version}) cannot import "
        f"{', '.join(answer.missing)}; fix: `{answer.python} -m pip install {reqs}` on every "
        "node (or bake them into the cluster image), start `ray start` with the project's "
        "environment on PATH, or pass --python /path/to/a/python/that/has/them"
    )


def check(jobs: Any, python: str = "python", timeout_s: float = 120.0) -> str | None:
    answer, logs = run_probe(jobs, python, timeout_s)
    return problem(answer, logs, python)
