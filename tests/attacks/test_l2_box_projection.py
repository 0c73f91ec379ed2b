"""The l2 ball intersected with the box, solved exactly (``norms._fill_scale``), and the l1
ball with the box (``norms._l1_box_theta``, against a float64 bisection):
``L2.project_box`` (APGD/PGD l2 projections), ``L2.fill`` (FAB, steepest ascent in the box) and
Square l2's ``_l2_finish`` against independent solutions: a float64 bisection on the scale of
the KKT path (what the code did before, run to 60 halvings here) and, for the projection, the
definition itself (no feasible point is closer than the answer)."""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.attacks.square import adapt_step
from adv_core.config.attacks import SquareAttack
from adv_core.norms import L1, L2


def _bisect_scale(a: torch.Tensor, room: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Largest t with ||min(a t, room)||_2 <= eps (every coordinate saturated when the box
    allows less), by bisection in float64."""
    a, room, eps = a.double(), room.double(), eps.double()
    norm = lambda t: torch.minimum(a * t[:, None], room).norm(dim=1)  # noqa: E731
    lo = torch.zeros_like(eps)
    hi = torch.where(a > 0, room / a.clamp_min(1e-300), 0.0).amax(dim=1).clamp_min(1.0) * 2
    hi = torch.maximum(hi, eps / a.norm(dim=1).clamp_min(1e-300))
    for _ in range(200):
        mid = (lo + hi) / 2
        ok = norm(mid) <= eps
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return lo


def _instance(seed: int, b: int = 400, d: int = 40) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(b, d, generator=g)
    x0[:, : d // 4] = 0.0  # at the box's edge (digits' black background)
    x0[: b // 10, d // 4 : d // 2] = 1.0
    delta = torch.randn(b, d, generator=g) * torch.rand(b, 1, generator=g) * 3
    delta[: b // 20] = 0.0  # nothing to project
    eps = torch.rand(b, generator=g) * 2
    return x0, delta, eps


def test_project_box_matches_the_bisection_and_is_feasible() -> None:
    x0, delta, eps = _instance(0)
    got = L2().project_box(delta, eps, 1 - x0, x0)
    room = torch.where(delta > 0, 1 - x0, x0)
    scale = _bisect_scale(delta.abs(), room, eps).clamp_max(1.0)
    ref = torch.maximum(torch.minimum(delta.double() * scale[:, None], 1 - x0), -x0)
    assert (got.double() - ref).abs().max() < 1e-6
    assert (got.norm(dim=1) <= eps * (1 + 1e-6)).all()
    assert ((x0 + got) >= 0).all() and ((x0 + got) <= 1 + 1e-7).all()
    inside = torch.maximum(torch.minimum(delta, 1 - x0), -x0).norm(dim=1) <= eps
    assert torch.equal(got[inside], torch.maximum(torch.minimum(delta, 1 - x0), -x0)[inside])


def test_rows_inside_the_box_take_the_balls_closed_form() -> None:
    """A delta inside the box (APGD's box-respecting ascent step) stays inside for every scale
    <= 1, so its projection is the ball's; rows leaving the box are solved. Both kinds in one
    batch, each against the bisection."""
    g = torch.Generator().manual_seed(4)
    b, d = 200, 30
    x0 = 0.2 + 0.6 * torch.rand(b, d, generator=g)
    delta = (torch.rand(b, d, generator=g) - 0.5) * 0.4  # |delta| <= 0.2: inside the box
    delta[b // 2 :, :3] = 0.9  # these rows leave it
    eps = 0.2 + torch.rand(b, generator=g)
    got = L2().project_box(delta, eps, 1 - x0, x0)
    room = torch.where(delta > 0, 1 - x0, x0)
    scale = _bisect_scale(delta.abs(), room, eps).clamp_max(1.0)
    ref = torch.maximum(torch.minimum(delta.double() * scale[:, None], 1 - x0), -x0)
    assert (got.double() - ref).abs().max() < 1e-6
    ball = delta[: b // 2] * (eps[: b // 2] / delta[: b // 2].norm(dim=1)).clamp_max(1)[:, None]
    assert torch.allclose(got[: b // 2], ball, atol=1e-7)
    assert not torch.allclose(
        got[b // 2 :],
        delta[b // 2 :] * (eps[b // 2 :] / delta[b // 2 :].norm(dim=1)).clamp_max(1)[:, None],
    )


def test_project_box_is_the_closest_feasible_point() -> None:
    x0, delta, eps = _instance(1, b=60, d=12)
    got = L2().project_box(delta, eps, 1 - x0, x0)
    g = torch.Generator().manual_seed(2)
    for _ in range(50):  # random feasible points: none is closer to delta
        cand = (torch.rand(x0.shape, generator=g) - x0) * torch.rand(len(x0), 1, generator=g)
        cand = cand * (eps / cand.norm(dim=1).clamp_min(1e-12)).clamp_max(1.0)[:, None]
        assert ((cand - delta).norm(dim=1) >= (got - delta).norm(dim=1) - 1e-5).all()


def test_fill_matches_the_bisection() -> None:
    x0, delta, eps = _instance(3)
    a, room = delta.abs(), torch.where(delta > 0, 1 - x0, x0)
    got = L2().fill(a, room, eps)
    scale = _bisect_scale(a, room, eps)
    ref = torch.minimum(a.double() * scale[:, None], room.double())
    assert (got.double() - ref).abs().max() < 1e-5
    live = torch.where(a > 0, room, 0.0)  # room along a
    saturated = live.norm(dim=1) < eps  # the box allows less than eps: every room used
    assert torch.allclose(got[saturated], live[saturated])
    assert torch.allclose(got[~saturated].norm(dim=1), eps[~saturated], rtol=1e-5)


def test_square_l2_proposal_spends_the_budget_inside_the_box() -> None:
    x0, delta, eps = _instance(4)
    sq = attacks.build(SquareAttack(norm="l2", eps=(0.5,)))
    out = sq._l2_finish(x0, delta, eps, (0.0, 1.0))  # type: ignore[attr-defined]
    assert (out >= 0).all() and (out <= 1).all()
    moved = (out - x0).norm(dim=1)
    room = torch.where(delta > 0, 1 - x0, x0) * (delta != 0)
    can = room.norm(dim=1)  # the most the box allows in delta's orthant
    want = torch.minimum(eps, can)
    assert torch.allclose(moved, want, rtol=1e-4, atol=1e-6)
    assert ((out - x0) * delta >= 0).all()  # along delta's signs only


def test_one_fifth_rule() -> None:
    """adapt_step: one accepted proposal in five leaves a step where it was (x 1.2, then four
    times x 1.2^-1/4); all accepted grows it, none shrinks it, both within the range."""
    step = torch.tensor([0.5, 0.5, 0.5, 3.9, 0.11])
    for k in range(5):
        step = adapt_step(step, torch.tensor([k == 0, True, False, True, False]))
    assert torch.allclose(step[0], torch.tensor(0.5))
    assert torch.allclose(step[1], torch.tensor(0.5 * 1.2**5))
    assert torch.allclose(step[2], torch.tensor(0.5 * 1.2**-1.25))
    assert step[3] == 4.0 and step[4] == 0.1  # clamped to the range


def test_square_l2_step_adds_a_window_of_the_steps_norm() -> None:
    """The "step" proposal on 3-channel 8 x 8 images without a box: the new perturbation is
    (delta + s) rescaled to norm eps, s living in one 4 x 4 window (p = 1/4) with norm
    step * eps * sqrt(16 / 64). Recovered from the output: outside the window the output is
    delta times one scale k, so s = out / k - delta."""
    gen = torch.Generator().manual_seed(3)
    n = 6
    x0 = torch.rand(n, 3, 8, 8, generator=gen)
    delta = torch.randn(n, 3, 8, 8, generator=gen)
    eps = torch.full((n,), 0.7)
    delta = delta / delta.flatten(1).norm(dim=1)[:, None, None, None] * eps[:, None, None, None]
    step = torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0, 4.0])
    sq = attacks.build(SquareAttack(norm="l2", eps=(0.7,)))
    out = sq._propose_l2(x0, x0 + delta, eps, 0.25, None, gen, step)  # type: ignore[attr-defined]
    moved = out - x0
    assert torch.allclose(moved.flatten(1).norm(dim=1), eps, rtol=1e-5)  # on the sphere
    for i in range(n):
        ratio = moved[i] / delta[i]
        k = ratio.flatten().median()  # most entries are outside the window
        s = moved[i] / k - delta[i]
        inside = (s.abs() > 1e-5).any(dim=0)  # (8, 8): the window's pixels
        rows, cols = inside.nonzero().unbind(1)
        assert int(inside.sum()) == 16 and rows.max() - rows.min() == 3
        assert cols.max() - cols.min() == 3
        assert torch.allclose(s.norm(), step[i] * 0.7 * 0.5, rtol=1e-4), (i, s.norm())


def _l1_box_bisection(
    delta: torch.Tensor, eps: torch.Tensor, up: torch.Tensor, down: torch.Tensor
) -> torch.Tensor:
    """The l1 ball-and-box projection by 200 float64 bisection steps on theta (independent)."""
    d = delta.double()
    room = torch.where(d > 0, up.double(), down.double()).clamp_min(0)
    a = d.abs()

    def shrunk(theta: torch.Tensor) -> torch.Tensor:
        return torch.minimum((a - theta[:, None]).clamp_min(0), room)

    lo, hi = torch.zeros(len(d), dtype=torch.float64), a.amax(dim=1)
    for _ in range(200):
        mid = (lo + hi) / 2
        ok = shrunk(mid).sum(dim=1) <= eps.double()
        hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
    inside = shrunk(torch.zeros_like(lo)).sum(dim=1) <= eps.double()
    return d.sign() * shrunk(torch.where(inside, torch.zeros_like(hi), hi))


@pytest.mark.parametrize("dim", [1, 5, 64, 784])
def test_l1_project_box_matches_the_bisection(dim: int) -> None:
    """L1.project_box (one sort over the kinks) equals a float64 bisection, is feasible, and
    leaves points already inside alone; entries at the box's edge (room 0) and ties included."""
    gen = torch.Generator().manual_seed(dim)
    n = 200
    x0 = torch.rand(n, dim, generator=gen)
    x0[:, : dim // 3] = 0.0  # a black background: no room downwards
    delta = torch.randn(n, dim, generator=gen) * torch.rand(n, 1, generator=gen)
    delta[:, -1] = delta[:, 0]  # ties
    eps = torch.rand(n, generator=gen) * dim / 4
    eps[:5] = 1e-4
    up, down = 1 - x0, x0
    got = L1().project_box(delta, eps, up, down)
    ref = _l1_box_bisection(delta, eps, up, down)
    assert (got.double() - ref).abs().max() < 1e-5
    assert (got.abs().sum(dim=1) <= eps * (1 + 1e-6) + 1e-7).all()  # in the ball
    assert (got <= up + 1e-7).all() and (-got <= down + 1e-7).all()  # in the box
    small = torch.minimum(delta, up).maximum(-down) * 1e-3  # well inside both
    assert torch.equal(L1().project_box(small, eps.clamp_min(1.0), up, down), small)
    inf = torch.full_like(up, float("inf"))  # no box: the ball's own projection (Duchi et al.)
    free = L1().project_box(delta, eps, inf, inf)
    assert torch.allclose(free, L1().project(delta, eps), atol=1e-5)
