"""The Square attack (Andriushchenko et al. 2020): score-based black-box random search.

Each query proposes a change of one random window (a square on images, a run of entries on flat
inputs) and keeps it when the margin loss rises; the window's area is a fraction p of the input,
p shrinking on the paper's schedule. Only logits are used: no gradients. The proposals follow
the paper (and the reference code, fra31/auto-attack ``square.py``):

- linf: start from vertical stripes at +-eps; a proposal sets the window to x0 +- eps (one sign
  per channel), clipped to the box.
- l2: start from a grid of windows each holding the paper's pattern eta (nested rectangles of
  weight 1/k^2, opposite signs in the two halves) with a random sign per channel, scaled to norm
  eps. ``l2_proposal`` chooses the proposal:

  - "move" (the paper's): pick two windows W1 and W2, empty W2, and write into W1 a fresh eta
    plus W1's old content (each per channel normalised), rescaled so W1 carries the mass of
    both windows and any budget left, eps^2 - ||delta||^2.
  - "step" (the default, ours): add to delta a fresh pattern in one window, of norm
    ``step * eps * sqrt(window / input)``; each row's ``step`` starts at ``l2_step`` and
    follows the 1/5 success rule of evolution strategies (Rechenberg 1973): times ``_STEP_UP``
    when the proposal is accepted, divided by ``_STEP_UP ** (1/4)`` when not, so it settles
    where one proposal in five is accepted (kept within ``_STEP_RANGE``).

  Either way the whole perturbation is then rescaled to norm eps and clipped to the box (the
  l2 sphere: a loss-raising search uses the whole budget). Knobs of the config
  (``SQUARE_L2_PAPER`` sets the paper's): ``l2_eta`` (the paper's rectangles, or a Gaussian
  pattern of unit norm), ``l2_eta_weight`` ("move": the fresh pattern's weight next to the
  unit-normalised old content; the paper's 1 rotates W1's content by about 45 degrees every
  step) and ``l2_min_window`` (the paper's odd windows of at least 3 rewrite 18 of 64 pixels in
  every late step on 8 x 8 inputs; odd sizes only with the paper's eta, which has a centre).
  ``l2_loss`` "ce" accepts a proposal when the cross-entropy rises (success is still read off
  the margin); docs/attacks.md has the measurements.
- l1 (no paper proposal): the window gets equal-magnitude entries of norm eps and the whole
  perturbation is projected back onto the ball.

A proposal that changes nothing (a window already at the proposed values, or clipped away by
the box) is redrawn, up to ``_RESAMPLE`` times, as in the reference code, so no query is wasted
on an input already scored.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from adv_core.attacks.base import Attack, Bounds, Model, bcast, ce_loss, margin_loss
from adv_core.attacks.counting import count_forward, head_of
from adv_core.config.attacks import SquareAttack
from adv_core.models import AffineHead
from adv_core.norms import Norm, room_toward

_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
             (6000, 128), (8000, 256))  # fmt: skip
_RESAMPLE = 10
_SPARE = 1e-5  # l2 "move": budget left below this fraction of eps^2 is rounding, not budget
_REFRESH = 100  # queries between exact recomputations of the first layer's output
_TINY = 1e-12
_STEP_UP = 1.2  # l2 "step": a row's step grows by this on an accepted proposal ...
_STEP_DOWN = _STEP_UP**-0.25  # ... and shrinks by this on a rejected one (the 1/5 rule)
_STEP_RANGE = (0.1, 4.0)  # the step never leaves this range (a row stuck for long keeps moving)


def p_at(p_init: float, it: int, n_queries: int) -> float:
    """The paper's schedule for 10,000 queries, rescaled to ``n_queries``."""
    i = int(it / n_queries * 10000)
    div = 512
    for limit, d in _SCHEDULE:
        if i <= limit:
            div = d
            break
    return p_init / div


def adapt_step(step: torch.Tensor, accepted: torch.Tensor) -> torch.Tensor:
    """The 1/5 success rule: each row's step times ``_STEP_UP`` where its proposal was
    accepted, times ``_STEP_DOWN`` where not (unchanged on average when 1 in 5 is accepted),
    kept within ``_STEP_RANGE``."""
    return torch.where(accepted, step * _STEP_UP, step * _STEP_DOWN).clamp(*_STEP_RANGE)


def as_image(x: torch.Tensor) -> torch.Tensor:
    """(B, *D) -> (B, C, H, W): images stay, flat inputs become (B, 1, 1, D)."""
    if x.dim() == 4:
        return x
    if x.dim() == 3:
        return x[:, None]
    return x.reshape(len(x), 1, 1, -1)


def eta_rectangles(h: int, w: int) -> torch.Tensor:
    """(h, w): nested rectangles around the centre, ring k weighted 1/(k+1)^2, unit l2 norm
    (the reference's ``eta_rectangles``)."""
    out = torch.zeros(h, w)
    r, c = h // 2, w // 2
    for k in range(max(r + 1, c + 1)):
        out[max(r - k, 0) : min(r + k + 1, h), max(c - k, 0) : min(c + k + 1, w)] += (
            1.0 / (k + 1) ** 2
        )
    return out / out.norm().clamp_min(_TINY)


@functools.lru_cache(maxsize=64)
def eta(h: int, w: int) -> torch.Tensor:
    """(h, w): the paper's l2 window pattern, +rectangles in the first half and -rectangles in
    the second (halves split along the longer side), unit l2 norm (cached: callers must not write into it)."""
    if h >= w and h > 1:
        top, bot = eta_rectangles(h // 2, w), -eta_rectangles(h - h // 2, w)
        out = torch.cat([top, bot], dim=0)
    else:
        left, right = eta_rectangles(h, w // 2), -eta_rectangles(h, w - w // 2)
        out = torch.cat([left, right], dim=1)
    return out / out.norm().clamp_min(_TINY)


class Square(Attack):
    cfg: SquareAttack
    white_box = False

    @torch.no_grad()
    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return self.worst_case(
            model, x, y, self.cfg.restarts,
            lambda _, idx: self._run(model, x[idx], y[idx], eps[idx], bounds, generator),
        )  # fmt: skip

    def _draw(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        return torch.rand(shape, generator=generator)

    def _score(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss a proposal must raise, the margin loss: > 0 means fooled). Cross-entropy
        only on the l2 path with ``l2_loss`` "ce"; the margin everywhere else."""
        margin = margin_loss(logits, y)
        if self.norm.name == "l2" and self.cfg.l2_loss == "ce":
            return ce_loss(logits, y), margin
        return margin, margin

    def _sign(
        self, shape: tuple[int, ...], gen: torch.Generator | None, like: torch.Tensor
    ) -> torch.Tensor:
        """Random +-1 of ``shape`` with like's dtype and device."""
        return ((self._draw(shape, gen) < 0.5).to(like.dtype) * 2 - 1).to(like.device)

    def _run(
        self,
        model: Model,
        x0: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """The random search on the examples not yet fooled. They are kept as a compact working
        set, gathered again only when one is fooled (a fooled row leaves the search at once:
        it is accepted whether or not its loss rose, and never attacked again), and linf keeps
        each row's box images: the draws and the proposals are those of attacking the
        still-robust rows afresh every query. A linf proposal changes one window, so on a
        Flatten + Linear model (``head_of``) its logits come from the current point's
        first-layer output plus the window's columns (``_Work.score``), not from a whole
        forward pass."""
        x = self._start(x0, eps, bounds, generator)
        loss, margin = self._score(model(x), y)
        rows = (margin <= 0).nonzero()[:, 0]
        w = _Work(x0[rows], x[rows], eps[rows], y[rows], loss[rows])
        l2 = self.norm.name == "l2"
        if l2 and self.cfg.l2_proposal == "step":
            w.step = torch.full((len(rows),), self.cfg.l2_step, device=x0.device)
        windows = self.norm.name == "linf" or (l2 and self.cfg.l2_proposal == "move")
        if self.norm.name == "linf":
            w.box = _box_images(self.norm, w.x0, w.eps, bounds)
        if windows:
            w.with_head(head_of(model))
        for it in range(1, self.cfg.queries):
            if len(rows) == 0:
                break
            p = p_at(self.cfg.p_init, it, self.cfg.queries)
            if not windows:
                cand = self._propose_changed(w.x0, w.x, w.eps, p, bounds, generator, w.step)
                (new, new_margin), z = self._score(model(cand), w.y), None
            else:
                if w.box is not None:
                    at, value = self._draw_linf(w.x0, w.x, w.eps, p, bounds, generator, w.box)
                    weight = None
                else:
                    at, value, weight = self._draw_move(w.x0, w.x, w.eps, p, bounds, generator)
                logits, z = w.score(model, at, value, weight)
                new, new_margin = self._score(logits, w.y)
            accepted = (new > w.loss) | (new_margin > 0)
            if w.step is not None:
                w.step = adapt_step(w.step, accepted)
            idx = accepted.nonzero()[:, 0]
            if len(idx) == 0:
                continue
            if not windows:
                w.accept(idx, cand[idx], new[idx])
            else:
                w.accept_windows(idx, at[idx], value[idx], new[idx], z)
            if w.head is not None and it % _REFRESH == 0:
                w.refresh()
            gone = idx[new_margin[idx] > 0]
            if len(gone) and w.head is not None:  # fooled by updated logits: confirm exactly
                gone = gone[w.confirm(model, gone, self._score)]
            if len(gone):  # write the fooled rows back and drop them
                x[rows[gone]] = w.x[gone]
                keep = torch.ones(len(rows), dtype=torch.bool, device=x.device)
                keep[gone] = False
                rows, w = rows[keep], w.keep(keep)
        x[rows] = w.x
        return x

    def _start(
        self, x0: torch.Tensor, eps: torch.Tensor, bounds: Bounds, gen: torch.Generator | None
    ) -> torch.Tensor:
        img = as_image(x0)
        n, c, h, w = img.shape
        if self.norm.name != "l2":  # vertical stripes at the ball's vertices
            stripes = self._sign((n, c, 1, w), gen, x0) * self.norm.vertex(c * h * w)
            delta = stripes.expand_as(img) * bcast(eps, img)
            return self.project(x0, x0 + delta.reshape(x0.shape), eps, bounds)
        bh, bw = max(h // 5, 1), max(w // 5, 1)  # the paper's grid of eta windows
        pat = eta(bh, bw).to(img)
        delta = torch.zeros_like(img)
        for r in range(0, h, bh):
            for col in range(0, w, bw):
                hh, ww = min(bh, h - r), min(bw, w - col)
                sign = self._sign((n, c, 1, 1), gen, x0)
                delta[:, :, r : r + hh, col : col + ww] = sign * pat[:hh, :ww]
        return self._l2_finish(x0, delta, eps, bounds)

    def _l2_finish(
        self, x0: torch.Tensor, delta: torch.Tensor, eps: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        """x0 + s delta clipped to the box, s chosen so the clipped perturbation has norm eps
        (or the most the box allows): the reference rescales to eps and then clips, which on
        inputs at the box's edges (digits' black background) throws away the clipped mass."""
        flat = delta.reshape(len(x0), -1)
        if bounds is None:
            s = eps / flat.norm(dim=1).clamp_min(_TINY)  # (A,) unclipped norm eps
            return x0 + (flat * s[:, None]).reshape(x0.shape)
        lo, hi = bounds
        x0f = x0.reshape(len(x0), -1)
        room = room_toward(flat, hi - x0f, x0f - lo)
        step = self.norm.fill(flat.abs(), room, eps)  # |x - x0| per coordinate, exact
        return (x0f + flat.sign() * step).clamp(lo, hi).reshape(x0.shape)

    def _propose_changed(
        self,
        x0: torch.Tensor,
        x: torch.Tensor,
        eps: torch.Tensor,
        p: float,
        bounds: Bounds,
        gen: torch.Generator | None,
        step: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """A proposal per example (l2, l1), redrawn where it would leave the input unchanged
        (linf draws its redraws at once: ``_draw_linf``); ``step``: each row's l2 step."""
        cand = self._propose(x0, x, eps, p, bounds, gen, step)
        for _ in range(_RESAMPLE):
            same = ((cand - x).flatten(1).abs().amax(dim=1) == 0).nonzero()[:, 0]  # float ops
            if len(same) == 0:
                break
            part = None if step is None else step[same]
            cand[same] = self._propose(x0[same], x[same], eps[same], p, bounds, gen, part)
        return cand

    def _window(
        self,
        n: int,
        h: int,
        w: int,
        sh: int,
        sw: int,
        gen: torch.Generator | None,
        dev: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inside (n, 1, h, w) bool, row offset (n, h, w), column offset (n, h, w)) of one random
        sh x sw window per example; offsets index into the window (clamped outside it)."""
        r0 = (self._draw((n,), gen) * (h - sh + 1)).long().to(dev)
        c0 = (self._draw((n,), gen) * (w - sw + 1)).long().to(dev)
        dr = torch.arange(h, device=dev)[None, :, None] - r0[:, None, None]  # (n, h, 1)
        dc = torch.arange(w, device=dev)[None, None, :] - c0[:, None, None]  # (n, 1, w)
        inside = (dr >= 0) & (dr < sh) & (dc >= 0) & (dc < sw)  # (n, h, w)
        return (
            inside[:, None],
            dr.clamp(0, sh - 1).expand(n, h, w),
            dc.clamp(0, sw - 1).expand(n, h, w),
        )

    def _propose(
        self,
        x0: torch.Tensor,
        x: torch.Tensor,
        eps: torch.Tensor,
        p: float,
        bounds: Bounds,
        gen: torch.Generator | None,
        step: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.norm.name == "l2":  # "step" ("move" goes by windows: ``_draw_move``)
            assert step is not None
            return self._propose_l2(x0, x, eps, p, bounds, gen, step)
        img = as_image(x0)
        n, c, h, w = img.shape
        sh, sw = window_size(p, h, w, minimum=1)
        inside, _, _ = self._window(n, h, w, sh, sw, gen, x0.device)
        value = self._sign((n, c, 1, 1), gen, x0) * bcast(eps, img) * self.norm.vertex(c * sh * sw)
        delta = torch.where(inside, value, as_image(x - x0))
        return self.project(x0, x0 + delta.reshape(x0.shape), eps, bounds)

    def _propose_linf(
        self,
        x0: torch.Tensor,
        x: torch.Tensor,
        eps: torch.Tensor,
        p: float,
        bounds: Bounds,
        gen: torch.Generator | None,
        box: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``_draw_linf``'s proposal as an input: x with the window written in."""
        return _with_windows(x, *self._draw_linf(x0, x, eps, p, bounds, gen, box))

    def _draw_linf(
        self,
        x0: torch.Tensor,
        x: torch.Tensor,
        eps: torch.Tensor,
        p: float,
        bounds: Bounds,
        gen: torch.Generator | None,
        box: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat pixel index (n, c, s * s), value (n, c, s * s)) of each row's proposal: the
        window set to x0 +- eps (one sign per channel), clipped to the box; the rest of x kept
        as is (already in the ball and the box, so no projection). The redraws of proposals
        that change nothing are vectorised: 1 + ``_RESAMPLE`` (window, signs) are drawn at
        once and the first that changes x is used (the last if none does: the same
        distribution as redrawing one at a time). Only the windows' entries are read (after
        the schedule's first queries a window is a few pixels), and nothing waits on the host.
        ``box`` (``Norm.ball_box`` as images) may come from the caller, which keeps it."""
        img0 = as_image(x0)
        n, c, h, w = img0.shape
        dev, k = x0.device, 1 + _RESAMPLE
        sh, sw = window_size(p, h, w, minimum=1)
        r0 = (self._draw((k, n), gen) * (h - sh + 1)).long().to(dev)  # (k, n)
        c0 = (self._draw((k, n), gen) * (w - sw + 1)).long().to(dev)
        sign = self._sign((k, n, c), gen, x0)  # (k, n, c)
        box = _box_images(self.norm, x0, eps, bounds) if box is None else box
        offset = (torch.arange(sh, device=dev)[:, None] * w + torch.arange(sw, device=dev)).view(-1)
        at = ((r0 * w + c0)[..., None] + offset)[:, :, None].expand(k, n, c, sh * sw)
        flat = as_image(x).reshape(n, c, h * w)
        lo, hi = (b.reshape(1, n, c, h * w).expand(k, n, c, h * w) for b in box)
        value = torch.where(sign[..., None] > 0, hi.gather(-1, at), lo.gather(-1, at))
        now = flat.expand(k, n, c, h * w).gather(-1, at)
        changes = (value != now).flatten(2).any(dim=-1)  # (k, n)
        first = torch.where(changes.any(0), changes.to(x0.dtype).argmax(0), k - 1)  # (n,)
        n_idx = torch.arange(n, device=dev)
        return at[first, n_idx], value[first, n_idx]

    def _propose_l2(
        self,
        x0: torch.Tensor,
        x: torch.Tensor,
        eps: torch.Tensor,
        p: float,
        bounds: Bounds,
        gen: torch.Generator | None,
        step: torch.Tensor,
    ) -> torch.Tensor:
        """The "step" l2 proposal (the config's ``l2_*`` knobs: the pattern, the smallest
        window): a fresh pattern of norm step * eps * sqrt(window / input) added in one window
        W1 (``step`` (n,)). The paper's "move" is proposed as windows (``_draw_move``)."""
        img0 = as_image(x0)
        n, c, h, w = img0.shape
        sh, sw = self._l2_window(p, h, w)
        # delta plus the pattern in one window, the window's share of eps times step
        delta = as_image(x - x0)
        in1, dr, dc = self._window(n, h, w, sh, sw, gen, x0.device)
        pats = self._patterns(n, sh, sw, gen, x0)
        rows = torch.arange(n, device=x0.device)[:, None, None]
        fresh = pats[rows, dr, dc][:, None] * in1 * self._sign((n, c, 1, 1), gen, x0)  # (n,c,h,w)
        share = bcast(eps * step, delta) * (sh * sw / (h * w)) ** 0.5
        return self._l2_finish(x0, delta + share * fresh / c**0.5, eps, bounds)

    def _l2_window(self, p: float, h: int, w: int) -> tuple[int, int]:
        """The l2 window for fraction p (odd sides with the paper's eta, which has a centre)."""
        return window_size(p, h, w, self.cfg.l2_min_window, odd=self.cfg.l2_eta == "paper")

    def _patterns(
        self, n: int, sh: int, sw: int, gen: torch.Generator | None, like: torch.Tensor
    ) -> torch.Tensor:
        """(n, sh, sw) unit-norm window patterns: the paper's eta (transposed for a random half
        of the rows on square windows), or Gaussian (``l2_eta`` "gaussian")."""
        if self.cfg.l2_eta == "paper":
            pat = eta(sh, sw).to(like)
            flip = (self._draw((n,), gen) < 0.5).to(like.device) & (sh == sw)
            return torch.where(flip[:, None, None], pat.T if sh == sw else pat, pat)
        pats = torch.randn((n, sh, sw), generator=gen).to(like)
        return pats / pats.flatten(1).norm(dim=1).clamp_min(_TINY)[:, None, None]

    def _draw_move(
        self,
        x0: torch.Tensor,
        x: torch.Tensor,
        eps: torch.Tensor,
        p: float,
        bounds: Bounds,
        gen: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The paper's l2 proposal ("move") as windows: (flat pixel index (n, c, k), value,
        weight) for ``_Work.score`` and ``_with_windows``; rows whose proposal changes nothing
        (two empty windows and no budget left) are redrawn, up to ``_RESAMPLE`` times."""
        n, c, h, w = as_image(x0).shape
        sh, sw = self._l2_window(p, h, w)
        at, value, weight = self._move(x0, x, eps, sh, sw, bounds, gen)
        for _ in range(_RESAMPLE):  # rare: the windows were drawn to change something
            now = as_image(x).reshape(n, c, -1).gather(-1, at)
            same = ((value - now).abs().flatten(1).amax(dim=1) == 0).nonzero()[:, 0]
            if len(same) == 0:
                break
            redo = self._move(x0[same], x[same], eps[same], sh, sw, bounds, gen)
            at[same], value[same], weight[same] = redo
        return at, value, weight

    def _window_pairs(
        self,
        delta: torch.Tensor,
        spare: torch.Tensor,
        sh: int,
        sw: int,
        gen: torch.Generator | None,
    ) -> tuple[torch.Tensor, ...]:
        """(r1, c1, r2, c2) (n,): each row's two windows, the first of 1 + ``_RESAMPLE`` random
        pairs that can change something (either window holds a nonzero entry of ``delta``
        (n, c, h, w), or the row has budget to spare, ``spare`` (n,) bool); the last pair where
        none can (the distribution of redrawing one pair at a time, with the draws made at
        once). Small windows (2 k windows of at most h w entries in all) read their entries;
        larger ones sum, over the window's rows, a prefix count along each image row (exact
        integers)."""
        n, c, h, w = delta.shape
        k, dev = 1 + _RESAMPLE, delta.device
        span = torch.tensor([h - sh + 1, w - sw + 1] * 2, dtype=delta.dtype)[:, None, None]
        rc = (self._draw((4, k, n), gen) * span).long().to(dev)  # (r1, c1, r2, c2) x (k, n)
        r, col = rc[0::2].reshape(2 * k, n), rc[1::2].reshape(2 * k, n)  # W1's, then W2's
        size = delta.abs().amax(dim=1)  # (n, h, w): > 0 where any channel is nonzero
        if 2 * k * sh * sw <= h * w:  # the windows' own entries
            offset = _window_grid(sh, sw, w, dev)[2]
            at = ((r * w + col).t()[..., None] + offset).reshape(n, -1)
            count = size.reshape(n, -1).gather(1, at).reshape(n, 2 * k, -1).amax(-1).t()
        else:
            nz = size.sign()
            prefix = torch.cat([torch.zeros_like(nz[..., :1]), nz.cumsum(-1)], -1).reshape(n, -1)
            start = (r[..., None] + torch.arange(sh, device=dev)) * (w + 1) + col[..., None]
            start = start.permute(1, 0, 2).reshape(n, -1)  # (n, 2k sh): each window's rows
            count = prefix.gather(1, start + sw) - prefix.gather(1, start)
            count = count.reshape(n, 2 * k, sh).sum(-1).t()  # (2k, n)
        changes = (count[:k] + count[k:] > 0) | spare[None]  # (k, n)
        first = torch.where(changes.any(0), changes.to(delta.dtype).argmax(0), k - 1)
        return tuple(rc[:, first, torch.arange(n, device=dev)])

    def _move(
        self,
        x0: torch.Tensor,
        x: torch.Tensor,
        eps: torch.Tensor,
        sh: int,
        sw: int,
        bounds: Bounds,
        gen: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One "move" proposal per row, on the two windows' entries only: W2 emptied; W1 set to
        a fresh pattern (``_patterns`` at weight ``l2_eta_weight``, a random sign per channel)
        plus W1's old content (per channel at unit norm), scaled so that W1 holds the mass of
        both windows and the budget left, eps^2 - ||delta||^2 (then ||delta|| = eps), and
        fitted into the box by the exact l2 fill on W1's entries (``Norm.fill``). Nothing
        outside the windows changes, so the whole input is never projected (the reference
        rescales the whole perturbation to eps and clips, losing what the box cuts off).
        Returns (index, value, weight) (n, c, 2 sh sw): W1's entries, then W2's; W2's entries
        inside W1 repeat W1's (index and value) with weight 0."""
        img0, img = as_image(x0), as_image(x)
        n, c, h, w = img0.shape
        dev, size = x0.device, sh * sw
        flat0, flat = img0.reshape(n, c, h * w), img.reshape(n, c, h * w)
        delta = (flat - flat0).reshape(n, -1)
        norm_img2 = torch.linalg.vecdot(delta, delta)[:, None]  # (n, 1)
        left = eps[:, None] ** 2 - norm_img2  # the budget not yet used
        spare = left[:, 0] > _SPARE * eps**2  # budget beyond the rounding of ||delta|| = eps
        r1, c1, r2, c2 = self._window_pairs(delta.reshape(img.shape), spare, sh, sw, gen)
        ii, jj, offset = _window_grid(sh, sw, w, dev)  # (s,): row, column, flat offset
        at1 = ((r1 * w + c1)[:, None] + offset)[:, None].expand(n, c, size)
        own = ((r2 * w + c2)[:, None] + offset)[:, None].expand(n, c, size)  # W2's entries
        dr, dc = r2[:, None] + ii - r1[:, None], c2[:, None] + jj - c1[:, None]
        in_w1 = (dr >= 0) & (dr < sh) & (dc >= 0) & (dc < sw)  # (n, s): W2's entries in W1
        local = (dr.clamp(0, sh - 1) * sw + dc.clamp(0, sw - 1))[:, None].expand(n, c, size)
        base1 = flat0.gather(-1, at1)
        old1 = flat.gather(-1, at1) - base1  # (n, c, s)
        old2 = (flat.gather(-1, own) - flat0.gather(-1, own)) * (~in_w1)[:, None]
        norm_win2 = (old1 * old1).sum((1, 2))[:, None] + (old2 * old2).sum((1, 2))[:, None]
        room = (left.clamp_min(0.0) + norm_win2) / c  # per channel
        pats = self._patterns(n, sh, sw, gen, x0) * self.cfg.l2_eta_weight
        fresh = pats.reshape(n, 1, size) * self._sign((n, c, 1), gen, x0)
        new = fresh + old1 / old1.norm(dim=-1, keepdim=True).clamp_min(_TINY)
        new = new / new.norm(dim=-1, keepdim=True).clamp_min(_TINY) * room[:, :, None].sqrt()
        new = new.reshape(n, -1)
        if bounds is not None:  # the same norm inside the box (or all that the box allows)
            lo, hi = bounds
            b1 = base1.reshape(n, -1)
            box = room_toward(new, hi - b1, b1 - lo)
            clipped = ((new.abs() - box).amax(dim=-1) > 0).nonzero()[:, 0]  # the others fit
            if len(clipped):
                part = new[clipped]
                fill = self.norm.fill(part.abs(), box[clipped], part.norm(dim=-1))
                new[clipped] = part.sign() * fill
        value1 = base1 + new.reshape(n, c, size)
        value1 = value1 if bounds is None else value1.clamp(*bounds)  # rounding only
        at2 = torch.where(in_w1[:, None], at1.gather(-1, local), own)
        value2 = torch.where(in_w1[:, None], value1.gather(-1, local), flat0.gather(-1, own))
        once = (~in_w1)[:, None].expand(n, c, size).to(x0)  # W2's entries not written by W1
        weight = torch.cat([torch.ones_like(value1), once], -1)
        return torch.cat([at1, at2], -1), torch.cat([value1, value2], -1), weight


@functools.lru_cache(maxsize=256)
def _window_grid(
    sh: int, sw: int, w: int, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, column, flat offset in an image of width w) of each entry of an sh x sw window,
    (sh * sw,) each (cached: callers must not write into them)."""
    ii = torch.arange(sh, device=dev).repeat_interleave(sw)
    jj = torch.arange(sw, device=dev).repeat(sh)
    return ii, jj, ii * w + jj


def _with_windows(x: torch.Tensor, at: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """x (n, *D) with each row's window (``Square._draw_linf``: flat pixel index ``at`` and
    ``value``, (n, c, s * s)) written in."""
    n, c = at.shape[:2]
    return as_image(x).reshape(n, c, -1).scatter(-1, at, value).reshape(x.shape)


def _box_images(
    norm: Norm, x0: torch.Tensor, eps: torch.Tensor, bounds: Bounds
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Norm.ball_box`` (linf: clip(x0 - eps), clip(x0 + eps), the two values a window can
    take) as images."""
    box = norm.ball_box(x0, eps, bounds)
    if box is None:
        raise TypeError(f"the {norm.name} ball is not a box")
    return as_image(box[0]), as_image(box[1])


Scorer = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class _Work:
    """Square's working set: the rows still searched (start, point, budget, label, loss) and,
    for linf, their box images (the two values a window can take) and, on a Flatten + Linear
    model, the first layer's output at each row's point (``z``)."""

    def __init__(
        self,
        x0: torch.Tensor,
        x: torch.Tensor,
        eps: torch.Tensor,
        y: torch.Tensor,
        loss: torch.Tensor,
    ) -> None:
        self.x0, self.x, self.eps, self.y, self.loss = x0, x, eps, y, loss
        self.step: torch.Tensor | None = None  # l2 "step": each row's step (``adapt_step``)
        self.box: tuple[torch.Tensor, torch.Tensor] | None = None
        self.head: AffineHead | None = None
        self.cols = torch.empty(0)  # W^T (D, H): one row per input entry (an embedding table)
        self.z = torch.empty(0)  # (n, H)

    def with_head(self, head: AffineHead | None) -> None:
        self.head = head
        if head is not None:
            self.cols = head[0].t().contiguous()
            self.refresh()

    def refresh(self) -> None:
        """The first layer's output recomputed from x (the updates' rounding does not pile up)."""
        self.z = self._first_layer(self.x)

    def _first_layer(self, x: torch.Tensor) -> torch.Tensor:
        assert self.head is not None
        return torch.nn.functional.linear(x.flatten(1), self.head[0], self.head[1])

    def score(
        self,
        model: Model,
        at: torch.Tensor,
        value: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits (n, K), first-layer output (n, H) or None) of x with the windows ``at`` set
        to ``value`` (``Square._draw_linf``, ``Square._draw_move``), counted as n forward
        passes: by the model, or by its head (``head_of``): z + W[:, window] (value -
        x[window]), then the tail. ``weight`` (n, c, k) 0 marks repeated entries (the same
        index and value twice), counted once."""
        if self.head is None:
            return model(_with_windows(self.x, at, value)), None
        n, c = at.shape[:2]
        flat = as_image(self.x).reshape(n, c, -1)
        tail = self.head[2]
        if 2 * at[0].numel() > self.cols.shape[0]:  # a large window: the whole first layer
            z = self._first_layer(_with_windows(self.x, at, value))
        else:  # sum over the window's entries of (value - x) times W's column (no gather)
            change = value - flat.gather(-1, at)  # (n, c, k)
            change = (change if weight is None else change * weight).reshape(n, -1)
            plane = torch.arange(c, device=at.device)[:, None] * flat.shape[-1]  # channel offset
            entry = (at + plane).reshape(n, -1)
            bag = torch.nn.functional.embedding_bag(
                entry, self.cols, per_sample_weights=change, mode="sum"
            )
            z = self.z + bag
        count_forward(model, n)
        return tail(z), z

    def confirm(self, model: Model, idx: torch.Tensor, score: Scorer | None = None) -> torch.Tensor:
        """Rows ``idx`` that the model itself misclassifies (bool (len(idx),)); the others get
        their exact loss (``score``: logits, labels -> (loss, margin); default the margin
        loss) and first-layer output back and stay in the search."""
        logits = model(self.x[idx])
        margin = margin_loss(logits, self.y[idx])
        loss = margin if score is None else score(logits, self.y[idx])[0]
        fooled = margin > 0
        self.loss[idx] = loss
        self.z[idx] = self._first_layer(self.x[idx])
        return fooled

    def accept(self, idx: torch.Tensor, x: torch.Tensor, loss: torch.Tensor) -> None:
        """Rows ``idx`` move to x."""
        self.x[idx], self.loss[idx] = x, loss

    def accept_windows(
        self,
        idx: torch.Tensor,
        at: torch.Tensor,
        value: torch.Tensor,
        loss: torch.Tensor,
        z: torch.Tensor | None,
    ) -> None:
        """Rows ``idx`` take their windows' values (and first-layer outputs)."""
        self.x[idx], self.loss[idx] = _with_windows(self.x[idx], at, value), loss
        if z is not None:
            self.z[idx] = z[idx]

    def keep(self, k: torch.Tensor) -> _Work:
        out = _Work(self.x0[k], self.x[k], self.eps[k], self.y[k], self.loss[k])
        if self.step is not None:
            out.step = self.step[k]
        if self.box is not None:
            out.box = (self.box[0][k], self.box[1][k])
        out.head, out.cols = self.head, self.cols
        if self.head is not None:
            out.z = self.z[k]
        return out


def window_size(p: float, h: int, w: int, minimum: int = 1, odd: bool = False) -> tuple[int, int]:
    """(height, width) of the window covering a fraction p of an h x w input (a run of
    entries when h = 1), at least ``minimum`` on a side, odd if asked (the l2 proposal)."""
    if h == 1:
        s = max(round(p * w), minimum)
        s += int(odd and s % 2 == 0)
        return 1, int(min(s, w))
    s = max(round((p * h * w) ** 0.5), minimum)
    s += int(odd and s % 2 == 0)
    s = int(min(s, h - 1 if h > minimum else h, w))
    return s, s
