"""Where everything lives under a results root, in one place. Imports neither torch nor ray (the
store, the compactor, ``sweeps status`` and ``analysis.load`` all read the layout from here).

    ROOT/metrics/sweep=<name>/run=<run_id>/<cell_hash>.parquet    a cell's rows (its done-marker)
    ROOT/metrics/sweep=<name>/run=<run_id>/part-<stamp>-<id>.parquet   compacted cells
    ROOT/metrics/sweep=<name>/run=<run_id>/_index.json             cache of the parts' metadata
    ROOT/examples/...                                              the same for per-example rows
    ROOT/models/<train_hash[:2]>/<train_hash>.safetensors          weights + config in one file
    ROOT/models/packs/pack-<stamp>-<id>.{bin,index.json}           packed checkpoints (model_packs)
    ROOT/models/<train_hash>/{weights.safetensors,config.json}     older layout, still read
    ROOT/runs/<run_id>.json                                        run manifests
    ROOT/reports/<run_id>.{md,json,html}
    ROOT/locks/sweep=<name>/run=<run_id>.lock                      see sweeps/lock.py

Rules every reader follows:

- Names starting with ``.`` (temporaries: ``.tmp-<uuid>-<name>``) or ``_`` (the index) are never
  results. Writers write a temporary name and rename it into place, so a visible file is whole.
- A per-cell file is ``<cell_hash>.parquet``; a compacted file ``part-*.parquet`` names in its
  Parquet key-value metadata the cells it holds (and their non-ok statuses) and the older parts
  it replaces. ``live_files`` turns a partition's files into the ones to read so that each
  cell's rows are read exactly once, whatever step of a compaction was interrupted.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping, Sequence

import pyarrow.fs as pafs

from adv_core.results import Status

METRICS, EXAMPLES, MODELS, RUNS, REPORTS = "metrics", "examples", "models", "runs", "reports"
TABLES = (METRICS, EXAMPLES)
# Hive partition keys of both tables: ROOT/<table>/sweep=<name>/run=<run_id>/<file>.parquet.
PARTITION_KEYS = ("sweep", "run")

PARQUET = ".parquet"
TMP_PREFIX = ".tmp-"
COMPACTED_PREFIX = "part-"
INDEX_FILE = "_index.json"
META_CELLS = b"sweeps.cells"
META_SUPERSEDES = b"sweeps.supersedes"
META_STATUS = b"sweeps.status"  # {cell_hash: status} of the cells that are not "ok"

# Checkpoints. The store writes one file per training (the JSON config inside the safetensors
# header's __metadata__ under MODEL_CONFIG_KEY); the two-file folder is the older store layout
# and the format of adv_core.models.save_ensemble.
MODEL_SUFFIX = ".safetensors"
MODEL_CONFIG_KEY = "sweeps.config"
WEIGHTS_FILE, CONFIG_FILE = "weights.safetensors", "config.json"


def resolve(root: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) of a results root: a local folder or a URI (s3://, gs://)."""
    if "://" in root:
        fs, path = pafs.FileSystem.from_uri(root)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(root)


# -- paths ------------------------------------------------------------------------------------
def partition(base: str, table: str, sweep: str, run_id: str) -> str:
    return posixpath.join(base, table, f"sweep={sweep}", f"run={run_id}")


def cell_file(base: str, table: str, sweep: str, run_id: str, cell_hash: str) -> str:
    return posixpath.join(partition(base, table, sweep, run_id), cell_hash + PARQUET)


def index_file(base: str, table: str, sweep: str, run_id: str) -> str:
    return posixpath.join(partition(base, table, sweep, run_id), INDEX_FILE)


def model_file(base: str, train_hash: str) -> str:
    """Sharded by the hash's first two hex digits: at most ~N/256 entries per folder."""
    return posixpath.join(base, MODELS, train_hash[:2], train_hash + MODEL_SUFFIX)


def legacy_model_files(base: str, train_hash: str) -> tuple[str, str]:
    """(weights, config) of the older one-folder-per-training layout."""
    folder = posixpath.join(base, MODELS, train_hash)
    return posixpath.join(folder, WEIGHTS_FILE), posixpath.join(folder, CONFIG_FILE)


def manifest_file(base: str, run_id: str) -> str:
    return posixpath.join(base, RUNS, f"{run_id}.json")


def report_file(base: str, run_id: str, ext: str) -> str:
    return posixpath.join(base, REPORTS, f"{run_id}.{ext}")


def tmp_name(path: str, unique: str) -> str:
    """The temporary sibling ``path`` is written to before the rename."""
    return posixpath.join(
        posixpath.dirname(path), f"{TMP_PREFIX}{unique}-{posixpath.basename(path)}"
    )


# -- names ------------------------------------------------------------------------------------
def name_of(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def is_hidden(path: str) -> bool:
    return name_of(path).startswith((".", "_"))


def is_temporary(path: str) -> bool:
    return name_of(path).startswith(TMP_PREFIX)


def is_result_file(path: str) -> bool:
    return name_of(path).endswith(PARQUET) and not is_hidden(path)


def is_compacted(path: str) -> bool:
    return name_of(path).startswith(COMPACTED_PREFIX)


def cell_of(path: str) -> str:
    """The cell hash a per-cell file is named after."""
    return name_of(path).removesuffix(PARQUET)


def partition_of(path: str) -> tuple[str, str] | None:
    """(sweep, run) from a path inside a partition, or None."""
    parts = path.split("/")
    sweep = [p[6:] for p in parts if p.startswith("sweep=")]
    run = [p[4:] for p in parts if p.startswith("run=")]
    return (sweep[-1], run[-1]) if sweep and run else None


# -- listings ---------------------------------------------------------------------------------
def list_infos(fs: pafs.FileSystem, directory: str, recursive: bool = False) -> list[pafs.FileInfo]:
    sel = pafs.FileSelector(directory, allow_not_found=True, recursive=recursive)
    return [i for i in fs.get_file_info(sel) if i.type == pafs.FileType.File]


def list_files(fs: pafs.FileSystem, directory: str, suffix: str = PARQUET) -> list[str]:
    """Visible files of ``directory`` (not recursive) ending in ``suffix``, sorted."""
    return sorted(
        i.path
        for i in list_infos(fs, directory)
        if i.path.endswith(suffix) and not is_hidden(i.path)
    )


def list_dirs(fs: pafs.FileSystem, directory: str) -> list[str]:
    sel = pafs.FileSelector(directory, allow_not_found=True, recursive=False)
    return sorted(i.path for i in fs.get_file_info(sel) if i.type == pafs.FileType.Directory)


# -- compacted parts --------------------------------------------------------------------------
def compacted_metadata(
    cells: Sequence[str], supersedes: Sequence[str], statuses: Mapping[str, str] | None = None
) -> dict[bytes, bytes]:
    not_ok = {h: str(s) for h, s in (statuses or {}).items() if s != Status.OK}
    return {
        META_CELLS: json.dumps(sorted(cells)).encode(),
        META_SUPERSEDES: json.dumps(sorted(supersedes)).encode(),
        META_STATUS: json.dumps(not_ok, sort_keys=True).encode(),
    }


def meta_list(meta: Mapping[bytes, bytes] | None, key: bytes) -> list[str]:
    raw = (meta or {}).get(key)
    return list(json.loads(raw)) if raw else []


def live_files(files: Mapping[str, Mapping[bytes, bytes] | None]) -> list[str]:
    """The files of one partition to read, given each readable file's key-value metadata
    (None for per-cell files).

    A compacted file listed in another one's ``supersedes`` is skipped (the newer holds its
    rows), and so is a per-cell file whose cell a live compacted file holds (compaction only
    merges finished cells, so that per-cell file is a leftover copy of the same rows).
    """
    parts = [p for p in files if is_compacted(p)]
    dead = {s for p in parts for s in meta_list(files[p], META_SUPERSEDES)}
    live_parts = [p for p in parts if name_of(p) not in dead]
    covered = {c for p in live_parts for c in meta_list(files[p], META_CELLS)}
    singles = [p for p in files if not is_compacted(p) and cell_of(p) not in covered]
    return sorted(live_parts + singles)
