"""Test session setup: Ray hygiene (127.0.0.1 only, no usage stats, no cloud probes), one local
Ray cluster per session, small deterministic specs."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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


TINY_SPEC = """
name: {name}
seeds: [0, 1]
datasets:
  - {{name: gaussian, d: [8, 32], sigma_c: 1.0}}
n_train: [4, 16]
n_eval: 200
models:
  - {{name: linear}}
training:
  - {{method: standard, epochs: 5, batch_size: 16}}
ensemble_size: 2
attacks:
  - {{name: fgsm, norm: linf, eps: [0.0, 0.1, 0.3]}}
  - {{name: exact, norm: linf, eps: [0.0, 0.1, 0.3]}}
resources: {{cpus_per_worker: 1, max_retries: 1}}
"""


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    """An 8-cell gaussian spec that runs in a few seconds."""
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY_SPEC.format(name="tiny"))
    return p
