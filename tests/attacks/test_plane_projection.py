"""FAB's projection onto a linearised boundary inside the box (``Norm.plane_fill``): the
one-sort solutions of linf and l2 against independent ones, on small random instances with
unreachable planes, planes already reached (m <= 0), zero weights and unboxed coordinates:
linf against the linear program solved by scipy's ``linprog``; linf and l2 against the
bisection on eps of the base class (``Norm.min_linear_dist`` then ``fill``)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import linprog

from adv_core.norms import Norm, get_norm


def _instances(seed: int, b: int = 300, d: int = 6, inf_rows: bool = False) -> tuple:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(b, d, generator=g, dtype=torch.float64)
    a = a * (torch.rand(b, d, generator=g) > 0.25)  # some zero weights
    room = torch.rand(b, d, generator=g, dtype=torch.float64)
    if inf_rows:  # whole rows without a box (the bisection's no-box case)
        room[torch.rand(b, generator=g) < 0.15] = math.inf
    m = 0.8 * torch.randn(b, generator=g, dtype=torch.float64)  # m <= 0: already reached
    return a, room, m


def _lp_linf(a: torch.Tensor, room: torch.Tensor, m: float) -> float:
    """min eps s.t. r_i <= eps, <a, r> >= m, 0 <= r <= room (variables r_1..r_D, eps)."""
    d = len(a)
    cost = [0.0] * d + [1.0]
    rows = [[1.0 if j == i else 0.0 for j in range(d)] + [-1.0] for i in range(d)]
    rows.append([-float(v) for v in a] + [0.0])
    bounds = [(0.0, float(r)) for r in room] + [(0.0, None)]
    res = linprog(cost, A_ub=rows, b_ub=[0.0] * d + [-m], bounds=bounds, method="highs")
    return float(res.fun) if res.status == 0 else math.inf


def test_linf_matches_the_linear_program() -> None:
    a, room, m = _instances(0, b=120)
    r, dist = get_norm("linf").plane_fill(a, room, m)
    lp = torch.tensor([_lp_linf(a[i], room[i], float(m[i])) for i in range(len(m))])
    assert bool((torch.isinf(lp) == torch.isinf(dist)).all())
    fin = torch.isfinite(lp)
    assert int(fin.sum()) > 60 and int((~fin).sum()) > 5  # both kinds are exercised
    assert torch.allclose(dist[fin], lp[fin].to(dist.dtype), atol=1e-7)
    # r is a solution: reaches m, stays in the box, has norm dist.
    assert bool(((a * r).sum(1)[fin] >= m[fin] - 1e-9).all())
    assert bool((r <= room + 1e-12).all() and (r >= 0).all())
    assert torch.allclose(r.amax(1)[fin & (m > 0)], dist[fin & (m > 0)])


@pytest.mark.parametrize("name", ["linf", "l2"])
@pytest.mark.parametrize("seed", [1, 2])
def test_one_sort_equals_the_bisection(name: str, seed: int) -> None:
    norm = get_norm(name)
    a, room, m = _instances(seed, inf_rows=True)
    r, dist = norm.plane_fill(a, room, m)
    ref = Norm.min_linear_dist(norm, a, room, m)  # the base class's bisection on eps
    r_ref = norm.fill(a, room, torch.where(torch.isfinite(ref), ref, 0.0))
    assert bool((torch.isinf(ref) == torch.isinf(dist)).all())
    fin = torch.isfinite(ref)
    assert torch.allclose(dist[fin], ref[fin], atol=1e-8)
    assert torch.allclose(r[fin], r_ref[fin], atol=1e-8)
    assert bool((r[~fin] == 0).all())


def test_float32_fab_sizes_stay_exact() -> None:
    """At FAB's size and dtype (D = 784, float32) the one-sort step lands on the plane."""
    a, room, m = (t.float() for t in _instances(3, b=64, d=784))
    for name in ("linf", "l2"):
        r, dist = get_norm(name).plane_fill(a, room, 20 * m.abs())
        ok = torch.isfinite(dist)
        assert int(ok.sum()) > 32
        gap = ((a * r).sum(1) - 20 * m.abs())[ok].abs() / (20 * m.abs()[ok])
        assert float(gap.max()) < 1e-4, name


@pytest.mark.parametrize("steps", [1, 3, 12])
def test_newton_equals_the_sort(steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_solve_capped`` with caps slope * brk (Newton's method from t = 0, the sort for rows not settled after
    ``_NEWTON_STEPS``) against ``_invert_capped_sorted`` on many kinks, unboxed entries,
    unreachable m and m <= 0; with 1 and 3 steps most rows take the fallback."""
    from adv_core import norms

    monkeypatch.setattr(norms, "_NEWTON_STEPS", steps)
    monkeypatch.setattr(norms, "_SORT_MAX_D", 0)  # D = 50 would be sorted at once
    g = torch.Generator().manual_seed(5)
    b, d = 400, 50
    slope = torch.rand(b, d, generator=g, dtype=torch.float64) ** 3
    brk = torch.rand(b, d, generator=g, dtype=torch.float64) * (torch.rand(b, d, generator=g) > 0.2)
    brk[torch.rand(b, d, generator=g) < 0.02] = math.inf
    slope = torch.where(brk > 0, slope, 0.0)  # the contract: slope 0 where brk is 0
    reach = torch.where(torch.isfinite(brk), slope * brk, math.inf).sum(1)
    m = torch.rand(b, generator=g, dtype=torch.float64) * 1.3 * reach.clamp_max(30.0)
    m[:20] = -m[:20]  # already reached
    m[20:25] = 1e-30  # tiny: a cancellation would show here
    got = norms._solve_capped(slope, slope * brk, m)  # no 0 * inf: slope > 0 where brk is inf
    want = norms._invert_capped_sorted(slope, brk, m)
    assert bool((torch.isinf(got) == torch.isinf(want)).all())
    fin = torch.isfinite(want)
    assert 300 < int(fin.sum()) < b  # reachable and unreachable rows both exercised
    assert torch.allclose(got[fin], want[fin], rtol=1e-12, atol=0.0)
