"""adv_core: pure torch datasets, models, ensembles, training methods, attacks, closed forms.

Imports torch, numpy and pydantic only: no Ray, no polars, no file layout. ``adv_core.config``
and ``adv_core.theory`` import without torch; heavier names load lazily on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CellResult", "run_cell"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from adv_core import run

        return getattr(run, name)
    raise AttributeError(f"module 'adv_core' has no attribute {name!r}")
