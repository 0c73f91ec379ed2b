"""Every analysis notebook executes on the shared synthetic results through `sweeps report`,
writes its figures as PNG files next to the HTML, and says what is missing instead of failing."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from analysis.report import DEFAULT_ORDER, NOTEBOOKS, available, build_report, figures_dir
from sweeps.cli import app

TITLES = {
    "overview": "Overview: robust accuracy against eps",
    "inevitability": "Inevitability: robustness fails",
    "sample_complexity": "Sample complexity: robust learning needs more data",
    "transfer_and_ensembles": "Transfer and ensembles",
    "nightly": "Nightly trends",
}
FIGURES = [
    "inevitability-dense-linear-standard.png",
    "inevitability-eps-break-vs-d.png",
    "inevitability-spheres-distance.png",
    "inevitability-tsipras-tradeoff.png",
    "sample_complexity-gaussian-vs-n.png",
    "sample_complexity-transitions-vs-d.png",
    "sample_complexity-schmidt-bound.png",
    "sample_complexity-exponent-grid.png",
    "sample_complexity-collapse.png",
    "sample_complexity-bernoulli-linear-standard.png",
    "sample_complexity-bernoulli-linear-pgd_at-0.1.png",
    "sample_complexity-rst.png",
    "sample_complexity-convex-hull.png",
    "transfer-matrix-spheres-mlp-standard.png",
    "transfer-ensemble-vs-members.png",
    "transfer-fooling.png",
    "nightly-trend.png",
]


def test_every_notebook_has_parameters_and_is_in_the_report() -> None:
    assert available()[: len(DEFAULT_ORDER)] == list(DEFAULT_ORDER)
    for name in DEFAULT_ORDER:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1
        for p in ("RESULTS", "SWEEP", "RUN", "FIGURES"):
            assert re.search(rf"^{p} = ", params[0].source, re.M), (name, p)


@pytest.mark.slow
def test_report_executes_all_notebooks(synthetic_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "synthetic.html"
    notebooks = [a for n in DEFAULT_ORDER[1:] for a in ("--notebook", n)]  # overview: tests/
    args = ["report", "--results", str(synthetic_results), "--out", str(out), *notebooks]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert "Traceback" not in html
    for title in list(TITLES.values())[1:]:
        assert title in html
    m = re.search(
        r"EXPONENT robust \(eps=0.6\): (-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]; standard: n\* &lt;= 1 at every d",
        html,
    )
    assert m is not None
    k, lo, hi = (float(g) for g in m.groups())
    assert lo - 0.02 <= 0.5 <= hi + 0.02 and abs(k - 0.5) < 0.08
    m = re.search(r"COLLAPSE alpha \(eps=0.6, [^)]*\): ([\d.]+) \[([\d.]+), ([\d.]+)\]", html)
    assert m is not None
    a, a_lo, a_hi = (float(g) for g in m.groups())
    assert a_lo - 0.02 <= 0.5 <= a_hi + 0.02
    # the Bernoulli and rst cells run on data, per training method and eps
    assert "BERNOULLI linear standard: robust (eps=0.2)" in html
    assert "BERNOULLI linear pgd_at@0.1" in html and "critical eps of sign" in html
    assert "No bernoulli rows" not in html and "No rst rows" not in html
    # Thm 11 only where it applies (rst excluded), checked at seed level
    assert "where Thm 11 applies" in html and "8 consistent, 0 violation" in html
    # the dense model has 2 seeds: said so, and its Bayes check is inconclusive
    assert "fewer than 3 seeds" in html and "64 inconclusive" in html
    assert "No image rows at two or more resolutions" in html
    figs = figures_dir(out)
    assert figs == out.parent / "synthetic_figures"
    names = {p.name for p in figs.glob("*.png")}
    assert set(FIGURES) <= names, set(FIGURES) - names
    assert html.count("<img ") >= len(names)
    assert "figures (" in res.output and "sample_complexity-convex-hull.png" in res.output


@pytest.mark.slow
def test_nightly_notebook_stops_at_run(synthetic_results: Path, tmp_path: Path) -> None:
    rep = build_report(
        synthetic_results, tmp_path / "n.html", ["nightly"], "nightly", "nightly-20260102"
    )
    html = rep.path.read_text()
    assert not rep.failed
    assert "nightly-20260103" not in html and "over 2 runs; 0 regressions" in html
