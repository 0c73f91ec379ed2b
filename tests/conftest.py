"""Test session setup: Ray hygiene (127.0.0.1 only, no usage stats, no cloud probes), one local
Ray cluster per session, small deterministic specs."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import specs

# Set before anything imports ray: a private HOME with an empty bootstrap config stops Ray
# probing cloud metadata addresses; the rest keep the cluster on loopback and silent.
_HOME = Path(tempfile.mkdtemp(prefix="rs-home-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
(_HOME / "ray_bootstrap_config.yaml").write_text("{}\n")
os.environ.update(
    {
        "HOME": str(_HOME),
        "MPLCONFIGDIR": str(_HOME / "mpl"),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
        "SWEEPS_RAY_TMP": "/tmp",
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_timeout_ms": "2000",
        "RAY_health_check_failure_threshold": "3",
    }
)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


class SessionCluster(dict[str, str]):
    """The session's local Ray cluster: 2 CPUs and 2 declared GPUs (Ray accepts declared GPUs on
    a CPU machine; torch sees none, so workers fall back to the CPU). Tests that need their own
    cluster (several nodes via ray.cluster_utils.Cluster) shut it down; ``ensure`` starts it
    again for the next test that asks for ``ray_cluster``."""

    def ensure(self) -> None:
        import ray

        from cluster.connect import connect

        if ray.is_initialized() and ray.get_runtime_context().gcs_address == self.get("address"):
            return
        if ray.is_initialized():
            ray.shutdown()
        connect(None, num_cpus=2, num_gpus=2, object_store_mb=128)
        self["address"] = ray.get_runtime_context().gcs_address


_SESSION = SessionCluster()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[SessionCluster]:
    """One real local Ray cluster for the session (``["address"]`` is its GCS address)."""
    import ray

    _SESSION.ensure()
    yield _SESSION
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_cluster_up(request: pytest.FixtureRequest) -> None:
    """Restart the session cluster before a test that uses it, if an earlier test stopped it."""
    if "ray_cluster" in request.fixturenames:
        _SESSION.ensure()


@pytest.fixture
def make_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write the tiny spec (tests/specs.py), with top-level fields replaced, to a YAML file
    under tmp_path: ``make_spec(name="kill", seeds=[0, 1, 2])``."""

    def make(**fields: Any) -> Path:
        p = tmp_path / f"{fields.get('name', 'tiny')}.yaml"
        p.write_text(specs.tiny_spec(**fields))
        return p

    return make


@pytest.fixture
def tiny_spec(make_spec: Callable[..., Path]) -> Path:
    """The 8-cell tiny spec as a file."""
    return make_spec()
