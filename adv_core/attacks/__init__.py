"""The attack registry (STYLE 5): ``build(cfg)`` returns a stateless attack object.

``build(cfg)(model, x, y, epsilons=[...]) -> AttackResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adv_core.attacks.apgd import Apgd
from adv_core.attacks.base import Attack, AttackResult, Model, correct, predict_correct
from adv_core.attacks.cw import Cw
from adv_core.attacks.exact import Exact
from adv_core.attacks.fooling import Fooling
from adv_core.attacks.gradient import Bpda, EotPgd, Fgsm, Pgd
from adv_core.attacks.min_norm import MinNorm
from adv_core.attacks.sparse import Sparse
from adv_core.attacks.square import Square
from adv_core.attacks.transfer import Transfer

Factory = Callable[[Any], Attack]
_REGISTRY: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    if name in _REGISTRY:
        raise KeyError(f"attack {name!r} registered twice")
    _REGISTRY[name] = factory


def build(cfg: Any) -> Attack:
    try:
        factory = _REGISTRY[cfg.name]
    except KeyError:
        raise KeyError(f"unknown attack {cfg.name!r}; known: {sorted(_REGISTRY)}") from None
    return factory(cfg)


def known() -> list[str]:
    return sorted(_REGISTRY)


register("fgsm", Fgsm)
register("fgm", Fgsm)
register("pgd", Pgd)
register("eot_pgd", EotPgd)
register("bpda", Bpda)
register("apgd", Apgd)
register("cw", Cw)
register("square", Square)
register("sparse", Sparse)
register("exact", Exact)
register("transfer", Transfer)
register("min_norm", MinNorm)
register("fooling", Fooling)

__all__ = [
    "Apgd",
    "Attack",
    "AttackResult",
    "Bpda",
    "Cw",
    "EotPgd",
    "Exact",
    "Fgsm",
    "Fooling",
    "MinNorm",
    "Model",
    "Pgd",
    "Sparse",
    "Square",
    "Transfer",
    "build",
    "correct",
    "known",
    "predict_correct",
    "register",
]
