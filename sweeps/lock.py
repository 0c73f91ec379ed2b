"""A lease lock stored next to the results, so it works wherever the results live.

    ROOT/locks/<name>.lock    JSON {token, owner, host, pid, expires}

Used to keep two ``sweeps run`` (or ``sweeps nightly``, ``sweeps compact``) processes off the
same run, and scheduled nightlies from overlapping.

- Local roots: the lock file is created with ``os.link`` from a private temporary file, which
  fails if the name exists: creation is atomic. A lock whose owner is a dead process on this
  host, or whose lease has expired, is stale and is taken over (the stale file is first renamed
  to a unique name, which only one contender can do).
- Object stores (s3://, gs://) have no exclusive create in pyarrow, so the lock is a lease with
  write-then-verify: check that no live lease exists, write our token, wait ``settle_s``, and
  read it back; whoever's token is there owns the lock. S3 is strongly consistent for
  read-after-write, so two contenders can only both win if one of them stalls for longer than
  ``settle_s`` between its check and its write. That is why the file layout itself (one file
  per cell, named by its hash; compacted files name the cells they hold) makes duplicate rows
  impossible; the lock only prevents wasted work and run/compaction races.

A held lease is renewed by a daemon thread every ``ttl_s / 3`` seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pyarrow.fs as pafs

LOCKS = "locks"


class LockHeld(RuntimeError):
    """The lock is held by someone else (and we were told not to wait, or waited too long)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LeaseLock:
    def __init__(
        self,
        fs: pafs.FileSystem,
        path: str,
        *,
        ttl_s: float = 120.0,
        settle_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fs, self.path, self.ttl_s, self.settle_s, self.clock = fs, path, ttl_s, settle_s, clock
        self.local = isinstance(fs, pafs.LocalFileSystem)
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.held = False

    # -- lease content ----------------------------------------------------------------------
    def _payload(self) -> bytes:
        return json.dumps({
            "token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
            "expires": self.clock() + self.ttl_s,
        }).encode()  # fmt: skip

    def holder(self) -> dict[str, Any] | None:
        try:
            with self.fs.open_input_stream(self.path) as f:
                data = f.read()
        except (FileNotFoundError, OSError):
            return None
        try:
            info: dict[str, Any] = json.loads(data)
        except json.JSONDecodeError:
            return {"token": None, "expires": 0.0}  # a torn lease is a stale lease
        return info

    def live(self) -> bool:
        """Whether someone holds the lock now (a lease that has not expired, held by a process
        that is alive when it is on this host)."""
        info = self.holder()
        return info is not None and not self._stale(info)

    def _stale(self, info: dict[str, Any]) -> bool:
        if float(info.get("expires", 0.0)) < self.clock():
            return True
        same_host = info.get("host") == socket.gethostname()
        return bool(same_host and isinstance(info.get("pid"), int) and not _pid_alive(info["pid"]))

    def _write(self, path: str) -> None:
        with self.fs.open_output_stream(path) as f:
            f.write(self._payload())

    # -- acquire / release ------------------------------------------------------------------
    def try_acquire(self) -> bool:
        self.fs.create_dir(posixpath.dirname(self.path), recursive=True)
        info = self.holder()
        if info is not None and not self._stale(info):
            return False
        ok = self._acquire_local(info) if self.local else self._acquire_remote()
        if ok:
            self.held = True
            self._start_renewer()
        return ok

    def _acquire_local(self, stale: dict[str, Any] | None) -> bool:
        if stale is not None and not self._remove_stale(stale):
            return False
        tmp = f"{self.path}.tmp-{self.token}"
        with open(tmp, "wb") as f:
            f.write(self._payload())
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def _remove_stale(self, stale: dict[str, Any]) -> bool:
        """Move the stale lease away; if what we moved is not the stale lease (someone took
        over in between), put it back and give up."""
        moved = f"{self.path}.stale-{self.token}"
        try:
            os.rename(self.path, moved)
        except FileNotFoundError:
            return True
        with open(moved, "rb") as f:
            data = f.read()
        try:
            token = json.loads(data).get("token")
        except json.JSONDecodeError:
            token = None
        if token != stale.get("token"):
            with contextlib.suppress(FileExistsError):
                os.link(moved, self.path)
            os.unlink(moved)
            return False
        os.unlink(moved)
        return True

    def _acquire_remote(self) -> bool:
        self._write(self.path)
        time.sleep(self.settle_s)
        info = self.holder()
        return info is not None and info.get("token") == self.token

    def acquire(
        self,
        wait: bool = True,
        timeout_s: float | None = None,
        poll_s: float = 1.0,
        on_wait: Callable[[dict[str, Any] | None], None] | None = None,
    ) -> None:
        """Take the lock; with ``wait`` poll until it is free (or ``timeout_s`` passes).
        ``on_wait`` is told the holder once, when we start waiting."""
        t0 = time.monotonic()
        told = False
        while not self.try_acquire():
            if not wait or (timeout_s is not None and time.monotonic() - t0 > timeout_s):
                raise LockHeld(f"{self.path} is held by {self.holder()}")
            if on_wait is not None and not told:
                on_wait(self.holder())
                told = True
            time.sleep(poll_s)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self.held:
            info = self.holder()
            if info is not None and info.get("token") == self.token:
                with contextlib.suppress(FileNotFoundError, OSError):
                    self.fs.delete_file(self.path)
        self.held = False

    def _start_renewer(self) -> None:
        self._stop.clear()

        def renew() -> None:
            while not self._stop.wait(self.ttl_s / 3):
                info = self.holder()
                if info is None or info.get("token") != self.token:
                    return  # lost it (a takeover after a long stall): stop renewing
                tmp = posixpath.join(posixpath.dirname(self.path), f".tmp-{uuid.uuid4().hex}-lease")
                self._write(tmp)
                self.fs.move(tmp, self.path)

        self._renewer = threading.Thread(target=renew, name=f"lease:{self.path}", daemon=True)
        self._renewer.start()

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def lock_path(base: str, *names: str) -> str:
    return posixpath.join(base, LOCKS, *names) + ".lock"
