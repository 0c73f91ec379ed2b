"""Small helpers of the cluster tests that start their own Ray clusters or servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for(what: str, cond: Callable[[], bool], timeout_s: float, every_s: float = 0.5) -> None:
    """Poll ``cond`` until it holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
