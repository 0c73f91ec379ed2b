"""Norms as objects (STYLE 4): each owns its projection, random start, steepest-ascent step
and dual norm, so attacks never branch on the norm's name.

Shapes: ``delta`` and ``grad`` are (B, *D); per-example norms are (B,).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

_TINY = 1e-12
_INF = float("inf")
_NEWTON_STEPS = 12  # ``_solve_capped``: rows not settled by then are sorted
_SORT_MAX_D = 64  # ``_solve_capped`` sorts at once up to this D (Square's windows): measured
# on 275 rows, one sort costs 0.2-0.4 ms at D = 9-49 against 0.5-1.0 ms for Newton's loop of
# small operations, the same at D = 81, and 1.7 against 0.9 ms at D = 169


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1)  # (B, D)


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> broadcastable against (B, *D)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _positive(u: torch.Tensor) -> torch.Tensor:
    """1.0 where u > 0, else 0.0 (nan stays nan), by float arithmetic. On CPU a comparison,
    ``torch.where`` or ``isfinite`` over (B, D) costs 5 to 30 float ops (BENCHMARKS.md, "Float
    masks"), and the l2 solves below run in every step of APGD, FAB and Square."""
    return u.sign().clamp_min(0.0)


def _finite_or_zero(t: torch.Tensor) -> torch.Tensor:
    """t with nan and inf replaced by 0 (one float op, no mask)."""
    return torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)


def _solve_capped(
    slope: torch.Tensor, cap: torch.Tensor, m: torch.Tensor, finite: bool = False
) -> torch.Tensor:
    """Smallest t >= 0 (...,) with g(t) = sum_i min(slope_i t, cap_i) >= m, exactly (inf where
    g never reaches m); slope >= 0 and cap >= 0 (inf: never capped) are (..., D).

    Newton's method from t = 0, no sort: g is concave, non-decreasing and piecewise linear, so
    the line of g's segment at t lies above g and meets m at or below the solution, on a later
    segment; the step is exact once t is on the solution's segment (the first step is the
    closed form with nothing capped; MNIST's projections settle in 2-5 steps, where a sort of D
    costs about 30 of them). Each step is float arithmetic over D (which entries are still
    free, cap_i - slope_i t > 0, and the two sums of g's segment), on the rows still moving
    only: once they are at most half of the rows, the others are dropped. Rows not settled
    after ``_NEWTON_STEPS`` steps, and every row when D <= ``_SORT_MAX_D``, go to
    ``_invert_capped_sorted``. ``finite``: the caller knows every cap is finite."""
    d = cap.shape[-1]
    slope2, cap2, m2 = slope.reshape(-1, d), cap.reshape(-1, d), m.reshape(-1)
    if d <= _SORT_MAX_D:  # small D: one sort is cheaper than the loop's small operations
        brk = torch.where(slope2 > 0, cap2 / slope2.clamp_min(_TINY), 0.0)
        return _invert_capped_sorted(slope2, brk, m2).reshape(m.shape)
    capped = cap2 if finite else _finite_or_zero(cap2)  # added once capped (inf: never)
    out = torch.zeros_like(m2)
    rows = torch.arange(len(m2), device=m2.device)  # the working set: rows of out
    sl, cp, cd, mm, t = slope2, cap2, capped, m2, out.clone()
    pending = rows
    for _ in range(_NEWTON_STEPS):
        free = _positive(torch.addcmul(cp, sl, t[:, None], value=-1.0))  # not capped at t
        s = torch.linalg.vecdot(sl, free)  # g(u) = c + s u on the segment at t
        c = torch.linalg.vecdot(cd, 1.0 - free)  # (not total - free: no cancellation)
        step = (mm - c) / torch.where(s > 0, s, 1.0)
        nxt = torch.maximum(torch.where(s > 0, step, torch.where(mm > c, _INF, t)), t)
        moving = (nxt != t) & (nxt != _INF)  # inf: unreachable, settled; nan: moving
        out[rows] = nxt
        n_moving = int(moving.sum())
        if n_moving == 0:
            break
        pending = rows[moving]
        if 2 * n_moving <= len(rows):  # drop the settled rows
            keep = moving.nonzero()[:, 0]
            rows, sl, cp, cd, mm, nxt = (v[keep] for v in (rows, sl, cp, cd, mm, nxt))
        t = nxt
    else:  # rows still moving (or nan): the sort settles them
        sl, cp = slope2[pending], cap2[pending]
        brk = torch.where(sl > 0, cp / sl.clamp_min(_TINY), 0.0)
        out[pending] = _invert_capped_sorted(sl, brk, m2[pending])
    return torch.where(m2 <= 0, 0.0, out).reshape(m.shape)


def _invert_capped_sorted(slope: torch.Tensor, brk: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``_solve_capped`` (with caps slope_i brk_i) by one sort: g is piecewise linear and non-decreasing with kinks at
    the sorted brk, so the solution lies on the first segment whose right end reaches m.
    Entries with slope 0 must have brk 0 (they add nothing)."""
    b, order = brk.sort(dim=-1)  # (..., D) ascending kinks
    s = slope.gather(-1, order)
    fin = torch.isfinite(b)
    cap = torch.where(fin, s * b, 0.0)  # capped contributions
    zero = torch.zeros_like(b[..., :1])
    done = cap.cumsum(dim=-1)  # capped by t = b_k: entries 0..k
    rest = torch.cat([s.flip(-1).cumsum(dim=-1).flip(-1)[..., 1:], zero], dim=-1)  # k+1..
    g = torch.where(fin, done + b * rest, _INF)  # g(b_k)
    k = (g < m[..., None]).sum(dim=-1, keepdim=True)  # the first kink where g reaches m
    kc = k.clamp_max(b.shape[-1] - 1)
    before = torch.cat([zero, done[..., :-1]], dim=-1).gather(-1, kc)[..., 0]
    free = (rest + s).gather(-1, kc)[..., 0]  # slope of g on that segment
    lower = torch.cat([zero, b[..., :-1]], dim=-1).gather(-1, kc)[..., 0]
    t = ((m - before) / free.clamp_min(_TINY)).clamp_min(lower)
    t = torch.minimum(t, b.gather(-1, kc)[..., 0])
    t = torch.where(m <= 0, torch.zeros_like(t), t)
    return torch.where(k[..., 0] < b.shape[-1], t, torch.full_like(t, _INF))


def _l1_box_theta(a: torch.Tensor, room: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Smallest theta >= 0 (B,) with h(theta) = sum_j clip(a_j - theta, 0, room_j) <= eps, for
    a >= 0, room >= 0 (B, D), exactly, with one sort (the bisection it replaced took 30 passes).
    h is piecewise linear and non-increasing: entry j is capped at room_j (above theta = a_j -
    room_j), falls with slope -1, and is 0 from theta = a_j on. So h at the 2D sorted kinks
    is a cumulative sum of (slope x gap), and theta is interpolated on the first segment
    that reaches eps. Computed in float64 (the cumulative sums over D), clamped to be
    feasible in the input's dtype."""
    a64, e64 = a.double(), eps.double()
    r = torch.minimum(room.double(), a64)  # theta >= 0: an entry never exceeds a_j
    kinks, order = torch.cat([a64 - r, a64], dim=-1).sort(dim=-1)
    ones = torch.ones_like(a64)
    slope = torch.cat([-ones, ones], dim=-1).gather(-1, order).cumsum(dim=-1)  # after kink k
    h0 = r.sum(dim=-1, keepdim=True)  # every entry capped at the first kink
    steps = slope[:, :-1] * (kinks[:, 1:] - kinks[:, :-1])
    h = torch.cat([h0, h0 + steps.cumsum(dim=-1)], dim=-1)  # h at each kink, non-increasing
    k = (h > e64[:, None]).sum(dim=-1, keepdim=True).clamp(1, h.shape[-1] - 1)  # first <= eps
    left, h_left = kinks.gather(-1, k - 1), h.gather(-1, k - 1)
    fall = -slope.gather(-1, k - 1)  # > 0 on a segment where h crosses eps
    # inside the ball (h0 <= eps) this lands at or before the first kink: every entry capped
    theta = (left + (h_left - e64[:, None]) / fall.clamp_min(1.0))[:, 0].clamp_min(0.0)
    return theta.to(a.dtype)


def _fill_scale(a: torch.Tensor, room: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The t (...,) with ||min(a t, room)||_2 = eps, exactly (``_solve_capped``); a >= 0 and
    room >= 0 (inf: no box) are (..., D). ||min(a t, room)||^2 = sum_i min(a_i^2 t^2, room_i^2)
    is ``_solve_capped``'s g in T = t^2 (slopes a_i^2, caps room_i^2 where a_i > 0; its first
    step is the closed form eps / ||a (room > 0)||, final where nothing saturates). Where the
    box allows less than eps, the t at which every coordinate is saturated (finite)."""
    d = a.shape[-1]
    a2, room2 = a.reshape(-1, d), room.reshape(-1, d)
    e2 = eps.expand(a.shape[:-1]).reshape(-1)
    cap = room2 * room2 * a2.sign()  # a = 0: adds 0
    finite = room2.numel() == 0 or bool(room2.amax() < _INF)  # a box everywhere: no nan
    if not finite:
        cap = torch.nan_to_num(cap, nan=0.0, posinf=_INF)  # no room limit: inf, not nan
    t2 = _solve_capped(a2 * a2, cap, e2 * e2, finite)
    t = t2.sqrt()
    full = (~torch.isfinite(t2)).nonzero()[:, 0]  # the box allows less than eps
    if len(full):
        af, rf = a2[full], room2[full]
        brk = torch.where(af > 0, rf / af.clamp_min(_TINY), 0.0)  # t at which i saturates
        t[full] = torch.where(torch.isfinite(brk), brk, 0.0).amax(dim=-1)
    return t.reshape(a.shape[:-1])


def _all_inf(room: torch.Tensor) -> bool:
    """No entry of room (>= 0) is finite: no box at all (one float reduction)."""
    return room.numel() == 0 or bool(room.amin() == _INF)


def room_toward(d: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """The room (>= 0) of each entry along d's sign from a point of the box: ``up`` where
    d > 0, ``down`` elsewhere (both broadcast against d). Finite rooms are taken by float
    arithmetic (``lerp`` on ``_positive(d)``); an infinite one (a side with no box, every entry
    alike) by mask, where lerp would give inf - inf."""
    up, down = up.expand_as(d), down.expand_as(d)
    if _all_inf(up) or _all_inf(down):
        return torch.where(d > 0, up, down).clamp_min(0)
    return torch.lerp(down, up, _positive(d)).clamp_min(0)


class Norm(ABC):
    """An lp norm on flattened examples. ``dual`` is the lq norm with 1/p + 1/q = 1."""

    name: str
    p: float

    @abstractmethod
    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        """||delta_b||_p for each example: (B, *D) -> (B,)."""

    @abstractmethod
    def project(self, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        """Euclidean projection (for l1: exact simplex-based) onto the eps-ball."""

    @abstractmethod
    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        """Unit-norm direction u maximising <u, grad> (the FGSM/FGM step)."""

    @abstractmethod
    def random_init(
        self,
        shape: torch.Size,
        eps: torch.Tensor | float,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        """A random point in the eps-ball (uniform for linf and l2)."""

    @property
    @abstractmethod
    def dual(self) -> Norm:
        """The dual norm."""

    @abstractmethod
    def vertex(self, n: int) -> float:
        """Entry size of a vector with n equal-magnitude entries and unit norm (Square's
        proposal: linf 1, l2 n^-1/2, l1 1/n)."""

    def dual_norm_of(self, w: torch.Tensor) -> torch.Tensor:
        """||w||_q over the last dimension (the price of eps in a linear margin)."""
        return self.dual.norm(w.reshape(-1, w.shape[-1])).reshape(w.shape[:-1])

    @abstractmethod
    def fill(self, a: torch.Tensor, room: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The box-constrained linear maximiser in magnitudes: r (..., D) maximising <a, r>
        subject to 0 <= r <= room and ||r||_p <= eps. a >= 0 and room >= 0 (inf: no box) are
        (..., D); eps broadcasts against the leading dims (...)."""

    def linear_max(
        self,
        g: torch.Tensor,
        eps: torch.Tensor | float,
        up: torch.Tensor | None = None,
        down: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """delta (..., D) maximising <g, delta> over ||delta||_p <= eps and -down <= delta <= up
        (the box [lo, hi] around x: up = hi - x, down = x - lo; None: no box). Exact for every
        norm (THEORY.md section 1): the optimal perturbation of a linear model."""
        inf = torch.full((), _INF, dtype=g.dtype, device=g.device)
        room = room_toward(g, inf if up is None else up, inf if down is None else down)
        e = torch.as_tensor(eps, dtype=g.dtype, device=g.device).expand(g.shape[:-1])
        return g.sign() * self.fill(g.abs(), room, e)

    def project_box(
        self, delta: torch.Tensor, eps: torch.Tensor | float, up: torch.Tensor, down: torch.Tensor
    ) -> torch.Tensor:
        """Projection onto the eps-ball intersected with the box -down <= delta <= up (all
        (B, *D)). Default: ball, then box (exact for linf, where the two commute)."""
        return torch.maximum(torch.minimum(self.project(delta, eps), up), -down)

    def ascent(
        self,
        grad: torch.Tensor,
        size: torch.Tensor,
        bounds: tuple[float, float] | None,
        x: torch.Tensor,
    ) -> torch.Tensor:
        """The best first-order step (B, *D) of norm ``size`` (B,) from x inside the box: with
        no box ``size * steepest(grad)``; with one the exact box-constrained maximiser, so
        steps do not waste budget on coordinates already at the box edge."""
        if bounds is None:
            return _expand(size, grad) * self.steepest(grad)
        flat = _flat(x)
        step = self.linear_max(_flat(grad), size, bounds[1] - flat, flat - bounds[0])
        return step.reshape(grad.shape)

    def min_linear_dist(
        self, a: torch.Tensor, room: torch.Tensor, m: torch.Tensor, iters: int = 60
    ) -> torch.Tensor:
        """Smallest eps (...,) whose best linear decrease <a, fill(a, room, eps)> reaches m
        (inf where even the whole box falls short): bisection on eps, float64."""
        if not bool(torch.isfinite(room).any()):  # no box: distance to the hyperplane
            return self.dual_norm_free_bound(a, m)
        full = self.norm(torch.where(a > 0, room, torch.zeros_like(room)).flatten(0, -2))
        full = full.reshape(a.shape[:-1])
        reach = (a * torch.where(a > 0, room, torch.zeros_like(room))).sum(-1)
        lo = torch.zeros_like(m)
        hi = torch.where(torch.isfinite(full), full, self.dual_norm_free_bound(a, m))
        for _ in range(iters):
            mid = (lo + hi) / 2
            ok = (a * self.fill(a, room, mid)).sum(-1) >= m
            hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
        return torch.where((reach >= m) | ~torch.isfinite(full), hi, torch.full_like(m, _INF))

    def dual_norm_free_bound(self, a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Distance to the hyperplane with no box: m / ||a||_q (an upper bound with a box)."""
        return m / self.dual_norm_of(a).clamp_min(_TINY)

    def plane_fill(
        self, a: torch.Tensor, room: torch.Tensor, m: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(r (..., D), dist (...)): the magnitudes of least norm with <a, r> >= m inside
        0 <= r <= room, and their norm (inf, with r = 0, where even the whole box falls short).
        FAB's projection onto a linearised boundary. Default: ``fill`` at ``min_linear_dist``;
        linf and l2 override it exactly with ``_solve_capped`` (no bisection)."""
        dist = self.min_linear_dist(a, room, m)
        return self.fill(a, room, torch.where(torch.isfinite(dist), dist, 0.0)), dist

    def ball_box(
        self, x0: torch.Tensor, eps: torch.Tensor, bounds: tuple[float, float] | None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The eps-ball around x0 (B, *D) intersected with the box, as elementwise bounds
        (lo, hi) when that set is itself a box (linf), else None: then projecting onto it is
        one ``clamp(x, lo, hi)`` against bounds computed once per run."""
        return None


def _eps_like(eps: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    e = torch.as_tensor(eps, dtype=like.dtype, device=like.device)
    return _expand(e.expand(like.shape[0]), like) if e.dim() <= 1 else e


class Linf(Norm):
    name = "linf"
    p = float("inf")

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        return _flat(delta).abs().amax(dim=1)

    def project(self, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        e = _eps_like(eps, delta)
        return torch.maximum(torch.minimum(delta, e), -e)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def fill(self, a: torch.Tensor, room: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return torch.minimum(room, eps[..., None].expand_as(room)) * a.sign()

    def plane_fill(
        self, a: torch.Tensor, room: torch.Tensor, m: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact: <a, fill(eps)> = sum_i a_i min(eps, room_i), kinks at the rooms."""
        cap = torch.nan_to_num(a * room, nan=0.0, posinf=_INF)  # a = 0 adds nothing
        eps = _solve_capped(a, cap, m)
        r = torch.minimum(room, torch.where(torch.isfinite(eps), eps, 0.0)[..., None])
        return r * a.sign(), eps

    def min_linear_dist(
        self, a: torch.Tensor, room: torch.Tensor, m: torch.Tensor, iters: int = 60
    ) -> torch.Tensor:
        """Exact (``plane_fill``); ``iters`` is unused."""
        return self.plane_fill(a, room, m)[1]

    def ascent(
        self,
        grad: torch.Tensor,
        size: torch.Tensor,
        bounds: tuple[float, float] | None,
        x: torch.Tensor,
    ) -> torch.Tensor:
        """The sign step: the box clip that follows makes it the box-constrained maximiser."""
        return _expand(size, grad) * grad.sign()

    def ball_box(
        self, x0: torch.Tensor, eps: torch.Tensor, bounds: tuple[float, float] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        e = _eps_like(eps, x0)
        lo, hi = x0 - e, x0 + e
        if bounds is not None:
            lo, hi = lo.clamp_min(bounds[0]), hi.clamp_max(bounds[1])
        return lo, hi

    def vertex(self, n: int) -> float:
        return 1.0

    def random_init(
        self,
        shape: torch.Size,
        eps: torch.Tensor | float,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        u = torch.rand(shape, generator=generator, device="cpu").to(device)
        return (2 * u - 1) * _eps_like(eps, u)

    @property
    def dual(self) -> Norm:
        return L1()


class L2(Norm):
    name = "l2"
    p = 2.0

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        return _flat(delta).norm(p=2, dim=1)

    def project(self, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        e = _eps_like(eps, delta)
        n = _expand(self.norm(delta), delta).clamp_min(_TINY)
        return delta * torch.clamp(e / n, max=1.0)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        n = _expand(self.norm(grad), grad).clamp_min(_TINY)
        return grad / n

    def fill(self, a: torch.Tensor, room: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """r = min(a t, room) (a >= 0, room >= 0) with ||r||_2 = eps, or every coordinate
        saturated when the box allows less: exact (``_fill_scale``)."""
        if _all_inf(room):  # no box: the closed form a eps / ||a||_2
            return a * (eps / a.norm(dim=-1).clamp_min(_TINY))[..., None]
        t = _fill_scale(a, room, eps)  # finite: entries with a = 0 stay 0
        return torch.minimum(a * t[..., None], room)

    def vertex(self, n: int) -> float:
        return float(n) ** -0.5

    def project_box(
        self, delta: torch.Tensor, eps: torch.Tensor | float, up: torch.Tensor, down: torch.Tensor
    ) -> torch.Tensor:
        """Exact: d = clip(s delta) with s = 1 / (1 + lambda) the largest in (0, 1] keeping
        ||d||_2 <= eps (KKT of the separable problem), s found exactly (``_fill_scale``
        on |delta| and the room in delta's direction)."""
        flat, u, dn = _flat(delta), _flat(up), _flat(down)
        e = torch.as_tensor(eps, dtype=flat.dtype, device=flat.device).expand(flat.shape[0])
        # Rows with delta inside the box (an ascent step that respects the box, from a point
        # in the ball) keep s delta inside it for every s <= 1: the ball's closed form.
        s = (e / flat.norm(dim=1).clamp_min(_TINY)).clamp_max(1.0)
        out = torch.maximum(flat - u, -dn - flat).amax(dim=1)  # > 0: an entry leaves the box
        rows = (~(out <= 0)).nonzero()[:, 0]  # (nan: solved)
        if len(rows):
            f, ur, dr = flat[rows], u[rows], dn[rows]
            room = room_toward(f, ur, dr)
            s[rows] = _fill_scale(f.abs(), room, e[rows]).clamp_max(1.0)
        d = torch.maximum(torch.minimum(flat * s[:, None], u), -dn)
        # rounding of the scale may leave ||d|| an ulp above eps: shrink (0 is in the box)
        d = d * (e / d.norm(dim=1).clamp_min(_TINY)).clamp_max(1.0)[:, None]
        return d.reshape(delta.shape)

    def plane_fill(
        self, a: torch.Tensor, room: torch.Tensor, m: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact: on the path r(t) = min(a t, room) (KKT), <a, r(t)> = sum_i
        min(a_i^2 t, a_i room_i), kinks at room_i / a_i."""
        cap = torch.nan_to_num(a * room, nan=0.0, posinf=_INF)  # slope a^2 times kink room / a
        t = _solve_capped(a * a, cap, m)
        r = torch.minimum(a * torch.where(torch.isfinite(t), t, 0.0)[..., None], room)
        dist = torch.where(torch.isfinite(t), r.norm(dim=-1), _INF)
        return r, dist

    def min_linear_dist(
        self, a: torch.Tensor, room: torch.Tensor, m: torch.Tensor, iters: int = 60
    ) -> torch.Tensor:
        """Exact (``plane_fill``); ``iters`` is unused."""
        return self.plane_fill(a, room, m)[1]

    def random_init(
        self,
        shape: torch.Size,
        eps: torch.Tensor | float,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        g = torch.randn(shape, generator=generator, device="cpu")
        dim = g[0].numel()
        r = torch.rand(shape[0], generator=generator, device="cpu") ** (1.0 / dim)
        u = g / _expand(self.norm(g).clamp_min(_TINY), g) * _expand(r, g)
        u = u.to(device)
        return u * _eps_like(eps, u)

    @property
    def dual(self) -> Norm:
        return self


class L1(Norm):
    name = "l1"
    p = 1.0

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        return _flat(delta).abs().sum(dim=1)

    def project(self, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        # Duchi et al. 2008: project |delta| onto the simplex of radius eps, keep signs.
        flat = _flat(delta)
        e = torch.as_tensor(eps, dtype=delta.dtype, device=delta.device).expand(flat.shape[0])
        a = flat.abs()
        inside = a.sum(dim=1) <= e
        mu, _ = a.sort(dim=1, descending=True)
        cums = mu.cumsum(dim=1)
        k = torch.arange(1, a.shape[1] + 1, device=a.device, dtype=a.dtype)
        cond = mu - (cums - e[:, None]) / k > 0
        rho = cond.to(a.dtype).cumsum(dim=1).argmax(dim=1, keepdim=True)
        theta = ((cums.gather(1, rho) - e[:, None]) / (rho + 1).to(a.dtype)).clamp_min(0)
        proj = flat.sign() * (a - theta).clamp_min(0)
        out = torch.where(inside[:, None], flat, proj)
        return out.reshape(delta.shape)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        flat = _flat(grad)
        idx = flat.abs().argmax(dim=1, keepdim=True)
        out = torch.zeros_like(flat).scatter(1, idx, flat.gather(1, idx).sign())
        return out.reshape(grad.shape)

    def project_box(
        self, delta: torch.Tensor, eps: torch.Tensor | float, up: torch.Tensor, down: torch.Tensor
    ) -> torch.Tensor:
        """Exact: d_j = sign(delta_j) clip(|delta_j| - theta, 0, room_j) with the smallest
        theta >= 0 keeping ||d||_1 <= eps (KKT of the separable problem; ``_l1_box_theta``)."""
        flat = _flat(delta)
        room = room_toward(flat, _flat(up), _flat(down))
        a = flat.abs()
        e = torch.as_tensor(eps, dtype=flat.dtype, device=flat.device).expand(flat.shape[0])
        theta = _l1_box_theta(a, room, e)
        d = torch.minimum((a - theta[:, None]).clamp_min(0), room)
        over = d.sum(dim=1) - e  # > 0 only by the rounding of theta to the input's dtype
        falling = ((d > 0) & (d < room)).sum(dim=1).clamp_min(1)
        theta = torch.where(over > 0, theta + 2 * over / falling, theta)
        d = torch.minimum((a - theta[:, None]).clamp_min(0), room)
        return (flat.sign() * d).reshape(delta.shape)

    def fill(self, a: torch.Tensor, room: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Fractional knapsack: spend eps on coordinates by decreasing a, each up to its room."""
        if not bool(torch.isfinite(room).any()):  # no box: the whole budget on argmax a
            idx = a.argmax(dim=-1, keepdim=True)
            return torch.zeros_like(a).scatter(-1, idx, eps[..., None].expand_as(idx).to(a.dtype))
        order = a.argsort(dim=-1, descending=True)
        rs = room.gather(-1, order).masked_fill(a.gather(-1, order) == 0, 0.0)
        before = torch.cat([torch.zeros_like(rs[..., :1]), rs.cumsum(dim=-1)[..., :-1]], dim=-1)
        r_sorted = torch.minimum(rs, (eps[..., None] - before).clamp_min(0))  # budget left
        return torch.zeros_like(a).scatter(-1, order, r_sorted)

    def vertex(self, n: int) -> float:
        return 1.0 / n

    def min_linear_dist(
        self, a: torch.Tensor, room: torch.Tensor, m: torch.Tensor, iters: int = 60
    ) -> torch.Tensor:
        """Exact, one sort: spend on coordinates by decreasing a (the knapsack order of
        ``fill``); the distance is the rooms used before the coordinate that reaches m plus
        the part of it needed (inf where the whole box falls short)."""
        if not bool(torch.isfinite(room).any()):
            return self.dual_norm_free_bound(a, m)
        order = a.argsort(dim=-1, descending=True)
        a_s = a.gather(-1, order)
        r_s = room.gather(-1, order).masked_fill(a_s == 0, 0.0)
        gain = (a_s * r_s).cumsum(dim=-1)  # decrease reached after using k coordinates fully
        used = r_s.cumsum(dim=-1)
        k = (gain < m[..., None]).sum(dim=-1, keepdim=True)  # the coordinate that reaches m
        kc = k.clamp_max(a.shape[-1] - 1)
        gain_before = (gain.gather(-1, kc) - (a_s * r_s).gather(-1, kc))[..., 0]
        used_before = (used.gather(-1, kc) - r_s.gather(-1, kc))[..., 0]
        part = (m - gain_before) / a_s.gather(-1, kc)[..., 0].clamp_min(_TINY)
        dist = torch.where(m <= 0, torch.zeros_like(m), used_before + part)
        return torch.where(k[..., 0] < a.shape[-1], dist, torch.full_like(m, _INF))

    def random_init(
        self,
        shape: torch.Size,
        eps: torch.Tensor | float,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        # Uniform on the l1 ball: Laplace direction, radius U^(1/D).
        e = (
            torch.empty(shape).exponential_(generator=generator)
            if generator is not None
            else torch.empty(shape).exponential_()
        )
        s = torch.rand(shape, generator=generator).round() * 2 - 1
        g = e * s
        dim = g[0].numel()
        r = torch.rand(shape[0], generator=generator) ** (1.0 / dim)
        u = (g / _expand(self.norm(g).clamp_min(_TINY), g) * _expand(r, g)).to(device)
        return u * _eps_like(eps, u)

    @property
    def dual(self) -> Norm:
        return Linf()


class L0(Norm):
    """The l0 "norm": the number of changed input entries (eps is a count). Projection keeps
    the eps largest changes; with the box [lo, hi] every changed entry goes to its extreme."""

    name = "l0"
    p = 0.0

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        return (_flat(delta) != 0).sum(dim=1).to(delta.dtype)

    def project(self, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        flat = _flat(delta)
        k = torch.as_tensor(eps, dtype=flat.dtype, device=flat.device).expand(flat.shape[0])
        return (flat * _top_k_mask(flat.abs(), k)).reshape(delta.shape)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        return L1().steepest(grad)

    def project_box(
        self, delta: torch.Tensor, eps: torch.Tensor | float, up: torch.Tensor, down: torch.Tensor
    ) -> torch.Tensor:
        """Exact: clip every entry to the box, keep the eps entries whose kept change saves
        the most squared distance (Croce and Hein 2019)."""
        flat = _flat(delta)
        clipped = torch.maximum(torch.minimum(flat, _flat(up)), -_flat(down))
        gain = flat.pow(2) - (flat - clipped).pow(2)
        k = torch.as_tensor(eps, dtype=flat.dtype, device=flat.device).expand(flat.shape[0])
        return (clipped * _top_k_mask(gain, k)).reshape(delta.shape)

    def random_init(
        self,
        shape: torch.Size,
        eps: torch.Tensor | float,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        scores = torch.rand(shape, generator=generator).to(device)
        values = (2 * torch.rand(shape, generator=generator) - 1).to(device)
        return self.project(values * (scores + 1), eps) / (scores + 1)

    @property
    def dual(self) -> Norm:
        raise ValueError("l0 is not a norm and has no dual")

    def fill(self, a: torch.Tensor, room: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        gain = a * room
        return torch.where(_top_k_mask(gain, eps) & (a > 0), room, torch.zeros_like(room))

    def min_linear_dist(
        self, a: torch.Tensor, room: torch.Tensor, m: torch.Tensor, iters: int = 60
    ) -> torch.Tensor:
        """The fewest entries whose full moves reach m: a sorted prefix sum, no bisection."""
        gain = (a * room).sort(dim=-1, descending=True).values.cumsum(dim=-1)
        need = (gain < m[..., None]).sum(dim=-1).to(m.dtype) + 1
        return torch.where(gain[..., -1] >= m, torch.where(m <= 0, 0.0, need), _INF)

    def vertex(self, n: int) -> float:
        return 1.0


def _top_k_mask(score: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(..., D) bool: the k[...] largest scores along the last dim (k may vary per row)."""
    rank = score.argsort(dim=-1, descending=True).argsort(dim=-1)
    return rank < k[..., None]


NORMS: dict[str, Norm] = {"linf": Linf(), "l2": L2(), "l1": L1(), "l0": L0()}


def get_norm(name: str) -> Norm:
    try:
        return NORMS[name]
    except KeyError:
        raise KeyError(f"unknown norm {name!r}; known: {sorted(NORMS)}") from None
