"""Transfer sources by content: a transfer attack's ``source_path`` is where its source model
lies (an execution setting); the source enters the hashes as the sha256 of its weights file.

Resolved once, when a spec is read, so moving a source folder (same file) keeps every hash and
a different weights file at the same path gives new ones."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Errors = list[tuple[str, str]]
_CHUNK = 1 << 20


def weights_digest(folder: str | Path) -> str:
    """sha256 (hex) of the one ``*.safetensors`` file in a saved-ensemble folder (dot-named
    files, such as the ``.tmp-*`` temporaries of a killed write, are never read)."""
    p = Path(folder)
    if not p.is_dir():
        raise ValueError(f"{folder} is not a folder holding a saved ensemble")
    files = sorted(f for f in p.glob("*.safetensors") if not f.name.startswith("."))
    if len(files) != 1:
        raise ValueError(f"{folder} holds {len(files)} .safetensors files, expected one")
    digest = hashlib.sha256()
    with files[0].open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def identify_sources(attacks: Sequence[Any]) -> tuple[list[Any], Errors]:
    """``attacks`` with ``source_sha256`` filled in for every transfer attack that reads its
    source from ``source_path``; errors name the field of an unreadable or mismatched source."""
    out: list[Any] = []
    errors: Errors = []
    for i, a in enumerate(attacks):
        if getattr(a, "name", None) != "transfer" or (
            a.source_path is None and a.source_sha256 is None
        ):
            out.append(a)
            continue
        if a.source_path is None:
            errors.append((f"attacks[{i}].source_sha256", "needs a source_path to read"))
            out.append(a)
            continue
        try:
            digest = weights_digest(a.source_path)
        except (OSError, ValueError) as exc:
            errors.append((f"attacks[{i}].source_path", str(exc)))
            out.append(a)
            continue
        if a.source_sha256 is not None and a.source_sha256 != digest:
            errors.append((f"attacks[{i}].source_sha256", f"{a.source_path} has sha256 {digest}"))
        out.append(a.model_copy(update={"source_sha256": digest}))
    return out, errors
