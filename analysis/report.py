"""The report of a results folder: a standalone HTML page (and the same as Markdown beside it)
that opens with the verdicts of the claims (``analysis.verdicts``), then figures with captions,
then tables, then any analysis notebooks asked for, executed with nbclient and exported without
their code. Notebook parameters (RESULTS, SWEEP, RUN, FIGURES) are injected as a cell after the
one tagged ``parameters``; notebooks save each figure as FIGURES/<name>.png through
``analysis.figures.show``."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from analysis import verdicts
from analysis.figures import save_figure
from analysis.verdicts import Verdict

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
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    inject_parameters(nb, params)
    with tempfile.TemporaryDirectory(prefix="kernel-") as sock_dir:
        # IPC sockets in a private folder: the kernel opens no TCP port (and so has nothing
        # unencrypted to warn about)
        km = KernelManager(
            kernel_name="python3", transport="ipc", ip=os.path.join(sock_dir, "kernel")
        )
        client = NotebookClient(
            nb, km=km, timeout=timeout_s, resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        try:
            client.execute()
        except CellExecutionError as exc:
            err = NotebookFailed(f"notebook {name} failed: {str(exc)[-1500:]}")
            err.nb = nb  # type: ignore[attr-defined]
            raise err from None
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=False)
    return nb


def to_html(nb: Any) -> str:
    """The notebook as HTML without its code (nbconvert's no-input export)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    exporter.exclude_input = True
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
    """What ``build_report`` wrote: the HTML page, its Markdown twin, the figure files, the
    verdicts shown, and the notebooks that failed."""

    path: Path
    figures: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    markdown: Path | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)


def _results_param(results: str | Path) -> str:
    text = str(results)
    return text if "://" in text else os.path.abspath(text)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    tmp.replace(path)


def _runs_table(df: pl.DataFrame) -> pl.DataFrame:
    return (
        df.group_by("sweep", "run_id", "status")
        .agg(pl.col("cell_hash").n_unique().alias("cells"), pl.len().alias("rows"))
        .sort("sweep", "run_id", "status")
    )


def _notebook_parts(
    names: list[str], params: dict[str, Any], shown_as: str, timeout_s: int
) -> tuple[list[str], dict[str, str]]:
    """Executed notebooks as HTML fragments without their code; the absolute results path the
    kernel needed is shown as the user gave it."""
    parts, failed = [], {}
    for n in names:
        try:
            nb = execute_notebook(n, params, timeout_s)
        except NotebookFailed as exc:
            nb, failed[n] = exc.nb, str(exc)  # type: ignore[attr-defined]
        body = _body(to_html(nb)).replace(str(params["RESULTS"]), shown_as)
        body = body.replace(str(params["FIGURES"]), "figures")
        parts.append(f'<section class="notebook" id="notebook-{n}">{body}</section>')
    return parts, failed


def build_report(
    results: str | Path,
    out: str | Path,
    notebooks: list[str] | None = None,
    sweep: str | None = None,
    run: str | None = None,
    timeout_s: int = 600,
) -> Report:
    """Write the report on ``results`` (optionally one sweep / run): ``out`` (HTML, standalone:
    figures embedded) and ``out`` with suffix .md, figures as PNG files in ``figures_dir(out)``.
    The page opens with the verdicts (``analysis.verdicts``), then figures with captions, then
    tables, then the ``notebooks`` asked for (executed, code hidden), and ends with the list of
    sections whose data is absent. A notebook that fails is rendered up to its error and listed
    in ``Report.failed``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.load import load, with_dataset_params
    from analysis.report_render import render_html, render_markdown
    from analysis.report_sections import build_sections

    path, fig_dir = Path(out), figures_dir(out)
    if fig_dir.is_dir():
        for old in fig_dir.glob("*.png"):
            old.unlink()
    df = with_dataset_params(load(str(results), sweep=sweep, run=run)).collect()
    found, absent_claims = verdicts.all_verdicts(df)
    sections, absent = build_sections(df, found)
    files: dict[str, Path] = {}
    for sec in sections:
        for f in sec.figures:
            saved = save_figure(f.fig, f.name, fig_dir)
            assert saved is not None
            files[f.name] = saved
            plt.close(f.fig)
    extra = [("Runs, cells and rows", _runs_table(df))] if df.height else []
    params = {
        "RESULTS": _results_param(results),
        "SWEEP": sweep,
        "RUN": run,
        "FIGURES": str(fig_dir),
    }
    nb_parts, failed = _notebook_parts(notebooks or [], params, str(results), timeout_s)
    absent = [*(f"verdict on {c}" for c in absent_claims), *absent]
    title = f"Robustness report: {sweep or 'all sweeps'}" + (f", run {run}" if run else "")
    subtitle = f"{df.height} metrics rows, {df['cell_hash'].n_unique() if df.height else 0} cells."
    shown = list(found.values())
    _atomic_write(
        path, render_html(title, subtitle, shown, sections, files, extra, nb_parts, absent)
    )
    md_path = path.with_suffix(".md")
    rel = {name: f"{fig_dir.name}/{p.name}" for name, p in files.items()}
    _atomic_write(md_path, render_markdown(title, subtitle, shown, sections, rel, extra, absent))
    figures = sorted(fig_dir.glob("*.png")) if fig_dir.is_dir() else []
    return Report(path, figures, failed, md_path, shown, absent)


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


def _body(page: str) -> str:
    """The inside of a page's <body> (nbconvert writes a whole page per notebook)."""
    start, end = page.find("<body"), page.rfind("</body>")
    return page[page.find(">", start) + 1 : end] if start >= 0 and end > 0 else page
