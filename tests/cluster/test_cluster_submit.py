"""Submission to a running cluster: a real head started with ``ray start --head`` on free
loopback ports, with Ray's token authentication on; ``sweeps submit --follow`` sends the spec
and the project as the job's runtime environment, and the job writes Parquet rows."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sweeps import submit as jobs
from sweeps.cli import app

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A one-CPU head with a dashboard (the Jobs API) and token auth. ``ray start --block`` in
    its own process group stops exactly this head's processes on teardown (a plain ``ray
    stop`` would stop every Ray cluster of this user on the machine)."""
    gcs, dash, agent, agent_grpc, env_agent, metrics, client = _free_ports(7)
    token = secrets.token_hex(16)
    temp = Path(f"/tmp/rs-head-{os.getpid()}")
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("RAY_ADDRESS", None)
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1"]
    cmd += ["--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash)]
    cmd += ["--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port"]
    cmd += [str(agent_grpc), "--runtime-env-agent-port", str(env_agent), "--metrics-export-port"]
    cmd += [str(metrics), "--ray-client-server-port", str(client), "--num-cpus", "1"]
    cmd += ["--include-dashboard", "true", "--disable-usage-stats", "--temp-dir", str(temp)]
    log = (tmp_path_factory.mktemp("head") / "ray-start.log").open("w")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{dash}"
    try:
        _wait_for_jobs_api(address, token, proc)
        yield {"address": address, "token": token}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)
        log.close()


def _wait_for_jobs_api(address: str, token: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            jobs.client(address, token).list_jobs()
            return
        except (RuntimeError, ConnectionError, OSError):
            time.sleep(0.5)
    raise AssertionError(f"the head's Jobs API did not come up (ray start exit {proc.poll()})")


def test_jobs_api_rejects_a_wrong_token(head: dict[str, str]) -> None:
    req = urllib.request.Request(f"{head['address']}/api/jobs/", headers=jobs.auth_headers("nope"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code in (401, 403)


def test_submit_follow_then_logs(head: dict[str, str], cluster_spec: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    args = ["submit", str(cluster_spec), "--address", head["address"], "--token", head["token"]]
    res = CliRunner().invoke(app, [*args, "--results", str(results), "--run-id", "j", "--follow"])
    assert res.exit_code == 0, res.output
    job_id = res.output.splitlines()[0].strip()
    assert job_id.startswith("raysubmit_")
    assert "run j: 8 cells, 0 already done, 8 run now, 0 failed" in res.output
    files = sorted((results / "metrics" / "sweep=tiny" / "run=j").glob("*.parquet"))
    assert len(files) == 8
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert {r["status"] for r in rows} == {"ok"}
    assert len(rows) == 8 * 3 * 3  # ensemble + 2 members, fgsm at 3 eps
    logs = CliRunner().invoke(
        app, ["logs", job_id, "--address", head["address"], "--token", head["token"], "--no-follow"]
    )
    assert logs.exit_code == 0 and "8 run now" in logs.output


def test_submit_preflight_says_what_the_cluster_python_lacks(
    head: dict[str, str], cluster_spec: Path, tmp_path: Path
) -> None:
    """A head whose job Python lacks the project's dependencies (here: the interpreter the venv
    was made from) gets one line naming them and the fix, and no sweep job."""
    bare = Path(sys.base_prefix) / "bin" / "python3"
    before = {j.submission_id for j in jobs.client(head["address"], head["token"]).list_jobs()}
    args = ["submit", str(cluster_spec), "--address", head["address"], "--token", head["token"]]
    res = CliRunner().invoke(app, [*args, "--results", str(tmp_path / "r"), "--python", str(bare)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("preflight: the cluster's Python"), lines
    assert str(bare) in lines[0] or "python3" in lines[0]
    assert "cannot import" in lines[0] and "typer" in lines[0] and "pip install" in lines[0]
    new = [
        j
        for j in jobs.client(head["address"], head["token"]).list_jobs()
        if j.submission_id not in before
    ]
    assert [j.metadata.get("sweeps") for j in new] == ["preflight"]  # the sweep never went
    assert not (tmp_path / "r").exists()
