"""Linear models: the exact closed form (THEORY.md section 1) is achievable and optimal, and
white-box attacks reach it.

Binary models: every white-box attack equals ``exact`` for linf, l2 and l1, with and without
the [0, 1] box, up to boundary ties (tie_tolerance). Two approximate optimisers get 1% more:
random-start PGD with a fixed step under l2/l1 (it hovers near the optimum on the sphere) and
CW (Adam on a penalty, few steps); with no random start PGD/EOT/BPDA are exact. Multiclass models: the
targeted attack that tries every runner-up class (APGD-T, n_targets = C - 1) equals ``exact``;
untargeted ones can only be weaker, never stronger than the closed form.
"""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.attacks.exact import Exact
from adv_core.checks import tie_tolerance
from adv_core.config import attacks as ac
from adv_core.norms import get_norm
from adv_core.rng import generator
from tests.attacks.conftest import linear_problem

EPS = {"linf": (0.0, 0.05, 0.1, 0.2), "l2": (0.0, 0.1, 0.3, 0.6), "l1": (0.0, 0.2, 0.5, 1.0)}
BOXES = {"box": (0.0, 1.0), "nobox": None}


def robust_counts(cfg: object, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bounds):  # type: ignore[no-untyped-def]
    res = attacks.build(cfg)(model, x, y, cfg.eps, bounds=bounds, generator=generator("cf"))  # type: ignore[attr-defined]
    return (~res.success).sum(1), res


def white_box(norm: str, c: int) -> list[object]:
    e = EPS[norm]
    out = [
        ac.FgsmAttack(norm=norm, eps=e),
        ac.PgdAttack(norm=norm, eps=e, steps=10, loss="margin", random_start=False),
        ac.PgdAttack(norm=norm, eps=e, steps=30, rel_step=0.1),
        ac.EotPgdAttack(norm=norm, eps=e, steps=10, samples=1, random_start=False),
        ac.BpdaAttack(norm=norm, eps=e, steps=10, loss="margin", random_start=False),
        ac.ApgdAttack(norm=norm, eps=e, steps=40, loss="dlr_targeted", n_targets=c - 1),
        ac.MinNormAttack(norm=norm, eps=e, base=ac.FgsmAttack(norm=norm), max_eps=2 * e[-1],
                         bisection_steps=12),
    ]  # fmt: skip
    if norm == "l2":
        # the default search (9 steps from c = 1e-3, lr 0.01) with fewer Adam steps than the
        # default 1000: 200 reach the closed form on this problem
        out.append(ac.CwAttack(eps=e, steps=200))
    return out


CASES = [(norm, box, cfg) for norm in EPS for box in BOXES for cfg in white_box(norm, 2)]


@pytest.mark.parametrize(
    ("norm", "box", "cfg"), CASES, ids=[f"{n}-{b}-{c.name}" for n, b, c in CASES]
)
def test_binary_white_box_equals_exact(norm: str, box: str, cfg: object) -> None:
    model, x, y = linear_problem(2)
    bounds = BOXES[box]
    n_exact, _ = robust_counts(ac.ExactAttack(norm=norm, eps=EPS[norm]), model, x, y, bounds)
    n_got, _ = robust_counts(cfg, model, x, y, bounds)
    random_start = getattr(cfg, "random_start", False) and cfg.name == "pgd"  # type: ignore[attr-defined]
    approximate = (random_start and norm != "linf") or cfg.name == "cw"  # type: ignore[attr-defined]
    slack = len(y) // 100 if approximate else 0
    assert (n_got - n_exact).abs().max() <= tie_tolerance(len(y)) + slack, (n_got, n_exact)
    assert bool((n_got >= n_exact).all()) or cfg.name == "cw", "nothing beats the closed form"  # type: ignore[attr-defined]
    assert n_exact[-1] < n_exact[0] - 5, "the test must exercise non-trivial eps"


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("norm", list(EPS))
def test_multiclass_targeted_equals_exact_and_nothing_beats_it(norm: str, box: str) -> None:
    model, x, y = linear_problem(5)
    bounds = BOXES[box]
    n_exact, _ = robust_counts(ac.ExactAttack(norm=norm, eps=EPS[norm]), model, x, y, bounds)
    targeted = ac.ApgdAttack(norm=norm, eps=EPS[norm], steps=20, loss="dlr_targeted", n_targets=4)
    n_t, _ = robust_counts(targeted, model, x, y, bounds)
    tol = tie_tolerance(len(y)) + (3 if box == "box" and norm == "l1" else 0)
    assert (n_t - n_exact).abs().max() <= tol, (n_t, n_exact)
    for cfg in (
        ac.FgsmAttack(norm=norm, eps=EPS[norm]),
        ac.PgdAttack(norm=norm, eps=EPS[norm], steps=10),
    ):
        n_u, _ = robust_counts(cfg, model, x, y, bounds)
        assert bool((n_u >= n_exact - tie_tolerance(len(y))).all()), (cfg.name, n_u, n_exact)
    assert n_exact[-1] < n_exact[0] / 2


@pytest.mark.parametrize(
    ("norm", "box"),
    [(n, b) for n in EPS for b in BOXES] + [("l0", "box")],  # l0 without a box: see below
)
def test_exact_is_achieved_and_distances_agree(norm: str, box: str) -> None:
    """The closed form's own x_adv breaks every example it calls broken, inside ball and box,
    and its exact distances put each example on the right side of every eps."""
    bounds = BOXES[box]
    eps = EPS.get(norm, (0.0, 1.0, 2.0, 4.0))
    model, x, y = linear_problem(4, n=150)
    _, res = robust_counts(ac.ExactAttack(norm=norm, eps=eps), model, x, y, bounds)
    nrm = get_norm(norm)
    for e, xa, s in zip(res.epsilons, res.x_adv, res.success, strict=True):
        assert float(nrm.norm(xa - x).max()) <= e + 1e-5
        wrong = model(xa).argmax(1) != y
        assert int((s & ~wrong).sum()) <= tie_tolerance(len(y)), "claimed breaks must be real"
        by_dist = res.distances <= e
        assert int((by_dist != s).sum()) <= tie_tolerance(len(y))
    if bounds is not None:
        assert all(float(xa.min()) >= 0 and float(xa.max()) <= 1 for xa in res.x_adv)


def test_exact_l0_needs_a_box() -> None:
    model, x, y = linear_problem(2, n=10)
    with pytest.raises(ValueError, match="unbounded"):
        attacks.build(ac.ExactAttack(norm="l0", eps=(1.0,)))(model, x, y, (1.0,), bounds=None)


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("norm", list(EPS))
def test_min_norm_distances_match_the_closed_form(norm: str, box: str) -> None:
    model, x, y = linear_problem(2, n=100)
    bounds, max_eps, steps = BOXES[box], 2 * EPS[norm][-1], 12
    _, ex = robust_counts(ac.ExactAttack(norm=norm, eps=EPS[norm]), model, x, y, bounds)
    cfg = ac.MinNormAttack(norm=norm, eps=EPS[norm], base=ac.FgsmAttack(norm=norm),
                           max_eps=max_eps, bisection_steps=steps)  # fmt: skip
    _, mn = robust_counts(cfg, model, x, y, bounds)
    reach = ex.distances <= max_eps
    assert torch.equal(torch.isfinite(mn.distances), reach)
    gap = (mn.distances[reach] - ex.distances[reach]).abs()
    assert float(gap.max()) <= max_eps / 2**steps * 2 + 1e-4


def test_cw_distances_bound_the_exact_ones_from_above() -> None:
    model, x, y = linear_problem(3, n=60)
    _, ex = robust_counts(ac.ExactAttack(norm="l2", eps=(0.0,)), model, x, y, None)
    _, cw = robust_counts(ac.CwAttack(eps=(0.0,), steps=60), model, x, y, None)
    ok = torch.isfinite(cw.distances) & (ex.distances > 0)
    assert int(ok.sum()) > 0.8 * int((ex.distances > 0).sum())
    ratio = cw.distances[ok] / ex.distances[ok]
    assert float(ratio.min()) >= 1 - 1e-3 and float(ratio.median()) <= 1.05


@pytest.mark.parametrize("box", sorted(BOXES))
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_exact_robust_at_counts_what_the_full_exact_attack_records(norm: str, box: str) -> None:
    """``Exact.robust_at`` (the cell's exact reference counts, no adversarial points built)
    gives, eps by eps, the robust set the exact attack's own run records."""
    model, x, y = linear_problem(3)
    cfg = ac.ExactAttack(norm=norm, eps=EPS[norm])  # type: ignore[arg-type]
    n_rob, res = robust_counts(cfg, model, x, y, BOXES[box])
    exact = attacks.build(cfg)
    assert isinstance(exact, Exact)
    robust = exact.robust_at(model, x, y, EPS[norm], BOXES[box])
    assert [r.tolist() for r in robust] == [(~s).tolist() for s in res.success]
    assert [int(r.sum()) for r in robust] == n_rob.tolist() and n_rob[0] > n_rob[-1]
