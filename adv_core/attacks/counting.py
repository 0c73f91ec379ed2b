"""Counting model passes (the ``n_forward`` / ``n_backward`` columns).

``Counted(model)`` is a thin wrapper the base class puts around the model of every attack call.
Counts are per example, summed over the batch, as RobustBench and AttackBench report them: a
forward pass of a batch of B inputs counts B forward passes; every backward pass through such an
output (``autograd.grad`` or ``.backward``, including each of FAB's per-class passes) counts B
backward passes. An EOT gradient over S draws of A inputs counts S * A of each. Attribute access
falls through to the wrapped model, so ``linear_weights`` and friends still work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from adv_core.models import AffineHead

Model = Callable[[torch.Tensor], torch.Tensor]


class Counted:
    """A model that counts its per-example forward and backward passes.

    ``parent``: a view of another counter's model for some of its rows (``rows``); its passes
    count on the root counter, so the attack call's totals include every view's."""

    def __init__(self, model: Model, parent: Counted | None = None) -> None:
        self.inner = model
        self.root: Counted = self if parent is None else parent.root
        self.n_forward = 0
        self.n_backward = 0
        self.affine: Affine | None | bool = False  # False: not looked up yet

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        b = int(x.shape[0])
        root = self.root
        root.n_forward += b
        if out.requires_grad:
            out.register_hook(lambda g: root._backward(b))
        return out

    def _backward(self, b: int) -> None:
        self.n_backward += b

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "root"):  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


Affine = tuple[torch.Tensor, torch.Tensor]


def affine_of(model: Model) -> Affine | None:
    """(W, b) when the model under the counting wrappers is exactly ``F.linear(x.flatten(1), W,
    b)`` (``affine_form()`` of models.Ensemble / MemberView), else None; looked up once per
    attack call (the outermost wrapper keeps it: weights do not change during an attack)."""
    if not isinstance(model, Counted):
        return _affine_form(model)
    if model.affine is False:
        model.affine = _affine_form(unwrap(model))
    return model.affine  # type: ignore[return-value]


def _affine_form(model: Model) -> Affine | None:
    form = getattr(model, "affine_form", None)
    return form() if callable(form) else None


def head_of(model: Model) -> AffineHead | None:
    """``affine_head()`` of the model under the counting wrappers (models.Ensemble /
    MemberView: the first layer and the rest of a Flatten + Linear model), else None. A model
    that routes rows (``rows``) has none."""
    form = getattr(unwrap(model), "affine_head", None)
    return form() if callable(form) and route_of(model) is None else None


def count_forward(model: Model, n: int) -> None:
    """Count ``n`` forward passes on the counting wrappers of ``model`` (for logits computed
    from its parts, ``head_of``, without calling it)."""
    _count(model, n, 0)


def count_passes(model: Model, n: int) -> None:
    """Count ``n`` forward and ``n`` backward passes on every counting wrapper of ``model``
    (for a gradient taken in closed form, without calling the model)."""
    _count(model, n, n)


def _count(model: Model, forward: int, backward: int) -> None:
    while isinstance(model, Counted):
        model.root.n_forward += forward
        model.root.n_backward += backward
        model = model.inner


def unwrap(model: Model) -> Model:
    """The model under any counting wrappers (for code that needs the module itself)."""
    while isinstance(model, Counted):
        model = model.inner
    return model


def rows(model: Model, idx: torch.Tensor | slice) -> Model:
    """The model for rows ``idx`` of the batch it is being attacked on.

    That is the model itself, unless it scores each row with its own target (a model with
    ``select_rows``, ``adv_core.models.Targets``: an ensemble and its members attacked as one
    batch, issue 17 item 7): then the rows' targets are selected with the rows, under the
    same counting wrappers. Attacks whose class says ``routes_rows`` call this wherever they
    hand a model a selection, a repeat or a reordering of their rows."""
    if isinstance(idx, slice) and idx == slice(None):
        return model
    if isinstance(model, Counted):
        inner = rows(model.inner, idx)
        return model if inner is model.inner else Counted(inner, parent=model)
    select = getattr(model, "select_rows", None)
    return model if select is None else select(idx)


def route_of(model: Model) -> torch.Tensor | None:
    """(B,) the target of each row when the model routes rows (``rows``), else None."""
    route = getattr(unwrap(model), "route", None)
    return route if isinstance(route, torch.Tensor) else None
