"""Token resolution and the job request, without a cluster."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cluster.connect import resolve_token
from sweeps import submit as jobs


@pytest.mark.parametrize(
    ("option", "env", "path_file", "home_file", "expected"),
    [
        ("opt", "env", "path", "home", "opt"),
        (None, "env", "path", "home", "env"),
        (None, None, "path", "home", "path"),
        (None, None, None, "home", "home"),
        (None, None, None, None, None),
    ],
    ids=["option-wins", "env-token", "token-path", "home-file", "none"],
)
def test_token_precedence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    env: str | None,
    path_file: str | None,
    home_file: str | None,
    expected: str | None,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    if env:
        monkeypatch.setenv("RAY_AUTH_TOKEN", env)
    if path_file:
        (tmp_path / "tok").write_text(path_file + "\n")
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    if home_file:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text(home_file)
    assert resolve_token(option) == expected
    headers = jobs.auth_headers(option)
    assert headers == ({"Authorization": f"Bearer {expected}"} if expected else {})


def test_job_request_entrypoint_and_runtime_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    req = jobs.JobRequest(Path("s.yaml"), "out dir", run_id="r1", workers=2)
    argv = shlex.split(req.entrypoint())
    assert argv[:5] == ["python", "-m", "sweeps", "run", jobs.SPEC_NAME]
    assert argv[5:] == ["--results", str(tmp_path / "out dir"), "--run-id", "r1", "--workers", "2"]
    assert jobs.JobRequest(Path("s.yaml"), "s3://b/p").results_for_cluster() == "s3://b/p"
    env = jobs.runtime_env(tmp_path)
    assert env["working_dir"] == str(tmp_path)
    assert sorted(Path(p).name for p in env["py_modules"]) == sorted(jobs.PACKAGES)
    assert {".venv", "results", ".git"} <= set(env["excludes"])


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        ("http://h:8265", None, "http://h:8265"),
        (None, "http://h:8265", "http://h:8265"),
        (None, "h:6379", None),  # a GCS address is not the Jobs API
        (None, None, None),
    ],
    ids=["option", "env-http", "env-gcs", "none"],
)
def test_jobs_address(
    monkeypatch: pytest.MonkeyPatch, option: str | None, env: str | None, expected: str | None
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if env:
        monkeypatch.setenv("RAY_ADDRESS", env)
    assert jobs.jobs_address(option) == expected


def test_submit_without_jobs_address_is_invalid_input(
    cluster_spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from sweeps.cli import app

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    res = CliRunner().invoke(app, ["submit", str(cluster_spec)])
    assert res.exit_code == 2
    assert "--address" in res.output
