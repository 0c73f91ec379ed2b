"""The C allocator of a CPU worker, tuned so that torch's large temporaries are reused.

glibc serves every allocation above its mmap threshold (at most 32 MiB, adjusted dynamically)
with a fresh ``mmap`` and hands it back with ``munmap`` when freed, and trims the heap's top
above 128 KiB. An attack step on a batch of images allocates activations of tens of MiB
(the CNN fixture's first conv on 1000 MNIST points: 50 MB) and frees them within the step, so
every step maps them afresh and the kernel zero-fills every page on first touch: measured on
APGD linf, 20 steps, 1000 points, one thread, 1.5 million minor page faults and 7.0-7.4 s of
CPU, against 0 faults and 4.0-4.2 s with both thresholds raised (peak RSS 0.96 -> 1.0 GB;
BENCHMARKS.md "The allocator of a CPU worker"). Either threshold alone is not enough: a high
mmap threshold alone lets the heap trim the same pages away (6.4-6.9 s), a high trim threshold
alone keeps the mmaps (10-11 s).

``mallopt`` is glibc's documented interface for this (the same knobs as the environment
variables ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, which must be set before a
process starts; a Ray actor is already running when it can act). jemalloc or tcmalloc would
cache large blocks too, but must be installed and preloaded (``LD_PRELOAD``) before the worker
starts; glibc's own knob needs neither. Nothing changes numerically.
Elsewhere (macOS, musl) it does nothing. Opt out with ``SWEEPS_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # larger blocks than any one temporary of a cell: from the heap
MMAP_THRESHOLD_MAX = 32 << 20  # what older glibc accepts at most
TRIM_THRESHOLD = (1 << 31) - 1  # freed memory stays in the heap for the next step
ENV = "SWEEPS_MALLOC_TUNING"


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds in this process; True when both were taken."""
    if os.environ.get(ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mapped = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) or mallopt(
        M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX
    )
    trimmed = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(mapped) and bool(trimmed)
