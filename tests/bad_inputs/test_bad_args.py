"""The bad-input corpus, second half: bad files and bad arguments (a spec that is a folder, is
missing, is not UTF-8 or cannot be read; a results path that is a file; a run id that is a
path). Each exits 2 naming the field or option and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweeps.cli import app

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
name: ok
seeds: [0]
datasets: [{name: gaussian, d: [4]}]
n_train: [2]
n_eval: 10
models: [{name: linear}]
attacks: [{name: fgsm, eps: [0.0, 0.1]}]
"""


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# Each setup makes what it needs inside the (current) folder and returns the CLI arguments
# that follow the command name.
Setup = Callable[[Path], list[str]]


def good_spec(d: Path) -> Path:
    (d / "ok.yaml").write_text(GOOD)
    return d / "ok.yaml"


def spec_is_directory(d: Path) -> list[str]:
    (d / "specdir").mkdir()
    return [str(d / "specdir")]


def spec_missing(d: Path) -> list[str]:
    return [str(d / "nope.yaml")]


def spec_not_utf8(d: Path) -> list[str]:
    (d / "latin1.yaml").write_bytes(GOOD.replace("name: ok", "name: caf\xe9").encode("latin-1"))
    return [str(d / "latin1.yaml")]


def spec_binary(d: Path) -> list[str]:
    (d / "blob.yaml").write_bytes(bytes(range(256)))
    return [str(d / "blob.yaml")]


def spec_unreadable(d: Path) -> list[str]:
    # A symlink loop cannot be opened by anyone (a chmod 000 file still opens for root).
    os.symlink(d / "loop_b.yaml", d / "loop_a.yaml")
    os.symlink(d / "loop_a.yaml", d / "loop_b.yaml")
    return [str(d / "loop_a.yaml")]


def results_is_file(d: Path) -> list[str]:
    (d / "afile").write_text("x")
    return [str(good_spec(d)), "--results", str(d / "afile")]


def results_under_a_file(d: Path) -> list[str]:
    (d / "afile").write_text("x")
    return [str(good_spec(d)), "--results", str(d / "afile" / "sub")]


def run_id_dotdot(d: Path) -> list[str]:
    return [str(good_spec(d)), "--results", "results", "--run-id", "../../escaped"]


def run_id_slash(d: Path) -> list[str]:
    return [str(good_spec(d)), "--results", "results", "--run-id", "a/b"]


def run_id_absolute(d: Path) -> list[str]:
    return [str(good_spec(d)), "--results", "results", "--run-id", str(d / "abs")]


def run_id_hidden(d: Path) -> list[str]:
    return [str(good_spec(d)), "--results", "results", "--run-id", ".hidden"]


def max_cells_zero(d: Path) -> list[str]:
    return [str(good_spec(d)), "--max-cells", "0"]


ALL = ("validate", "plan", "run")
WITH_RESULTS = ("plan", "run")
CASES: list[tuple[str, Setup, tuple[str, ...], str]] = [
    ("spec_is_directory", spec_is_directory, ALL, "<file>"),
    ("spec_missing", spec_missing, ALL, "<file>"),
    ("spec_not_utf8", spec_not_utf8, ALL, "<file>"),
    ("spec_binary", spec_binary, ALL, "<file>"),
    ("spec_unreadable", spec_unreadable, ALL, "<file>"),
    ("results_is_a_file", results_is_file, WITH_RESULTS, "--results"),
    ("results_under_a_file", results_under_a_file, WITH_RESULTS, "--results"),
    ("run_id_dotdot", run_id_dotdot, WITH_RESULTS, "--run-id"),
    ("run_id_slash", run_id_slash, WITH_RESULTS, "--run-id"),
    ("run_id_absolute", run_id_absolute, WITH_RESULTS, "--run-id"),
    ("run_id_hidden", run_id_hidden, WITH_RESULTS, "--run-id"),
    ("max_cells_zero", max_cells_zero, ALL, "--max-cells"),
]


@pytest.mark.parametrize(
    ("setup", "commands", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_file_or_argument_exits_2_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setup: Setup,
    commands: tuple[str, ...],
    field: str,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = setup(work)
    before = tree(tmp_path)
    for cmd in commands:
        extra = ["--workers", "0", "--quiet"] if cmd == "run" else []
        res = CliRunner().invoke(app, [cmd, *args, *extra])
        assert res.exit_code == 2, (cmd, res.output)
        assert field in res.output, res.output
        assert "Traceback" not in res.output
    assert tree(tmp_path) == before


def test_cli_subprocess_exits_2_with_the_field_on_stderr(tmp_path: Path) -> None:
    """One real process: the console entry point, stderr and the exit status as a shell sees
    them."""
    spec = tmp_path / "bad.yaml"
    spec.write_text(GOOD.replace("d: [4]", "d: [4], dims: 3"))
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps", "validate", str(spec)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error datasets[0].dims: unknown field" in proc.stderr
    assert proc.stdout == ""
    assert tree(tmp_path) == {"bad.yaml"}
