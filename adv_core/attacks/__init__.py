"""The attack registry (STYLE 5): ``build(cfg)`` returns a stateless attack object.

``build(cfg)(model, x, y, epsilons=[...], bounds=(lo, hi) or None) -> AttackResult``.

Attacks made of other attacks (``min_norm``, ``transfer``, ``autoattack``, a minimum-norm
attack's ``confirm``) get their parts built here and handed in: no attack module looks the
registry up, so the imports run one way (this module -> the attack modules).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adv_core.attacks.apgd import Apgd
from adv_core.attacks.autoattack import AutoAttack, component_configs
from adv_core.attacks.base import (
    Attack,
    AttackResult,
    Model,
    correct,
    predict_correct,
)
from adv_core.attacks.cw import Cw
from adv_core.attacks.exact import Exact
from adv_core.attacks.fab import Fab
from adv_core.attacks.fmn import Fmn
from adv_core.attacks.fooling import Fooling
from adv_core.attacks.gradient import Bpda, EotPgd, Fgsm, Pgd
from adv_core.attacks.min_norm import MinimumNorm, MinNorm
from adv_core.attacks.one_pixel import OnePixel
from adv_core.attacks.sparse import Sparse
from adv_core.attacks.square import Square
from adv_core.attacks.transfer import Transfer
from adv_core.config.attacks import ApgdAttack, SparseAttack
from adv_core.registry import Registry

Factory = Callable[[Any], Attack]
REGISTRY: Registry[Factory] = Registry("attack")


def register(name: str, factory: Factory) -> None:
    REGISTRY.add(name, factory)


def build(cfg: Any) -> Attack:
    return REGISTRY.get(cfg.name)(cfg)


def known() -> list[str]:
    return REGISTRY.known()


def _min_norm(cfg: Any) -> Attack:
    return MinNorm(cfg, build(cfg.base))


def _transfer(cfg: Any) -> Attack:
    return Transfer(cfg, build(cfg.base))


def confirm_attack(cfg: Any) -> Attack | None:
    """A minimum-norm attack's ``confirm``: None, the default (APGD-CE then APGD-T with 9
    targets; the sparse attack for l0) or the fixed-eps attack configured."""
    if cfg.confirm is False:
        return None
    if cfg.confirm is True:
        if cfg.norm == "l0":
            return Sparse(SparseAttack())
        return Apgd(ApgdAttack(norm=cfg.norm, loss="auto", n_targets=9))
    return build(cfg.confirm)


def _autoattack(cfg: Any) -> Attack:
    return AutoAttack(cfg, [(name, build(c)) for name, c in component_configs(cfg)])


def _minimum_norm(cls: type[MinimumNorm]) -> Factory:
    return lambda cfg: cls(cfg, confirm_attack(cfg))


for _name, _factory in {
    "fgsm": Fgsm,
    "fgm": Fgsm,
    "pgd": Pgd,
    "eot_pgd": EotPgd,
    "bpda": Bpda,
    "apgd": Apgd,
    "cw": Cw,
    "square": Square,
    "sparse": Sparse,
    "one_pixel": OnePixel,
    "exact": Exact,
    "transfer": _transfer,
    "min_norm": _min_norm,
    "fooling": Fooling,
    "fab": _minimum_norm(Fab),
    "fmn": _minimum_norm(Fmn),
    "autoattack": _autoattack,
}.items():
    register(_name, _factory)

__all__ = [
    "REGISTRY",
    "Apgd",
    "Attack",
    "AutoAttack",
    "AttackResult",
    "Bpda",
    "Cw",
    "EotPgd",
    "Exact",
    "Fab",
    "Fmn",
    "Fgsm",
    "Fooling",
    "MinNorm",
    "MinimumNorm",
    "Model",
    "OnePixel",
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
