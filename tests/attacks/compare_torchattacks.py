"""Robust accuracy of every attack on one MLP (or CNN) trained on digits, next to torchattacks.

Run: ``.venv/bin/python -m tests.attacks.compare_torchattacks [--eps 0.1] [--n-eval 400]
[--model mlp|cnn]``.
Prints one table row per attack (linf at --eps unless stated; l2 rows at --l2-eps, the "vs AA"
and "autoattack standard" rows against the AutoAttack package (pyautoattack) instead of
torchattacks; the l0 row
counts pixels; transfer rows craft on a second MLP (seed 1) and compare with torchattacks' PGD
crafted on that source with all steps; min_norm rows compare with the exact closed form on a
linear model; fooling's number is the fraction of uniform-noise inputs NOT labelled with
confidence > 0.9). torchattacks is a reference only; it never runs inside adv_core.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from adv_core import attacks
from adv_core.config import attacks as ac
from adv_core.config.data import DigitsData
from adv_core.config.models import CnnModel, LinearModel, MlpModel, ModelConfig
from adv_core.config.training import StandardTraining
from adv_core.data import load
from adv_core.data.base import DataBundle
from adv_core.models import Ensemble, new_ensemble
from adv_core.rng import generator
from adv_core.training import train

MODELS: dict[str, ModelConfig] = {
    "mlp": MlpModel(width=64, depth=2),
    "cnn": CnnModel(channels=16, hidden=64),
}


def trained_mlp(n_eval: int, seed: int = 0, model: str = "mlp") -> tuple[Ensemble, DataBundle]:
    """A one-member model (``MODELS[model]``) trained 40 epochs on 1000 digits."""
    bundle = load(DigitsData(), 1000, n_eval, seed)
    ens = new_ensemble(MODELS[model], bundle.input_shape, 10, 1, seed)
    train(
        ens,
        bundle,
        StandardTraining(epochs=40, batch_size=64, lr=3e-3),
        generator("t", seed),
        torch.device("cpu"),
    )
    return ens.eval(), bundle


def ours(eps: float, l2_eps: float) -> dict[str, object]:
    return {
        "fgsm": ac.FgsmAttack(eps=(eps,)),
        "pgd (20 steps)": ac.PgdAttack(eps=(eps,), steps=20),
        "pgd (50 steps, 2 restarts)": ac.PgdAttack(eps=(eps,), steps=50, restarts=2, rel_step=0.1),
        "pgd margin (50 steps)": ac.PgdAttack(eps=(eps,), steps=50, loss="margin", rel_step=0.1),
        "apgd ce (100)": ac.ApgdAttack(eps=(eps,), steps=100),
        "apgd dlr (100)": ac.ApgdAttack(eps=(eps,), steps=100, loss="dlr"),
        "apgd dlr_targeted (100 x 3)": ac.ApgdAttack(eps=(eps,), steps=100, loss="dlr_targeted"),
        "apgd dlr_targeted (100 x 9)": ac.ApgdAttack(
            eps=(eps,), steps=100, loss="dlr_targeted", n_targets=9
        ),
        "apgd auto (ce + t-dlr)": ac.ApgdAttack(eps=(eps,), steps=100, loss="auto"),
        "eot_pgd (20 steps, 4 samples)": ac.EotPgdAttack(eps=(eps,), steps=20, samples=4),
        "bpda (20 steps)": ac.BpdaAttack(eps=(eps,), steps=20),
        "square (1000 queries)": ac.SquareAttack(eps=(eps,), queries=1000),
        "min_norm(pgd) at eps": ac.MinNormAttack(
            eps=(eps,), base=ac.PgdAttack(steps=20), max_eps=0.5
        ),
        "fooling (pure noise, eps = 0)": ac.FoolingAttack(eps=(0.0,)),
        "fooling (eps = radius)": ac.FoolingAttack(eps=(eps,)),
        f"pgd l2 eps={l2_eps:.2f}": ac.PgdAttack(norm="l2", eps=(l2_eps,), steps=50, rel_step=0.1),
        f"cw l2 eps={l2_eps:.2f}": ac.CwAttack(eps=(l2_eps,)),
        f"square l2 eps={l2_eps:.2f} (1000 q)": ac.SquareAttack(
            norm="l2", eps=(l2_eps,), queries=1000
        ),
        f"square l2 eps={l2_eps:.2f} p 0.8 vs AA": ac.SquareAttack(
            norm="l2", eps=(l2_eps,), queries=1000, p_init=0.8
        ),
        "sparse l0 k=4": ac.SparseAttack(eps=(4.0,), steps=20),
        "fab (untargeted, 100)": ac.FabAttack(eps=(eps,), steps=100),
        "autoattack standard vs AA": ac.AutoAttackConfig(eps=(eps,)),
        f"autoattack standard l2 eps={l2_eps:.2f} vs AA": ac.AutoAttackConfig(
            norm="l2", eps=(l2_eps,)
        ),
    }


def reference(model: Ensemble, eps: float, l2_eps: float) -> dict[str, Callable]:
    import torchattacks as ta
    from pyautoattack import AutoAttack
    from pyautoattack.square import SquareAttack as AaSquare

    def aa_square(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The AutoAttack package's Square (the authors' code), its defaults but 1000 queries."""
        return AaSquare(model, norm="L2", eps=l2_eps, n_queries=1000, p_init=0.8).perturb(x, y)

    def aa(norm: str, e: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The AutoAttack package's ``standard`` version (its defaults: 100 iterations, 5000
        Square queries), as our ``autoattack`` config's defaults."""
        adv = AutoAttack(model, norm=norm, eps=e, version="standard", seed=0)
        return lambda x, y: adv.run_standard_evaluation(x, y, batch_size=len(y))[0]

    return {
        "autoattack standard vs AA": lambda: aa("Linf", eps),
        f"autoattack standard l2 eps={l2_eps:.2f} vs AA": lambda: aa("L2", l2_eps),
        "fab (untargeted, 100)": lambda: ta.FAB(model, eps=eps, steps=100, n_classes=10),
        f"square l2 eps={l2_eps:.2f} p 0.8 vs AA": lambda: aa_square,
        "fgsm": lambda: ta.FGSM(model, eps=eps),
        "pgd (20 steps)": lambda: ta.PGD(
            model, eps=eps, alpha=eps / 4, steps=20, random_start=True
        ),
        "pgd (50 steps, 2 restarts)": lambda: ta.PGD(model, eps=eps, alpha=eps / 10, steps=50),
        "apgd ce (100)": lambda: ta.APGD(model, eps=eps, steps=100, loss="ce"),
        "apgd dlr (100)": lambda: ta.APGD(model, eps=eps, steps=100, loss="dlr"),
        # torchattacks' APGDT always attacks the 9 runner-up classes: compared at 9 targets
        "apgd dlr_targeted (100 x 9)": lambda: ta.APGDT(model, eps=eps, steps=100, n_classes=10),
        "eot_pgd (20 steps, 4 samples)": lambda: ta.EOTPGD(
            model, eps=eps, alpha=eps / 4, steps=20, eot_iter=4
        ),
        "square (1000 queries)": lambda: ta.Square(model, eps=eps, n_queries=1000),
        f"pgd l2 eps={l2_eps:.2f}": lambda: ta.PGDL2(
            model, eps=l2_eps, alpha=l2_eps / 10, steps=50
        ),
        f"cw l2 eps={l2_eps:.2f}": lambda: ta.CW(model, c=1.0, steps=100, lr=0.05),
        f"square l2 eps={l2_eps:.2f} (1000 q)": lambda: ta.Square(
            model, norm="L2", eps=l2_eps, n_queries=1000
        ),
    }


def transfer_rows(target: Ensemble, bundle: DataBundle, eps: float) -> None:
    """Transfer from a second MLP (seed 1): ours vs torchattacks' PGD crafted on the source
    (all 20 steps, no early exit) and scored on the target."""
    import torchattacks as ta

    source, _ = trained_mlp(len(bundle.y_test), seed=1)
    x, y = bundle.x_test, bundle.y_test
    for e in (eps, 1.5 * eps):
        cfg = ac.TransferAttack(eps=(e,), base=ac.PgdAttack(steps=20))
        atk = attacks.build(cfg).with_source(source)  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        res = atk(target, x, y, (e,), bounds=(0.0, 1.0), generator=generator("transfer"))
        t1 = time.perf_counter()
        xr = ta.PGD(source, eps=e, alpha=e / 4, steps=20, random_start=True)(x, y)
        t2 = time.perf_counter()
        with torch.no_grad():
            ref = float((target(xr).argmax(1) == y).float().mean())
        name = f"transfer pgd20 eps={e:.2f} (seed-1 src)"
        print(
            f"{name:34s} {float(res.robust_acc()[-1]):7.3f} {t1 - t0:6.2f} {ref:13.3f} {t2 - t1:6.2f}"
        )


def min_norm_rows(bundle: DataBundle) -> None:
    """min_norm(pgd) on a linear model trained on digits vs the exact (closed-form) value."""
    lin = new_ensemble(LinearModel(), bundle.input_shape, 10, 1, 0)
    train(lin, bundle, StandardTraining(epochs=40, batch_size=64, lr=3e-3),
          generator("t", 0), torch.device("cpu"))  # fmt: skip
    lin = lin.eval()
    x, y, eps = bundle.x_test, bundle.y_test, (0.01, 0.02, 0.05)
    exact = attacks.build(ac.ExactAttack(eps=eps))(lin, x, y, eps, bounds=(0.0, 1.0))
    cfg = ac.MinNormAttack(eps=eps, base=ac.PgdAttack(steps=20), max_eps=0.05)
    t0 = time.perf_counter()
    res = attacks.build(cfg)(lin, x, y, eps, bounds=(0.0, 1.0), generator=generator("mn"))
    t1 = time.perf_counter()
    for k, e in enumerate(eps):
        name = f"min_norm(pgd) linear eps={e:.2f}"
        ours_k, ex_k = float(res.robust_acc()[k]), float(exact.robust_acc()[k])
        print(f"{name:34s} {ours_k:7.3f} {t1 - t0:6.2f} {ex_k:13.3f} (exact)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--n-eval", type=int, default=400)
    ap.add_argument("--l2-eps", type=float, default=0.5)
    ap.add_argument("--only", default="", help="run only attacks whose name contains this")
    ap.add_argument("--model", choices=sorted(MODELS), default="mlp")
    args = ap.parse_args()
    torch.manual_seed(0)
    model, bundle = trained_mlp(args.n_eval, model=args.model)
    x, y = bundle.x_test, bundle.y_test
    l2_eps = args.l2_eps
    clean = float((model(x).argmax(1) == y).float().mean())
    print(f"{MODELS[args.model]!r} on digits 8x8, n_eval={len(y)}, clean acc {clean:.3f}")
    print(f"{'attack':34s} {'ours':>7s} {'s':>6s} {'torchattacks':>13s} {'s':>6s}")
    refs = reference(model, args.eps, l2_eps)
    for name, cfg in ours(args.eps, l2_eps).items():
        if args.only not in name:
            continue
        t0 = time.perf_counter()
        res = attacks.build(cfg)(model, x, y, cfg.eps, bounds=(0.0, 1.0), generator=generator(name))  # type: ignore[attr-defined]
        t1 = time.perf_counter()
        ref, t_ref = "", ""
        if name in refs:
            atk = refs[name]()
            t2 = time.perf_counter()
            xr = atk(x, y)
            t_ref = f"{time.perf_counter() - t2:6.2f}"
            with torch.no_grad():
                robust = model(xr).argmax(1) == y
            # torchattacks' CW is not budgeted: a point counts as broken only within l2_eps.
            robust |= (
                (xr - x).flatten(1).norm(dim=1) > l2_eps * (1 + 1e-6) if "cw" in name else False
            )
            ref = f"{float(robust.float().mean()):13.3f}"
        print(
            f"{name:34s} {float(res.robust_acc()[-1]):7.3f} {t1 - t0:6.2f} {ref:>13s} {t_ref:>6s}"
        )
    if args.only in "transfer":
        transfer_rows(model, bundle, args.eps)
    if args.only in "min_norm linear":
        min_norm_rows(bundle)


if __name__ == "__main__":
    main()
