"""One real nightly run of a 4-cell spec (inline, no Ray), copied into each test's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nightly_helpers import FIRST, SPEC, invoke


@pytest.fixture(scope="session")
def first_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("night1")
    (base / "spec.yaml").write_text(SPEC)
    res = invoke(
        "nightly", str(base / "spec.yaml"), "--results", str(base / "res"), "--date", FIRST,
        "--workers", "0", "--no-html",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return base


@pytest.fixture
def night(first_night: Path, tmp_path: Path) -> Path:
    """A private copy of the results after the first nightly (and the spec)."""
    shutil.copytree(first_night, tmp_path / "n", dirs_exist_ok=True)
    return tmp_path / "n"
