"""Connecting to Ray: an embedded local cluster bound to 127.0.0.1, or an existing cluster by
address (with Ray's token authentication when the cluster uses it). Ray is imported only when
a connection is made, so commands that merely read tokens or specs stay fast."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

LOCAL_ENV_DEFAULTS = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep a local cluster on 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage reports leave the machine
}
# Ray warns on every local start that it turned token authentication on by default; the
# cluster keeps it on, the warning is only shown with --verbose.
TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
VERBOSE_ENV = "SWEEPS_VERBOSE"  # "1": Ray's INFO logs on the driver (sweeps --verbose)


def ray_log_level() -> int:
    """Ray's driver log level: INFO with SWEEPS_VERBOSE=1, else WARNING (quiet by default)."""
    return logging.INFO if os.environ.get(VERBOSE_ENV) == "1" else logging.WARNING


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


_CONNECTED: dict[str, Any] = {}


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    token: str | None = None,
    object_store_mb: int = 256,
    runtime_env: dict[str, Any] | None = None,
    dashboard: bool = False,
) -> dict[str, Any]:
    """Start or join Ray (idempotent). Returns what it connected to: ``address``, ``local`` and
    ``dashboard`` (the dashboard URL, or None when the cluster runs none)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        if _CONNECTED.get("gcs") == ray.get_runtime_context().gcs_address:
            return dict(_CONNECTED)
        return {"address": "existing", "local": address is None, "dashboard": None}
    if address:
        tok = resolve_token(token)
        if tok:
            os.environ["RAY_AUTH_TOKEN"] = tok
        ctx = ray.init(
            address=address,
            runtime_env=runtime_env,
            log_to_driver=True,
            logging_level=ray_log_level(),
        )
        return _remember({"address": address, "local": False, "dashboard": _url(ctx)})
    for k, v in LOCAL_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    if ray_log_level() > logging.INFO:
        logging.getLogger(TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)
    ctx = ray.init(
        num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
        dashboard_host="127.0.0.1", object_store_memory=object_store_mb * 1024 * 1024,
        _temp_dir=short_temp_dir(), log_to_driver=True, runtime_env=runtime_env,
        logging_level=ray_log_level(),
    )  # fmt: skip
    return _remember({"address": "local", "local": True, "dashboard": _url(ctx)})


def _url(ctx: Any) -> str | None:
    url = getattr(ctx, "dashboard_url", None)
    if not url:
        return None
    return str(url) if "://" in str(url) else f"http://{url}"


def _remember(info: dict[str, Any]) -> dict[str, Any]:
    import ray

    _CONNECTED.clear()
    _CONNECTED.update(info, gcs=ray.get_runtime_context().gcs_address)
    return dict(_CONNECTED)
