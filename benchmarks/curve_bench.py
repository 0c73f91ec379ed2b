"""Item 3 (minimum-norm part): the robust-accuracy curve at 8 eps from one minimum-norm run,
against ONE fixed-eps APGD (APGD-CE + APGD-T with 9 targets), on an MLP, a CNN and a
PGD-trained CNN; strength against per-eps APGD (the same APGD run separately at each eps).

Sides, all at the same APGD iteration count ``steps``:
- baseline: APGD-CE + APGD-T at each eps separately; its robust accuracy per eps is the
  strength reference, and one fixed-eps APGD costs its total / 8 (the mean over the grid);
- ``fab`` alone (``steps`` iterations): one search, the whole curve from the distances;
- ``fab`` (``fab_steps``) + ``confirm``: the same APGD-CE + APGD-T at ``steps`` iterations
  confirming what the search left robust (``adv_core.attacks.confirm``: one eps per example,
  top down, all eps batched in one call per round).

Cost is reported as CPU seconds of this process (1 torch thread, so other processes on a shared
machine slow both sides' wall clocks but not their CPU time), wall seconds, and model passes
per point (``n_forward`` + ``n_backward``, machine-independent); the ratio is on CPU seconds.
"""

from __future__ import annotations

import os
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

N_EPS = 8


def adversarial_cnn(t: Target, epochs: int) -> Target:
    """The CNN fixture's architecture, PGD-trained (linf 0.1, 5 steps) on the same data."""
    from adv_core import data
    from benchmarks.fixtures import _dataset_cfg

    bundle = data.load(_dataset_cfg(), 2000 if epochs > 1 else 256, len(t.y), 0)
    ens = new_ensemble(t.model.model_cfg, bundle.input_shape, 10, 1, 0)
    cfg = PgdAtTraining(epochs=epochs, batch_size=128, lr=1e-3, eps=EPS, steps=5)
    train(ens, bundle, cfg, generator("bench-at", 0), torch.device("cpu"))
    return Target("cnn-at", ens.eval(), bundle.x_test, bundle.y_test, t.bounds)


class Cost:
    """CPU seconds, wall seconds and model passes of one or more attack calls."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0
        self.passes = self.forward = self.backward = 0

    def run(self, attack: Any, t: Target, eps: tuple[float, ...]) -> attacks.AttackResult:
        g = generator("curve", t.name)
        c0, w0 = time.process_time(), time.perf_counter()
        res = attack(t.model, t.x, t.y, eps, bounds=t.bounds, generator=g)
        self.cpu += time.process_time() - c0
        self.wall += time.perf_counter() - w0
        self.forward += res.n_forward
        self.backward += res.n_backward
        self.passes += res.n_forward + res.n_backward
        return res


def _row(
    t: Target, label: str, grid: tuple[float, ...], cost: Cost, res: attacks.AttackResult,
    base: Cost, ref_acc: list[float],
) -> Measurement:  # fmt: skip
    n = len(t.y)
    one_cpu, one_passes = base.cpu / len(grid), base.passes / len(grid)
    acc = [float(a) for a in res.robust_acc()]
    gap = max(a - r for a, r in zip(acc, ref_acc, strict=True))
    return Measurement(
        "3 eps curve via min-norm vs one eps",
        f"{t.name} {label}, {len(grid)} eps to {grid[-1]:g}, batch {n}, "
        f"max {100 * gap:+.0f} points vs per-eps APGD (CPU s)",
        cost.cpu / one_cpu, 3.0, ours_s=cost.cpu, reference_s=one_cpu,
        reference="one eps APGD-CE+T",
        details={
            "eps": list(grid), "robust_acc": acc, "robust_acc_apgd_per_eps": ref_acc,
            "points_above_apgd": [round(100 * (a - r), 2) for a, r in zip(acc, ref_acc, strict=True)],
            "max_points_above_apgd": 100 * gap, "within_1_point": gap <= 0.01 + 1e-9,
            "passes_ratio": cost.passes / one_passes,
            "wall_ratio": cost.wall / (base.wall / len(grid)),
            "wall_s": cost.wall, "one_eps_wall_s": base.wall / len(grid),
            "passes_per_point": [cost.forward / n, cost.backward / n],
            "one_eps_passes_per_point": [base.forward / len(grid) / n,
                                         base.backward / len(grid) / n],
            "min_norm_gap": res.info.get("min_norm_gap"),
            "confirm_rounds": res.info.get("confirm_rounds"),
        },
    )  # fmt: skip


def bench_curve(t: Target, steps: int, fab_steps: int) -> list[Measurement]:
    """The two curve rows for one model (fab alone, fab + confirm) against the same baseline."""
    grid = tuple(2 * EPS * (k + 1) / N_EPS for k in range(N_EPS))
    apgd = ApgdAttack(eps=grid, steps=steps, loss="auto", n_targets=9)
    base = Cost()
    ref_acc = [float(base.run(attacks.build(apgd), t, (e,)).robust_acc()[0]) for e in grid]
    out = []
    for label, cfg in (
        (f"fab {steps} steps", FabAttack(eps=grid, steps=steps)),
        (
            f"fab {fab_steps} steps + confirm (APGD-CE+T {steps} steps)",
            FabAttack(eps=grid, steps=fab_steps, confirm=apgd.model_copy(update={"eps": (EPS,)})),
        ),
    ):
        cost = Cost()
        res = cost.run(attacks.build(cfg), t, grid)
        out.append(_row(t, label, grid, cost, res, base, ref_acc))
    return out


def run(scale: Scale) -> list[Measurement]:
    """Full size: 100 points per model, the reference's 100 APGD iterations on every side
    (about 3 minutes for the three models on one idle core; ``BENCH_CURVE_STEPS`` and
    ``BENCH_CURVE_POINTS`` change them), FAB max(10, steps / 5) steps before confirm; quick: the
    scale's batch and steps."""
    full = scale.name == "full"
    batch = int(os.environ.get("BENCH_CURVE_POINTS", 100)) if full else scale.batch
    steps = int(os.environ.get("BENCH_CURVE_STEPS", 100)) if full else scale.steps
    fab_steps = max(10, steps // 5) if full else steps
    ts = targets(batch, epochs=2 if full else 1, n_train=2000 if full else 256)
    out: list[Measurement] = []
    for t in [*ts, adversarial_cnn(ts[1], 2 if full else 1)]:
        out += bench_curve(t, steps, fab_steps)
    return out
