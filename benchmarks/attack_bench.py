"""Items 1-3: PGD against torchattacks, an attack step against the floor, and the
robust-accuracy curve over many eps (the cascade) against one eps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from adv_core import attacks
from adv_core.attacks.base import predict_correct
from adv_core.config.attacks import PgdAttack
from adv_core.rng import generator
from benchmarks.core import Measurement, Scale, best, interleaved
from benchmarks.fixtures import EPS, REL_STEP, Target, small_targets, targets


def ours_pgd(t: Target, steps: int, epsilons: list[float]) -> Callable[[], attacks.AttackResult]:
    """Our PGD (linf, random start, one restart) as used by run_cell."""
    cfg = PgdAttack(norm="linf", eps=tuple(epsilons), steps=steps, restarts=1, rel_step=REL_STEP)
    attack = attacks.build(cfg)

    def run() -> attacks.AttackResult:
        gen = generator("bench-attack", t.name)
        return attack(t.model, t.x, t.y, epsilons, bounds=t.bounds, generator=gen)

    return run


def torchattacks_pgd(t: Target, steps: int, eps: float = EPS) -> Any:
    """torchattacks.PGD with our budget, step size, steps and random start."""
    import torchattacks

    return torchattacks.PGD(t.model, eps=eps, alpha=REL_STEP * eps, steps=steps, random_start=True)


def reference_pgd(t: Target, steps: int, eps: float = EPS) -> Callable[[], torch.Tensor]:
    """The reference side of item 1: torchattacks' PGD on the same batch."""
    atk = torchattacks_pgd(t, steps, eps)

    def run() -> torch.Tensor:
        torch.manual_seed(0)
        return atk(t.x, t.y)

    return run


def floor_loop(t: Target, x: torch.Tensor, y: torch.Tensor, steps: int) -> Callable[[], None]:
    """The floor: ``steps`` x (one forward + one input-gradient backward), nothing else."""

    def run() -> None:
        for _ in range(steps):
            xi = x.detach().requires_grad_(True)
            loss = F.cross_entropy(t.model(xi), y, reduction="sum")
            torch.autograd.grad(loss, xi)

    return run


def bench_vs_torchattacks(t: Target, scale: Scale) -> Measurement:
    """Item 1: ours / torchattacks PGD time at equal settings, with both robust accuracies
    (at the target's own budget when it has one: the small-input targets)."""
    eps = getattr(t, "eps", EPS)
    sides = {
        "ours": ours_pgd(t, scale.steps, [eps]),
        "torchattacks": reference_pgd(t, scale.steps, eps),
    }
    samples, last = interleaved(sides, scale.repeats)
    ours_acc = float(last["ours"].robust_acc()[0])
    with torch.no_grad():
        ref_acc = float(predict_correct(t.model, last["torchattacks"], t.y).float().mean())
    clean = float(predict_correct(t.model, t.x, t.y).float().mean())
    o, r = best(samples["ours"]), best(samples["torchattacks"])
    return Measurement(
        "1 pgd vs torchattacks",
        f"{t.name} linf {scale.steps} steps, batch {len(t.y)}",
        o / r,
        0.9,
        ours_s=o,
        reference_s=r,
        reference="torchattacks",
        details={
            "robust_acc_ours": ours_acc,
            "robust_acc_torchattacks": ref_acc,
            "clean_acc": clean,
            "eps": eps,
            "equal_or_lower_robust_acc": ours_acc <= ref_acc,
            "samples": samples,
        },
    )


def bench_eps_grid_vs_torchattacks(t: Target, scale: Scale, n_eps: int = 4) -> Measurement:
    """Item 1, as a cell uses it (issue 17 item 7): our PGD over a cell's ``n_eps`` budgets
    (eps / 2, eps, 3 eps / 2, 2 eps) in one call, against torchattacks' PGD called once per
    budget (it takes one eps per call). Same steps, step size (REL_STEP * eps), random start."""
    eps = getattr(t, "eps", EPS)
    grid = [eps * (k + 1) / 2 for k in range(n_eps)]
    refs = [reference_pgd(t, scale.steps, e) for e in grid]
    sides: dict[str, Callable[[], Any]] = {
        "ours": ours_pgd(t, scale.steps, grid),
        "torchattacks": lambda: [run() for run in refs],
    }
    samples, last = interleaved(sides, scale.repeats)
    with torch.no_grad():
        ref_acc = [
            float(predict_correct(t.model, xa, t.y).float().mean()) for xa in last["torchattacks"]
        ]
    o, r = best(samples["ours"]), best(samples["torchattacks"])
    return Measurement(
        "1 pgd vs torchattacks",
        f"{t.name} linf {scale.steps} steps, {n_eps} eps, batch {len(t.y)}",
        o / r,
        0.9,
        ours_s=o,
        reference_s=r,
        reference="torchattacks per eps",
        details={
            "eps": grid,
            "robust_acc_ours": [float(a) for a in last["ours"].robust_acc()],
            "robust_acc_torchattacks": ref_acc,
            "samples": samples,
        },
    )


def bench_vs_floor(t: Target, scale: Scale) -> Measurement:
    """Item 2: time per PGD step vs one bare forward + input-gradient backward.

    Both run on the clean-correct examples (the ones PGD attacks), ``steps`` iterations; our
    side also pays its fixed work (clean check, random start, final check)."""
    keep = predict_correct(t.model, t.x, t.y)
    sub = Target(t.name, t.model, t.x[keep], t.y[keep], t.bounds)
    sides = {
        "ours": ours_pgd(sub, scale.steps, [EPS]),
        "floor": floor_loop(sub, sub.x, sub.y, scale.steps),
    }
    samples, _ = interleaved(sides, scale.repeats)
    o, f = best(samples["ours"]) / scale.steps, best(samples["floor"]) / scale.steps
    return Measurement(
        "2 attack step vs floor",
        f"{t.name} per step, batch {len(sub.y)}",
        o / f,
        1.10,
        ours_s=o,
        reference_s=f,
        reference="fwd+bwd",
        details={"steps": scale.steps, "samples": samples},
    )


def bench_cascade(t: Target, scale: Scale, eps_max: float = EPS) -> Measurement:
    """Item 3: one call over ``n_eps`` budgets up to ``eps_max`` (the cascade) vs one eps, where
    one eps is a per-eps loop (one call per budget, timed as a whole) / the number of budgets.

    The cascade attacks at each eps only what survived the previous one, so its cost tracks the
    area under the robust-accuracy curve: near the loop's when most examples stay robust over
    the grid, far below it when the curve falls to zero early."""
    grid = [eps_max * (k + 1) / scale.n_eps for k in range(scale.n_eps)]
    singles = [ours_pgd(t, scale.steps, [e]) for e in grid]

    def per_eps_loop() -> list[attacks.AttackResult]:
        return [run() for run in singles]

    sides: dict[str, Callable[[], Any]] = {
        "cascade": ours_pgd(t, scale.steps, grid),
        "per_eps_loop": per_eps_loop,
    }
    # The model is warm from items 1-2; each round here costs about 2 x n_eps attacks.
    samples, last = interleaved(sides, max(1, scale.repeats - 1), warmup=0)
    cascade, loop = best(samples["cascade"]), best(samples["per_eps_loop"])
    one = loop / len(grid)
    loop_acc = [float(r.robust_acc()[0]) for r in last["per_eps_loop"]]
    return Measurement(
        "3 eps curve vs one eps",
        f"{t.name} {scale.n_eps} eps to {eps_max:g}, batch {len(t.y)}",
        cascade / one,
        3.0,
        ours_s=cascade,
        reference_s=one,
        reference="one eps",
        details={
            "per_eps_loop_s": loop,
            "vs_per_eps_loop": cascade / loop,
            "eps": grid,
            "robust_acc": [float(a) for a in last["cascade"].robust_acc()],
            "robust_acc_per_eps_loop": loop_acc,
            "samples": samples,
        },
    )


def run(scale: Scale) -> list[Measurement]:
    out: list[Measurement] = []
    full = scale.name == "full"
    ts = targets(scale.batch, epochs=2 if full else 1, n_train=2000 if full else 256)
    for t in ts:
        out.append(bench_vs_torchattacks(t, scale))
    for st in small_targets():  # issue 17 item 7: small inputs, where overhead dominates
        out.append(bench_vs_torchattacks(st, scale))
        out.append(bench_eps_grid_vs_torchattacks(st, scale))
    for t in ts:
        out.append(bench_vs_floor(t, scale))
    out.append(bench_cascade(ts[0], scale))  # robust accuracy stays high over the grid
    out.append(bench_cascade(ts[0], scale, eps_max=3 * EPS))  # ... falls to about zero
    return out
