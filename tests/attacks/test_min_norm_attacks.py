"""FAB and FMN write each example's smallest adversarial distance: on linear models they must
land on the exact minimal distances (closed form, ``exact``), never below; ``confirm`` runs a
fixed-eps attack on what the search left and flags ``min_norm_gap`` when that breaks more."""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.attacks.base import correct
from adv_core.attacks.fab import to_plane
from adv_core.attacks.min_norm import MinimumNorm
from adv_core.checks import tie_tolerance
from adv_core.config import attacks as ac
from adv_core.norms import get_norm
from adv_core.rng import generator
from tests.attacks.conftest import linear_problem

BOX = (0.0, 1.0)
EPS = (0.05, 0.1, 0.2)


def _exact(model: object, x: torch.Tensor, y: torch.Tensor, norm: str) -> attacks.AttackResult:
    return attacks.build(ac.ExactAttack(norm=norm, eps=EPS))(model, x, y, bounds=BOX)  # type: ignore[arg-type]


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize(
    "make",
    [
        lambda n: ac.FabAttack(norm=n, eps=EPS, steps=20),
        lambda n: ac.FabAttack(norm=n, eps=EPS, steps=20, targeted=True, n_targets=3),
        lambda n: ac.FmnAttack(norm=n, eps=EPS, steps=100),
    ],
    ids=["fab", "fab-t", "fmn"],
)
def test_distances_land_on_the_exact_ones(norm: str, make: object) -> None:
    model, x, y = linear_problem(4, n=150)
    exact = _exact(model, x, y, norm)
    cfg = make(norm)  # type: ignore[operator]
    res = attacks.build(cfg)(model, x, y, bounds=BOX, generator=generator("mn"))
    assert res.distances is not None and exact.distances is not None
    ok = torch.isfinite(exact.distances) & (exact.distances > 0)
    ratio = res.distances[ok] / exact.distances[ok]
    assert float(ratio.min()) >= 1 - 1e-3, "no attack beats the exact minimal distance"
    assert float(ratio.median()) <= 1.01
    assert int(torch.isinf(ratio).sum()) <= 2
    # One run gives the whole curve: within a few examples of the exact one at every eps.
    diff = (res.robust_acc() - exact.robust_acc()).abs().max()
    assert float(diff) <= 6 / len(y)
    assert res.n_backward > 0 and res.n_forward > 0


def test_to_plane_is_the_closest_point_of_the_plane_in_the_box() -> None:
    """Against brute force: the step reaches the plane, stays in the box, and no random
    feasible point on the plane is closer."""
    g = torch.Generator().manual_seed(0)
    for name in ("linf", "l2", "l1"):
        norm = get_norm(name)
        w = torch.randn(20, 6, generator=g, dtype=torch.float64)
        t = torch.rand(20, 6, generator=g, dtype=torch.float64)
        c = 0.3 * torch.randn(20, generator=g, dtype=torch.float64)
        d = to_plane(norm, w, c, 1 - t, t)
        on_plane = ((w * d).sum(1) - c).abs() < 1e-6
        assert int(on_plane.sum()) >= 15  # the rest: the plane lies beyond the box
        assert bool(((t + d) >= -1e-9).all() and ((t + d) <= 1 + 1e-9).all())
        for _ in range(200):  # random feasible points on the plane
            z = torch.rand(20, 6, generator=g, dtype=torch.float64)
            k = w.abs().argmax(1)
            rows = torch.arange(20)
            z[rows, k] = 0
            need = c + (w * t).sum(1) - (w * z).sum(1)
            zk = need / w[rows, k]
            z[rows, k] = zk
            feasible = (zk >= 0) & (zk <= 1) & on_plane
            dz = norm.norm(z - t)
            assert bool((norm.norm(d)[feasible] <= dz[feasible] + 1e-6).all()), name


def test_confirm_finds_the_gap_of_a_weak_search(digits_mlp: tuple) -> None:
    """FMN cut to 3 steps misses points; APGD-CE + APGD-T on the survivors breaks more, the
    row flags ``min_norm_gap``, and the confirmed curve is at least as strong as each part."""
    model, x, y = digits_mlp
    x, y = x[:100], y[:100]
    eps = (0.05, 0.1)
    weak = ac.FmnAttack(norm="linf", eps=eps, steps=3)
    alone = attacks.build(weak)(model, x, y, bounds=BOX, generator=generator("c"))
    both = attacks.build(weak.model_copy(update={"confirm": True}))(
        model, x, y, bounds=BOX, generator=generator("c")
    )
    apgd = attacks.build(ac.ApgdAttack(norm="linf", eps=eps, loss="auto", n_targets=9))(
        model, x, y, bounds=BOX, generator=generator("c")
    )
    assert "min_norm_gap" in both.flags and "min_norm_gap" not in alone.flags
    assert sum(both.info["min_norm_gap"]) > 0
    assert bool((both.robust_acc() <= alone.robust_acc()).all())
    assert bool((both.robust_acc() <= apgd.robust_acc() + 2 / len(y)).all())
    assert both.distances is not None and bool((both.distances <= alone.distances).all())
    for k, e in enumerate(eps):  # confirmed points are inside the ball and adversarial
        broken = both.success[k] & ~alone.success[k]
        delta = (both.x_adv[k][broken] - x[broken]).flatten(1).abs().amax(1)
        assert bool((delta <= e + 1e-6).all())
        assert bool((model(both.x_adv[k][broken]).argmax(1) != y[broken]).all())


@pytest.mark.parametrize("norm,eps", [("linf", 0.06), ("l2", 0.5)])
def test_fab_near_apgd_on_an_mlp(digits_mlp: tuple, norm: str, eps: float) -> None:
    model, x, y = digits_mlp
    x, y = x[:100], y[:100]
    fab = attacks.build(ac.FabAttack(norm=norm, eps=(eps,), steps=50))(model, x, y, bounds=BOX)
    apgd = attacks.build(ac.ApgdAttack(norm=norm, eps=(eps,), loss="ce"))(
        model, x, y, bounds=BOX, generator=generator("a")
    )
    assert abs(float(fab.robust_acc()[0]) - float(apgd.robust_acc()[0])) <= 0.05


class Overstated(MinimumNorm):
    """A search that overstates: it reports ``factor`` times the exact minimal distance of a
    linear model (inf: a search that finds nothing), so ``confirm`` must recover the rest."""

    def __init__(self, cfg: ac.FabAttack, confirm: attacks.Attack, factor: float) -> None:
        super().__init__(cfg, confirm)
        self.factor = factor

    def search(self, model, x, y, bounds, generator):  # type: ignore[no-untyped-def]
        far = attacks.build(ac.ExactAttack(norm=self.cfg.norm, eps=(100.0,)))
        res = far(model, x, y, bounds=bounds)
        assert res.distances is not None
        return res.x_adv[0], (self.factor * res.distances).to(x.dtype)


CURVE = {
    "linf": (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2),
    "l2": (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8),
}


@pytest.mark.parametrize(
    ("factor", "reach"),
    [(float("inf"), None), (3.0, None), (1.3, 1.5)],
    ids=["blind", "x3", "x1.3-reach1.5"],
)
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_confirm_recovers_the_exact_curve_from_an_overstating_search(
    norm: str, factor: float, reach: float | None
) -> None:
    """On a linear 4-class model APGD-T over every runner-up class is exact (test_closed_form),
    so a search that overstates every distance, confirmed by it, must give the exact robust
    accuracy at all 8 eps: the top-down cascade may skip an example only where the attack
    failed at a larger eps (and, with ``confirm_reach``, where the search overstated by less
    than the reach). Every point confirm found is re-checked: inside the ball and adversarial."""
    eps = CURVE[norm]
    model, x, y = linear_problem(4, n=200)
    exact = attacks.build(ac.ExactAttack(norm=norm, eps=eps))(model, x, y, bounds=BOX)
    apgd_t = attacks.build(ac.ApgdAttack(norm=norm, steps=20, loss="dlr_targeted", n_targets=3))
    cfg = ac.FabAttack(norm=norm, eps=eps, confirm=True, confirm_reach=reach)
    search = Overstated(cfg, apgd_t, factor)
    got = search(model, x, y, eps, bounds=BOX, generator=generator("ov"))
    n_exact, n_got = (~exact.success).sum(1), (~got.success).sum(1)
    assert n_exact[0] - n_exact[-1] > 50, "the curve must fall over the grid"
    assert (n_got - n_exact).abs().max() <= tie_tolerance(len(y)), (n_got, n_exact)
    assert got.distances is not None and exact.distances is not None
    assert bool((got.distances >= exact.distances * (1 - 1e-4) - 1e-6).all())
    if factor > 1.5:
        assert "min_norm_gap" in got.flags and sum(got.info["min_norm_gap"]) > 30
    confirmed = got.distances < factor * exact.distances  # the fake's own points are far
    for k, e in enumerate(eps):
        s = got.success[k] & confirmed
        delta = get_norm(norm).norm(got.x_adv[k][s] - x[s])
        assert bool((delta <= e * (1 + 1e-5)).all()), (k, float(delta.max()))
        assert bool((~correct(model(got.x_adv[k][s]), y[s])).all())
    # cost: one attack per example the search left robust at some eps, then one more per hit
    # (each hit is an (example, eps) pair of the gap), not one per eps
    rounds = got.info["confirm_rounds"]
    if reach is None:
        assert rounds[0] == int((factor * exact.distances > eps[0]).sum())
    assert sum(rounds[1:]) <= sum(got.info["min_norm_gap"])
