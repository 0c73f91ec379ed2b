"""Execute analysis notebooks on a results folder and render them to HTML (nbclient +
nbconvert). Parameters are injected as a cell after the one tagged ``parameters``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


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


def execute_notebook(name: str, params: dict[str, Any], timeout_s: int = 600) -> Any:
    """Run notebooks/<name>.ipynb with ``params``; returns the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    inject_parameters(nb, params)
    NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    return nb


def to_html(nb: Any) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    return str(body)


def render_report(
    results: str,
    out: str | Path,
    notebooks: list[str] | None = None,
    sweep: str | None = None,
    run: str | None = None,
) -> Path:
    """Execute ``notebooks`` (default: overview) and write one HTML file at ``out``."""
    names = notebooks or ["overview"]
    parts = [
        to_html(execute_notebook(n, {"RESULTS": str(results), "SWEEP": sweep, "RUN": run}))
        for n in names
    ]
    html = parts[0] if len(parts) == 1 else _concat(parts)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(html)
    tmp.replace(path)
    return path


def _concat(parts: list[str]) -> str:
    bodies = []
    for p in parts:
        start, end = p.find("<body"), p.rfind("</body>")
        bodies.append(p[p.find(">", start) + 1 : end] if start >= 0 and end > 0 else p)
    head_end = parts[0].find("<body")
    head = parts[0][:head_end] if head_end > 0 else "<html><head></head>"
    return head + "<body>" + "<hr/>".join(bodies) + "</body></html>"
