"""Evaluation sanity checks (STYLE 8): pure functions whose results are data.

Each returns the flag names that fired; the flags land in the ``flags`` column of every row
of the evaluation they concern, so suspicious numbers are filtered, not averaged away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

ROBUST_ABOVE_CLEAN = "robust_above_clean"
NOT_MONOTONE = "robust_rises_with_eps"
EPS0_NOT_CLEAN = "eps0_differs_from_clean"
CLOSED_FORM_GAP = "closed_form_gap"
ZERO_GRADIENTS = "zero_gradients"
SOFTMAX_OUTPUTS = "softmax_outputs"
BLACK_BOX_BEATS_WHITE_BOX = "black_box_beats_white_box"
RANDOMIZED_WITHOUT_EOT = "randomized_without_eot"
UNBOUNDED_NOT_BROKEN = "unbounded_not_broken"
NOT_CONVERGED = "not_converged"
CATASTROPHIC_OVERFITTING = "catastrophic_overfitting"

ALL_FLAGS = (
    ROBUST_ABOVE_CLEAN, NOT_MONOTONE, EPS0_NOT_CLEAN, CLOSED_FORM_GAP, ZERO_GRADIENTS,
    SOFTMAX_OUTPUTS, BLACK_BOX_BEATS_WHITE_BOX, RANDOMIZED_WITHOUT_EOT, UNBOUNDED_NOT_BROKEN,
    NOT_CONVERGED, CATASTROPHIC_OVERFITTING,
)  # fmt: skip


def tie_tolerance(n: int) -> int:
    """How many examples may sit on a decision boundary in float32 before we call it a gap."""
    return max(1, int(0.002 * n))


def robust_vs_clean(n_clean: int, n_robust: Sequence[int]) -> list[str]:
    return [ROBUST_ABOVE_CLEAN] if any(r > n_clean for r in n_robust) else []


def monotone(n_robust: Sequence[int]) -> list[str]:
    return (
        [NOT_MONOTONE] if any(b > a for a, b in zip(n_robust, n_robust[1:], strict=False)) else []
    )


def eps_zero(epsilons: Sequence[float], n_clean: int, n_robust: Sequence[int]) -> list[str]:
    return (
        [EPS0_NOT_CLEAN]
        if any(e == 0 and r != n_clean for e, r in zip(epsilons, n_robust, strict=True))
        else []
    )


def closed_form(n_attack: Sequence[int], n_exact: Sequence[int], n: int) -> list[str]:
    """A white-box attack on a linear model must match the exact count up to boundary ties."""
    tol = tie_tolerance(n)
    return (
        [CLOSED_FORM_GAP]
        if any(abs(a - b) > tol for a, b in zip(n_attack, n_exact, strict=True))
        else []
    )


def black_box_vs_white_box(n_black: Sequence[int], n_white: Sequence[int], n: int) -> list[str]:
    """A black-box attack leaving fewer robust points than the white-box one hints at masking."""
    tol = tie_tolerance(n)
    return (
        [BLACK_BOX_BEATS_WHITE_BOX]
        if any(b + tol < w for b, w in zip(n_black, n_white, strict=True))
        else []
    )


def zero_gradients(grad: torch.Tensor, threshold: float = 0.5) -> list[str]:
    """grad (N, *D): more than ``threshold`` of examples with an all-zero input gradient."""
    zero = (grad.reshape(len(grad), -1).abs().amax(dim=1) == 0).float().mean()
    return [ZERO_GRADIENTS] if len(grad) and float(zero) > threshold else []


def softmax_outputs(logits: torch.Tensor) -> list[str]:
    """Outputs that look like probabilities (in [0, 1], rows summing to 1) instead of logits."""
    if logits.numel() == 0:
        return []
    in_unit = bool(((logits >= 0) & (logits <= 1)).all())
    sums_one = bool(
        torch.allclose(
            logits.sum(dim=1),
            torch.ones(len(logits), dtype=logits.dtype, device=logits.device),
            atol=1e-4,
        )
    )
    return [SOFTMAX_OUTPUTS] if in_unit and sums_one else []


def randomized_without_eot(randomized: bool, white_box: bool, eot: bool) -> list[str]:
    """A gradient attack on a randomized model that does not average over its randomness
    (EOT) follows one noisy gradient draw and overstates robustness (Athalye et al. 2018)."""
    return [RANDOMIZED_WITHOUT_EOT] if randomized and white_box and not eot else []


def black_box_beats_white_box_table(
    evaluations: Sequence[tuple[str, bool, Sequence[float], Sequence[int]]], n: int
) -> dict[int, list[str]]:
    """evaluations: (norm, white_box, epsilons, n_robust) per attack on one target.

    Where some black-box attack leaves fewer robust points than a white-box attack of the same
    norm at a shared eps (beyond tie noise), both get the flag: the white-box number is
    suspect (gradient masking). Returns {attack index: flags}."""
    out: dict[int, list[str]] = {}
    for i, (norm_w, white_w, eps_w, rob_w) in enumerate(evaluations):
        if not white_w:
            continue
        for j, (norm_b, white_b, eps_b, rob_b) in enumerate(evaluations):
            if white_b or norm_b != norm_w:
                continue
            pairs = [(e, r) for e, r in zip(eps_w, rob_w, strict=True) if e in eps_b]
            black = [rob_b[list(eps_b).index(e)] for e, _ in pairs]
            if pairs and black_box_vs_white_box(black, [r for _, r in pairs], n):
                out.setdefault(i, []).append(BLACK_BOX_BEATS_WHITE_BOX)
                out.setdefault(j, []).append(BLACK_BOX_BEATS_WHITE_BOX)
    return out


def box_diameter(norm: str, bounds: tuple[float, float] | None, d: int) -> float | None:
    """The largest budget that matters inside the box [lo, hi]^d: its diameter in ``norm``
    (linf hi - lo, l2 (hi - lo) sqrt(d), l1 (hi - lo) d, l0 d entries); None without a box."""
    if bounds is None:
        return None
    width = bounds[1] - bounds[0]
    return {"linf": width, "l2": width * d**0.5, "l1": width * d, "l0": float(d)}.get(norm)


def unbounded_not_broken(n_robust_at_diameter: int, n: int) -> list[str]:
    """At the box's diameter the ball holds the whole box, so a working attack breaks every
    example (unless the model gives one class to every input of the box). Survivors there mean
    the attack cannot follow the model: gradient masking or a broken attack (the security
    curve's end point, Carlini et al. 2019; ART's ``SecurityCurve`` check)."""
    return [UNBOUNDED_NOT_BROKEN] if n_robust_at_diameter > tie_tolerance(n) else []


def not_converged(trace: Sequence[float], tail: float = 0.1, share: float = 0.05) -> list[str]:
    """trace: the attack's best loss so far per iteration (mean over the examples it left
    robust). Flags when the last ``tail`` of the iterations still raised it by more than
    ``share`` of its whole rise: more iterations would likely break more (Croce and Hein 2020,
    Mosbach et al. 2018: report the loss trajectory; Carlini et al. 2019's "run until
    convergence")."""
    t = [float(v) for v in trace]
    if len(t) < 10:
        return []
    k = len(t) - max(1, math.ceil(tail * len(t)))
    total, last = t[-1] - t[0], t[-1] - t[k]
    return [NOT_CONVERGED] if total > 0 and last > share * total else []
