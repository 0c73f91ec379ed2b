"""Notebooks execute for real (nbclient, python3 kernel) against results made in the test."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from sweeps.cli import app


@pytest.mark.slow
def test_overview_notebook_executes_and_renders(
    tiny_spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    run = CliRunner().invoke(
        app, ["run", str(tiny_spec), "--results", "results", "--workers", "0", "--quiet"]
    )
    assert run.exit_code == 0, run.output
    rep = CliRunner().invoke(
        app, ["report", "--results", "results", "--out", "report.html", "--notebook", "overview"]
    )
    assert rep.exit_code == 0, rep.output
    html = (tmp_path / "report.html").read_text()
    pngs = list((tmp_path / "report_figures").glob("*.png"))
    # the page's own figures plus the notebook's two (exact and fgsm), each shown once
    assert "Overview: robust accuracy against eps" in html and html.count("<img ") == len(pngs)
    assert {"overview-exact-linf.png", "overview-fgsm-linf.png"} <= {p.name for p in pngs}
    assert "Traceback" not in html and str(tmp_path) not in html  # no absolute path shown
    notebooks = Path(__file__).resolve().parents[2] / "analysis" / "notebooks"
    assert sorted(p.suffix for p in notebooks.iterdir()) == [".ipynb"] * len(
        list(notebooks.iterdir())
    )


def test_notebooks_are_committed_without_outputs() -> None:
    for nb_path in (Path(__file__).resolve().parents[2] / "analysis" / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(nb_path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), nb_path
