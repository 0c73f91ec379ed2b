"""Execute analysis notebooks on a results folder and render them to HTML (nbclient +
nbconvert). Parameters (RESULTS, SWEEP, RUN, FIGURES) are injected as a cell after the one
tagged ``parameters``; notebooks save each figure as FIGURES/<name>.png through
``analysis.figures.show``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
DEFAULT_ORDER = (
    "overview",
    "inevitability",
    "sample_complexity",
    "transfer_and_ensembles",
    "nightly",
)


def inject_parameters(nb: Any, params: dict[str, Any]) -> None:
    import nbformat

    code = "# injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(code, metadata={"tags": ["injected-parameters"]})
    idx = next(
        (
            i
            for i, c in enumerate(nb.cells)
            if "parameters" in c.get("metadata", {}).get("tags", [])
        ),
        -1,
    )
    nb.cells.insert(idx + 1, cell)


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; the report still holds its output up to the error."""


def execute_notebook(name: str, params: dict[str, Any], timeout_s: int = 600) -> Any:
    """Run notebooks/<name>.ipynb with ``params``; returns the executed notebook. On an error
    raises NotebookFailed with the partly executed notebook as ``nb``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    inject_parameters(nb, params)
    client = NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        err = NotebookFailed(f"notebook {name} failed: {str(exc)[-1500:]}")
        err.nb = nb  # type: ignore[attr-defined]
        raise err from None
    return nb


def to_html(nb: Any) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    return str(body)


def available() -> list[str]:
    """Notebook names in the report's order: DEFAULT_ORDER first, then any others by name."""
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    return [n for n in DEFAULT_ORDER if n in names] + [n for n in names if n not in DEFAULT_ORDER]


def figures_dir(out: str | Path) -> Path:
    """PNG copies of the report's figures: reports/<name>_figures/ next to reports/<name>.html."""
    path = Path(out).resolve()  # absolute: the kernel runs in analysis/notebooks/
    return path.with_name(f"{path.stem}_figures")


@dataclass
class Report:
    """What ``build_report`` wrote: the HTML, the figure files and the notebooks that failed."""

    path: Path
    figures: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _results_param(results: str | Path) -> str:
    text = str(results)
    return text if "://" in text else os.path.abspath(text)


def build_report(
    results: str | Path,
    out: str | Path,
    notebooks: list[str] | None = None,
    sweep: str | None = None,
    run: str | None = None,
    timeout_s: int = 600,
) -> Report:
    """Execute ``notebooks`` (default: all, see ``available``) on ``results`` and write one
    HTML file at ``out`` plus the figures as PNG files in ``figures_dir(out)``. A notebook that
    fails is rendered up to its error and listed in ``Report.failed``."""
    names = notebooks or available()
    fig_dir = figures_dir(out)
    if fig_dir.is_dir():
        for old in fig_dir.glob("*.png"):
            old.unlink()
    params = {"RESULTS": _results_param(results), "SWEEP": sweep, "RUN": run}
    parts, failed = [], {}
    for n in names:
        try:
            nb = execute_notebook(n, {**params, "FIGURES": str(fig_dir)}, timeout_s)
        except NotebookFailed as exc:
            nb, failed[n] = exc.nb, str(exc)  # type: ignore[attr-defined]
        parts.append(to_html(nb))
    html = parts[0] if len(parts) == 1 else _concat(parts)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(html)
    tmp.replace(path)
    figures = sorted(fig_dir.glob("*.png")) if fig_dir.is_dir() else []
    return Report(path, figures, failed)


def render_report(
    results: str,
    out: str | Path,
    notebooks: list[str] | None = None,
    sweep: str | None = None,
    run: str | None = None,
) -> Path:
    """``build_report`` that raises NotebookFailed (after writing the HTML) if a notebook
    failed; returns the HTML path."""
    rep = build_report(results, out, notebooks, sweep, run)
    if rep.failed:
        raise NotebookFailed("; ".join(rep.failed.values()))
    return rep.path


def _concat(parts: list[str]) -> str:
    bodies = []
    for p in parts:
        start, end = p.find("<body"), p.rfind("</body>")
        bodies.append(p[p.find(">", start) + 1 : end] if start >= 0 and end > 0 else p)
    head_end = parts[0].find("<body")
    head = parts[0][:head_end] if head_end > 0 else "<html><head></head>"
    return head + "<body>" + "<hr/>".join(bodies) + "</body></html>"
