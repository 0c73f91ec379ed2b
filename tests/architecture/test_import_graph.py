"""No import cycles, and imports run one way (docs/architecture.md):
sweeps -> cluster -> adv_core; analysis -> a few torch-free modules of sweeps and adv_core.

The graph is read statically (tests/architecture/import_graph.py), function-level imports
included; ``test_each_module_imports_alone`` also imports every module by itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.architecture.import_graph import ROOT, cycles, imports, modules

GRAPH = imports()

# What analysis may read of sweeps: the results schema and the torch-free modules built for it.
ANALYSIS_FROM_SWEEPS = {"sweeps.schema", "sweeps.layout", "sweeps.index", "sweeps.regression"}


def _imports_of(package: str) -> dict[str, set[str]]:
    return {m: t for m, t in GRAPH.items() if m.split(".")[0] == package}


def _reach(start: set[str]) -> set[str]:
    """Everything reachable from ``start`` (project modules and third-party names)."""
    seen, todo = set(start), list(start)
    while todo:
        for t in GRAPH.get(todo.pop(), ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def test_the_graph_sees_every_kind_of_import() -> None:
    """The reader itself: a lazy import inside a function and a relative import count."""
    assert "sweeps.nightly" in GRAPH["sweeps.cli.nightly"]  # imported inside `nightly()`
    assert "ray" in GRAPH["cluster.pool"]
    assert len(GRAPH) > 60 and all(
        m.split(".")[0] in ("adv_core", "cluster", "sweeps", "analysis") for m in GRAPH
    )


def test_a_planted_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "torch"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("adv_core", {"ray", "polars", "sweeps", "cluster", "analysis"}),
        ("cluster", {"sweeps", "analysis"}),
        ("analysis", {"torch", "ray", "cluster"}),
    ],
)
def test_imports_run_one_way(package: str, forbidden: set[str]) -> None:
    bad = {
        f"{m} -> {t}"
        for m, targets in _imports_of(package).items()
        for t in targets
        if t.split(".")[0] in forbidden
    }
    assert not bad, sorted(bad)


def test_analysis_reads_only_the_results_vocabulary_of_sweeps() -> None:
    used = {t for targets in _imports_of("analysis").values() for t in targets}
    assert {t for t in used if t.startswith("sweeps")} <= ANALYSIS_FROM_SWEEPS


def test_analysis_never_reaches_torch_or_ray() -> None:
    """Not even through what it imports (a notebook kernel loads no torch or Ray)."""
    reached = _reach(set(_imports_of("analysis")))
    assert not {"torch", "ray", "cluster"} & {t.split(".")[0] for t in reached}


@pytest.mark.slow
def test_each_module_imports_alone() -> None:
    names = sorted(m for m in modules() if not m.endswith(".__main__"))  # those run on import
    script = ROOT / "tests" / "architecture" / "import_each.py"
    res = subprocess.run(
        [sys.executable, str(script), *names], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stdout + res.stderr
