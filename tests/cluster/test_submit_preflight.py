"""The preflight's list of modules is pyproject's runtime dependencies, and its messages are
one line that names what is missing and the fix."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from sweeps.preflight import DEPENDENCIES, Answer, problem

ROOT = Path(__file__).resolve().parents[2]


def test_module_list_matches_pyproject() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[\[<>=;! ]", d, maxsplit=1)[0].lower() for d in deps}
    assert names == {re.split(r"\[", v)[0] for v in DEPENDENCIES.values()}


def test_messages_are_one_line_with_the_fix() -> None:
    assert problem(Answer("/usr/bin/python3", "3.11.2", []), "", "python") is None
    msg = problem(Answer("/usr/bin/python3", "3.11.2", ["typer", "yaml"]), "", "python")
    assert msg is not None and "\n" not in msg
    assert "cannot import typer, yaml" in msg and "pip install typer pyyaml" in msg
    gone = problem(None, "bash: line 1: nopython: command not found\n", "nopython")
    assert gone is not None and "command not found" in gone and "--python" in gone
