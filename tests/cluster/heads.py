"""A Ray head started with ``ray start --head --block`` on free loopback ports, in its own
process group, so teardown stops exactly this head and every process it started (its raylet,
GCS, the autoscaler's monitor and the fake nodes the monitor launches). A plain ``ray stop``
would stop every Ray cluster of this user on the machine, which other test suites share."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for(what: str, cond: Callable[[], bool], timeout_s: float, every_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass
class Head:
    proc: subprocess.Popen[bytes]
    address: str  # GCS address, 127.0.0.1:port
    temp: Path
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        # whatever the head started and left behind (fake nodes, workers)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def start_head(
    temp: Path,
    log: Path,
    *,
    num_cpus: int,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Head:
    """Start a head (no dashboard) and return once its GCS port accepts connections."""
    gcs, agent, agent_grpc, env_agent, metrics, client = free_ports(6)
    gcs = port or gcs
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1"]
    cmd += ["--port", str(gcs), "--include-dashboard", "false", "--disable-usage-stats"]
    cmd += ["--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port"]
    cmd += [str(agent_grpc), "--runtime-env-agent-port", str(env_agent), "--metrics-export-port"]
    cmd += [str(metrics), "--ray-client-server-port", str(client), "--num-cpus", str(num_cpus)]
    cmd += ["--temp-dir", str(temp), *(extra or [])]
    full_env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    full_env.pop("RAY_ADDRESS", None)
    # a loaded machine starts the dashboard agent slowly; the raylet waits for its port file
    full_env.setdefault("RAY_raylet_start_wait_time_s", "240")
    full_env.update(env or {})
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    head = Head(proc, f"127.0.0.1:{gcs}", temp, log)
    try:
        started = lambda: "Ray runtime started" in log.read_text() or proc.poll() is not None  # noqa: E731
        wait_for("the head to start", started, 240)
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited {proc.returncode}: {log.read_text()[-3000:]}")
    except BaseException:
        head.stop()
        raise
    return head


def fake_autoscaling_config(
    gcs_address: str, worker_types: dict[str, Any], idle_timeout_minutes: float
) -> str:
    """The cluster config ``ray.cluster_utils.AutoscalingCluster`` builds (Ray's fake
    multi-node provider: nodes are local raylets started by the autoscaler), pointed at this
    head's GCS port instead of the default 6379. (AutoscalingCluster itself cannot be used
    here: its ``start`` runs ``ray stop --force``, and the wheel lacks its example.yaml.)"""
    config = {
        "cluster_name": "fake_multinode",
        "max_workers": sum(t["max_workers"] for t in worker_types.values()),
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": gcs_address,
        },
        "available_node_types": {
            **worker_types,
            "ray.head.default": {"resources": {}, "node_config": {}, "max_workers": 0},
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "docker": {},
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }
    return json.dumps(config)
