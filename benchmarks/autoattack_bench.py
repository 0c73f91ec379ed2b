"""Item 1 (AutoAttack part) and item 3: our ``autoattack standard`` against the reference
AutoAttack package (pyautoattack) and torchattacks' AutoAttack, time and strength side by side;
and the robust-accuracy curve at n_eps budgets from one minimum-norm run (FAB, optionally with
``confirm``) against one fixed-eps APGD (APGD-CE + APGD-T, 9 targets), on an MLP, a CNN and an
adversarially trained CNN. Costs are reported in seconds and in model passes per point."""

from __future__ import annotations

import time
from typing import Any

import torch

from adv_core import attacks
from adv_core.config.attacks import ApgdAttack, FabAttack
from adv_core.config.training import PgdAtTraining
from adv_core.models import new_ensemble
from adv_core.rng import generator
from adv_core.training import train
from benchmarks.core import Measurement, Scale
from benchmarks.fixtures import EPS, Target, targets
from benchmarks.reference_attacks import ours_autoattack, reference_autoattack

BOX = (0.0, 1.0)


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


def bench_vs_autoattack(t: Target, scale: Scale) -> Measurement:
    full = scale.name == "full"
    steps, queries = (100, 5000) if full else (scale.steps, 20)
    x, y = t.x, t.y
    ours_s, ref_s, ours, ref = [], [], 0.0, 0.0
    for _ in range(scale.repeats):  # interleaved, best of each
        ref, s = reference_autoattack(
            t.model, x, y, "linf", EPS, steps=steps, square_queries=queries
        )
        ref_s.append(s)
        ours, s, res = ours_autoattack(
            t.model, x, y, "linf", EPS, steps=steps, square_queries=queries
        )
        ours_s.append(s)
    ta, ta_s = torchattacks_autoattack(t, EPS, steps, queries)
    o, r = min(ours_s), min(ref_s)
    return Measurement(
        "1 autoattack vs pyautoattack",
        f"{t.name} linf {EPS} standard, batch {len(y)}, {steps} it, {queries} queries",
        o / r, 0.8, ours_s=o, reference_s=r, reference="pyautoattack",
        details={
            "robust_acc_ours": ours, "robust_acc_pyautoattack": ref,
            "robust_acc_torchattacks": ta, "torchattacks_s": ta_s,
            "examples_above_reference": round((ours - ref) * len(y)),
            "component_robust_acc": res.info["component_robust_acc"][0].tolist(),
            "passes_per_point": [res.n_forward / len(y), res.n_backward / len(y)],
            "samples": {"ours": ours_s, "pyautoattack": ref_s},
        },
    )  # fmt: skip


def adversarial_cnn(t: Target, epochs: int) -> Target:
    """The CNN fixture's architecture, PGD-trained (linf 0.1, 5 steps) on the same data."""
    from adv_core import data
    from benchmarks.fixtures import _dataset_cfg

    bundle = data.load(_dataset_cfg(), 2000 if epochs > 1 else 256, len(t.y), 0)
    ens = new_ensemble(t.model.model_cfg, bundle.input_shape, 10, 1, 0)
    cfg = PgdAtTraining(epochs=epochs, batch_size=128, lr=1e-3, eps=EPS, steps=5)
    train(ens, bundle, cfg, generator("bench-at", 0), torch.device("cpu"))
    return Target("cnn-at", ens.eval(), bundle.x_test, bundle.y_test, t.bounds)


def _run(attack: Any, t: Target, eps: tuple[float, ...]) -> tuple[float, attacks.AttackResult]:
    t0 = time.perf_counter()
    res = attack(t.model, t.x, t.y, eps, bounds=t.bounds, generator=generator("curve", t.name))
    return time.perf_counter() - t0, res


def bench_curve(t: Target, scale: Scale, confirm: bool) -> Measurement:
    """Item 3: one minimum-norm run (FAB, 100 steps) for the whole curve vs one fixed-eps APGD;
    strength: the largest gap to per-eps APGD over the grid (goal: within 1 point)."""
    grid = tuple(2 * EPS * (k + 1) / scale.n_eps for k in range(scale.n_eps))
    steps = 100 if scale.name == "full" else scale.steps
    apgd = attacks.build(ApgdAttack(eps=grid, steps=steps, loss="auto", n_targets=9))
    per_eps = [_run(apgd, t, (e,)) for e in grid]
    one_s = sum(s for s, _ in per_eps) / len(grid)
    one_passes = sum(r.n_forward + r.n_backward for _, r in per_eps) / len(grid)
    fab = attacks.build(FabAttack(eps=grid, steps=steps, confirm=confirm))
    curve_s, curve = _run(fab, t, grid)
    ref_acc = [float(r.robust_acc()[0]) for _, r in per_eps]
    acc = [float(a) for a in curve.robust_acc()]
    gap = max(a - r for a, r in zip(acc, ref_acc, strict=True))
    return Measurement(
        "3 eps curve via min-norm vs one eps",
        f"{t.name} fab{' + confirm' if confirm else ''}, {len(grid)} eps to {grid[-1]:g}, "
        f"batch {len(t.y)}",
        curve_s / one_s, 3.0, ours_s=curve_s, reference_s=one_s, reference="one eps APGD",
        details={
            "eps": list(grid), "robust_acc": acc, "robust_acc_apgd_per_eps": ref_acc,
            "max_points_above_apgd": 100 * gap, "within_1_point": gap <= 0.01,
            "passes_ratio": (curve.n_forward + curve.n_backward) / one_passes,
            "passes_per_point": [curve.n_forward / len(t.y), curve.n_backward / len(t.y)],
            "min_norm_gap": curve.info.get("min_norm_gap"),
        },
    )  # fmt: skip


def run(scale: Scale) -> list[Measurement]:
    full = scale.name == "full"
    batch = 500 if full else scale.batch
    ts = targets(batch, epochs=2 if full else 1, n_train=2000 if full else 256)
    out = [bench_vs_autoattack(t, scale) for t in ts]
    models = [*ts, adversarial_cnn(ts[1], 2 if full else 1)]
    for t in models:
        for confirm in (False, True):
            out.append(bench_curve(t, scale, confirm))
    return out
