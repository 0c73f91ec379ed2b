"""Boolean masks against float arithmetic on CPU, at the size of an l2 attack step (rows x 784).

The l2 solves (``adv_core.norms``) and Square's and FAB's row selections were rewritten from
comparisons, ``torch.where`` and ``isfinite`` over (B, D) to float arithmetic (``sign``,
``clamp``, ``lerp``, ``nan_to_num``) after this measurement: on the torch build here a
comparison or a ``where`` costs several to 30 float operations of the same size
(BENCHMARKS.md, "Float masks"). Run: ``python -m benchmarks.float_masks [rows]``; milliseconds
per call, best of 5 rounds of 200 calls on one thread (the same tensors every call, so the
data stays in cache: the ratios are the kernels', not the memory's).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

from cluster.allocator import tune_allocator


def per_call_ms(fn: Callable[[], object], calls: int = 200, rounds: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e3


def cases(rows: int, d: int = 784) -> dict[str, Callable[[], object]]:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(rows, d, generator=g), torch.randn(rows, d, generator=g)
    mask, row_mask = a > 0, torch.rand(rows, generator=g) > 0.5
    weight, row_weight = mask.to(a.dtype), row_mask.to(a.dtype)[:, None]
    return {
        "a * b (float op)": lambda: a * b,
        "a.clamp_min(0)": lambda: a.clamp_min(0),
        "a.sign().clamp_min(0) (a > 0 as floats)": lambda: a.sign().clamp_min(0),
        "a > 0 (comparison)": lambda: a > 0,
        "torch.isfinite(a)": lambda: torch.isfinite(a),
        "mask.all(dim=1)": lambda: mask.all(dim=1),
        "torch.where(mask, a, 0.0)": lambda: torch.where(mask, a, 0.0),
        "a * weight (the same, float mask)": lambda: a * weight,
        "torch.where(row_mask[:, None], a, b)": lambda: torch.where(row_mask[:, None], a, b),
        "torch.lerp(b, a, row_weight) (the same)": lambda: torch.lerp(b, a, row_weight),
        "torch.nan_to_num(a)": lambda: torch.nan_to_num(a, nan=0.0, posinf=0.0),
    }


def main(argv: list[str]) -> None:
    rows = int(argv[0]) if argv else 290
    tune_allocator()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, CPU {torch.backends.cpu.get_cpu_capability()}, {rows} x 784")
    for name, fn in cases(rows).items():
        print(f"{per_call_ms(fn):8.3f} ms  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
