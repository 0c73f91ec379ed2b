"""Security defaults (README, SECURITY): a local cluster listens on loopback only and runs no
dashboard; weights and data load without unpickling arbitrary objects; YAML is parsed safely and
no spec value is evaluated as code; nothing a spec or an argument names can write outside the
results root."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path
from typing import Any

import psutil
import pytest

from sweeps.spec import RUN_ID_PATTERN, SpecError, loads_spec

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("adv_core", "cluster", "sweeps", "analysis")
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def test_local_cluster_listens_on_loopback_only(ray_cluster: Any) -> None:
    """Every socket that this session's Ray processes listen on is bound to 127.0.0.1, every
    node advertises 127.0.0.1, and no dashboard runs."""
    import ray

    from cluster.connect import connect

    assert ray_cluster["address"].split(":")[0] == "127.0.0.1"
    assert {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]} == {"127.0.0.1"}
    assert connect()["dashboard"] is None
    pids = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    listening = [
        c
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]
    assert listening, "found no Ray sockets to check"
    exposed = [(c.pid, c.laddr) for c in listening if c.laddr.ip not in LOOPBACK]
    assert exposed == [], exposed
    assert 8265 not in {c.laddr.port for c in listening}  # Ray's dashboard port


class _Evil:
    """Unpickling this would create ``marker`` (an arbitrary call)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_weights_that_are_a_pickle_are_refused_without_running_it(tmp_path: Path) -> None:
    import torch

    from adv_core.config.models import LinearModel
    from adv_core.data.local import safe_unpickle
    from adv_core.models import load_ensemble, new_ensemble, save_ensemble

    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(marker))
    folder = tmp_path / "model"
    save_ensemble(new_ensemble(LinearModel(), (4,), 2, 1, 0), folder)
    (folder / "weights.safetensors").write_bytes(payload)
    with pytest.raises(Exception) as exc:  # noqa: PT011 - safetensors' own error type
        load_ensemble(folder)
    assert "pickle" not in type(exc.value).__name__.lower()
    (tmp_path / "weights.pt").write_bytes(payload)
    with pytest.raises(pickle.UnpicklingError), pytest.warns(UserWarning, match="protocol"):
        torch.load(tmp_path / "weights.pt", weights_only=True)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        safe_unpickle(payload)  # CIFAR-10 batches are pickles: only numpy globals resolve
    assert not marker.exists()


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            out.append((ast.unparse(node.func), node))
    return out


def _kw(call: ast.Call, name: str) -> str | None:
    return next((ast.unparse(k.value) for k in call.keywords if k.arg == name), None)


FORBIDDEN = {
    "eval", "exec", "compile", "pickle.load", "pickle.loads", "marshal.loads",
    "yaml.unsafe_load", "yaml.full_load", "pd.read_pickle", "torch.jit.load",
}  # fmt: skip
SAFE_LOADERS = {"yaml.SafeLoader", "yaml.CSafeLoader", "_UniqueKeyLoader"}


def _violations(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    bad = []
    for func, call in _calls(tree):
        where = f"{path.relative_to(root)}:{call.lineno} {func}"
        if func in FORBIDDEN:
            bad.append(where)
        elif func == "torch.load" and _kw(call, "weights_only") != "True":
            bad.append(where + " without weights_only=True")
        elif func == "yaml.load" and _kw(call, "Loader") not in SAFE_LOADERS:
            bad.append(where + " with an unsafe Loader")
        elif func in ("np.load", "numpy.load") and _kw(call, "allow_pickle") == "True":
            bad.append(where + " with allow_pickle=True")
    return bad


def test_no_code_path_unpickles_or_evaluates() -> None:
    """torch.load only with weights_only=True, yaml only through a SafeLoader, no eval/exec,
    no pickle.load: checked on the syntax tree of every module of the four packages."""
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 30
    bad = [v for f in files for v in _violations(f)]
    assert bad == [], bad


def test_the_scanner_catches_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import torch, yaml, pickle\n"
        "torch.load('w.pt')\n"
        "yaml.load(s, Loader=yaml.Loader)\n"
        "pickle.loads(b)\n"
        "eval(spec['lr'])\n"
        "torch.load('w.pt', weights_only=True)\n"
    )
    assert len(_violations(sample, tmp_path)) == 4


@pytest.mark.parametrize(
    "name", ["..", "../x", "a/b", "/abs", "a\\\\b", ".hidden", "A", "x" * 65, "ok\\n"]
)
def test_no_spec_name_can_leave_the_results_root(name: str) -> None:
    text = f'name: "{name}"\nseeds: [0]\ndatasets: [{{name: gaussian, d: 4}}]\nn_train: [2]\n'
    text += "models: [{name: linear}]\nattacks: [{name: fgsm, eps: [0.1]}]\n"
    with pytest.raises(SpecError) as exc:
        loads_spec(text)
    assert "name" in [p for p, _ in exc.value.errors]


def test_every_path_a_valid_spec_writes_is_inside_the_root(tmp_path: Path) -> None:
    """The store's paths for every cell, model, manifest and lock of a valid spec and run id
    resolve inside the results root."""
    import re

    from sweeps.plan import plan
    from sweeps.store import EXAMPLES, METRICS, MODELS, ResultStore

    spec = loads_spec(
        "name: a-b_c\nseeds: [0, 1]\ndatasets: [{name: gaussian, d: [4, 8]}]\nn_train: [2]\n"
        "models: [{name: linear}]\nattacks: [{name: fgsm, eps: [0.1]}]\n"
    )
    run_id = "v1.2_x-y"
    assert re.fullmatch(RUN_ID_PATTERN, run_id)
    root = (tmp_path / "results").resolve()
    store = ResultStore(str(root))
    paths = [store.path("runs", f"{run_id}.json"), store.run_lock(spec.name, run_id).path]
    for c in plan(spec):
        paths += [store.cell_file(t, spec.name, run_id, c.cell_hash) for t in (METRICS, EXAMPLES)]
        paths.append(store.path(MODELS, c.train_hash, "weights.safetensors"))
    for p in paths:
        assert os.path.commonpath([root, os.path.realpath(p)]) == str(root), p


def test_the_python_api_refuses_a_run_id_that_is_a_path(tmp_path: Path) -> None:
    from sweeps.runner import run_sweep

    spec = loads_spec(
        "name: api\nseeds: [0]\ndatasets: [{name: gaussian, d: 4}]\nn_train: [2]\n"
        "models: [{name: linear}]\nattacks: [{name: fgsm, eps: [0.1]}]\n"
    )
    with pytest.raises(ValueError, match="run id"):
        run_sweep(spec, str(tmp_path / "results"), "../../escaped", inline=True)
    assert list(tmp_path.iterdir()) == []
