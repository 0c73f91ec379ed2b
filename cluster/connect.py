"""Connecting to Ray: an embedded local cluster bound to 127.0.0.1, or an existing cluster by
address (with Ray's token authentication when the cluster uses it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import ray

LOCAL_ENV_DEFAULTS = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep a local cluster on 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage reports leave the machine
}


def resolve_token(token: str | None = None) -> str | None:
    """The Ray auth token: the argument, RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if token:
        return token
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"]
    for candidate in (
        os.environ.get("RAY_AUTH_TOKEN_PATH"),
        str(Path.home() / ".ray" / "auth_token"),
    ):
        if candidate and Path(candidate).is_file():
            text = Path(candidate).read_text().strip()
            if text:
                return text
    return None


def short_temp_dir() -> str:
    """Ray's Unix sockets need paths under 107 bytes: keep the session folder short."""
    base = os.environ.get("SWEEPS_RAY_TMP") or (
        "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    )
    path = os.path.join(base, f"rs-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    token: str | None = None,
    object_store_mb: int = 256,
    runtime_env: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start or join Ray (idempotent). Returns a description of what it connected to."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return {"address": "existing", "local": address is None}
    if address:
        tok = resolve_token(token)
        if tok:
            os.environ["RAY_AUTH_TOKEN"] = tok
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        return {"address": address, "local": False}
    for k, v in LOCAL_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    ray.init(
        num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
        object_store_memory=object_store_mb * 1024 * 1024, _temp_dir=short_temp_dir(),
        log_to_driver=True, runtime_env=runtime_env,
    )  # fmt: skip
    return {"address": "local", "local": True}


def disconnect() -> None:
    if ray.is_initialized():
        ray.shutdown()
