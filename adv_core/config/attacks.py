"""Attack configs, discriminated on ``name``. ``eps`` is the list of budgets evaluated in one
call (a column of the results, not a grid axis)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from adv_core.config._base import Frozen

NormName = Literal["linf", "l2", "l1"]


class _AttackBase(Frozen):
    norm: NormName = "linf"
    eps: tuple[NonNegativeFloat, ...] = (0.0, 0.1)

    @field_validator("eps")
    def _eps_ok(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) == 0:
            raise ValueError("eps must list at least one budget")
        if len(set(v)) != len(v):
            raise ValueError("eps values must not repeat")
        return tuple(sorted(v))


class FgsmAttack(_AttackBase):
    """One signed-gradient step (Goodfellow et al.); for l2 this is FGM (normalised gradient)."""

    name: Literal["fgsm"] = "fgsm"


class PgdAttack(_AttackBase):
    """Projected gradient descent (Madry et al.) with random start and restarts.

    Step size is ``rel_step * eps``; an example is robust only if no restart breaks it.
    """

    name: Literal["pgd"] = "pgd"
    steps: PositiveInt = 20
    restarts: PositiveInt = 1
    rel_step: PositiveFloat = 0.25
    random_start: bool = True
    loss: Literal["ce", "margin"] = "ce"


class ExactAttack(_AttackBase):
    """Closed-form robust accuracy of a linear model (THEORY.md section 1); errors otherwise."""

    name: Literal["exact"] = "exact"


AttackConfig = Annotated[FgsmAttack | PgdAttack | ExactAttack, Field(discriminator="name")]
