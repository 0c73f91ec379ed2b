"""Item 1 (AutoAttack part): our ``autoattack standard`` against the reference AutoAttack
package (pyautoattack) and torchattacks' AutoAttack, time and strength side by side. (Item 3's
curve from one minimum-norm run is benchmarks/curve_bench.py.)"""

from __future__ import annotations

import time

import torch

from benchmarks.core import Measurement, Scale
from benchmarks.fixtures import EPS, Target, targets
from benchmarks.reference_attacks import ours_autoattack, reference_autoattack

BOX = (0.0, 1.0)
EPS_L2 = 1.0  # l2 budget on MNIST (784 inputs in [0, 1]), the RobustBench-style setting
L2_BATCH = 200  # full scale, l2: fewer points (the CNN's reference run takes minutes)


def torchattacks_autoattack(t: Target, eps: float, steps: int, queries: int) -> tuple[float, float]:
    """(robust accuracy, seconds) of torchattacks.AutoAttack standard linf (its own settings,
    with our iteration and query counts)."""
    import torchattacks

    atk = torchattacks.AutoAttack(t.model, norm="Linf", eps=eps, version="standard", seed=0)
    for sub in atk._autoattack.attacks:  # APGD, APGDT, FAB (steps), Square (n_queries)
        for name, value in (("steps", steps), ("n_queries", queries)):
            if hasattr(sub, name):
                setattr(sub, name, value)
    t0 = time.perf_counter()
    x_adv = atk(t.x, t.y)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        return float((t.model(x_adv).argmax(1) == t.y).float().mean()), seconds


def bench_vs_autoattack(
    t: Target, scale: Scale, norm: str = "linf", eps: float = EPS
) -> Measurement:
    full = scale.name == "full"
    steps, queries = (100, 5000) if full else (scale.steps, 20)
    x, y = t.x, t.y
    ours_s, ref_s, ours, ref = [], [], 0.0, 0.0
    cpu: dict[str, list[float]] = {"ours": [], "pyautoattack": []}  # process CPU seconds
    for _ in range(scale.repeats):  # interleaved, best of each
        c0 = time.process_time()
        ref, s = reference_autoattack(t.model, x, y, norm, eps, steps=steps, square_queries=queries)
        cpu["pyautoattack"].append(time.process_time() - c0)
        ref_s.append(s)
        c0 = time.process_time()
        ours, s, res = ours_autoattack(
            t.model, x, y, norm, eps, steps=steps, square_queries=queries
        )
        cpu["ours"].append(time.process_time() - c0)
        ours_s.append(s)
    ta, ta_s = torchattacks_autoattack(t, eps, steps, queries) if norm == "linf" else (None, None)
    o, r = min(ours_s), min(ref_s)
    # On the shared machine the wall-clock ratio follows the others' load; with one torch
    # thread the CPU-time ratio is the steadier one (both recorded).
    cpu_ratio = min(cpu["ours"]) / max(min(cpu["pyautoattack"]), 1e-9)
    return Measurement(
        "1 autoattack vs pyautoattack",
        f"{t.name} {norm} {eps} standard, batch {len(y)}, {steps} it, {queries} queries",
        o / r, 0.8, ours_s=o, reference_s=r, reference="pyautoattack",
        details={
            "robust_acc_ours": ours, "robust_acc_pyautoattack": ref,
            "robust_acc_torchattacks": ta, "torchattacks_s": ta_s,
            "examples_above_reference": round((ours - ref) * len(y)),
            "component_robust_acc": res.info["component_robust_acc"][0].tolist(),
            "passes_per_point": [res.n_forward / len(y), res.n_backward / len(y)],
            "samples": {"ours": ours_s, "pyautoattack": ref_s},
            "cpu_s": cpu, "cpu_ratio": cpu_ratio,
        },
    )  # fmt: skip


def run(scale: Scale) -> list[Measurement]:
    """Item 1b at linf (eps 0.1) and l2 (eps 1.0); item 3's minimum-norm curve is
    benchmarks/curve_bench.py."""
    full = scale.name == "full"
    fit = {"epochs": 2 if full else 1, "n_train": 2000 if full else 256}
    out = [bench_vs_autoattack(t, scale) for t in targets(500 if full else scale.batch, **fit)]
    l2 = targets(L2_BATCH if full else scale.batch, **fit)
    return out + [bench_vs_autoattack(t, scale, "l2", EPS_L2) for t in l2]
