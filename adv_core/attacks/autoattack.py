"""AutoAttack (Croce and Hein 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks") as one attack.

The components run in the reference order, at each eps only on what is still robust (the
cascade over components inside the cascade over eps), so an example counts as robust only if no
component broke it. The result records, per example, the component that broke it at the
smallest eps (``broken_by``; "clean" for examples misclassified without an attack), and per eps
the robust accuracy after each component in order (``info["component_robust_acc"]`` (K, M),
cumulative, as the reference reports it) and each component's model passes.

``black_box_beats_white_box``: when Square (score-based, no gradients) breaks, beyond tie noise
(``checks.black_box_vs_white_box``), examples that the gradient components before it left
robust, the white-box part is suspect of gradient masking (AutoAttack's own Square check).

``rand``: an example is broken if any of ``rand_evals`` stochastic evaluations misclassifies it,
so it is robust only if it survives all of them (for randomized defenses; with EOT gradients).
"""

from __future__ import annotations

from typing import Any

import torch

from adv_core.attacks.base import Attack, AttackResult, Bounds, Model, correct
from adv_core.checks import BLACK_BOX_BEATS_WHITE_BOX, black_box_vs_white_box
from adv_core.config.attacks import (
    SQUARE_L2_PAPER,
    ApgdAttack,
    AutoAttackComponent,
    AutoAttackConfig,
    FabAttack,
    SquareAttack,
)

ORDER: dict[str, tuple[AutoAttackComponent, ...]] = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}
CLEAN = "clean"


def component_configs(cfg: AutoAttackConfig) -> list[tuple[str, Any]]:
    """(name, attack config) of each component in order, with the reference's settings.

    l1 standard: APGD with 5 restarts and 5 target classes (the reference's l1 setting), and
    Square as on every norm (the reference's ``_set_version``; our Square l1 is its own
    proposal, docs/attacks.md)."""
    names = cfg.components if cfg.version == "custom" else ORDER[cfg.version]
    assert names is not None
    plus, l1 = cfg.version == "plus", cfg.norm == "l1"
    l1_std = l1 and cfg.version == "standard"  # plus keeps 9 targets on l1 (the reference)
    restarts = 5 if plus or l1 else 1
    eot = cfg.eot_samples if cfg.version == "rand" else 1
    common: dict[str, Any] = {"norm": cfg.norm, "eps": cfg.eps}
    apgd = {**common, "steps": cfg.steps, "eot_samples": eot}
    make = {
        "apgd-ce": lambda: ApgdAttack(**apgd, loss="ce", restarts=restarts),
        "apgd-dlr": lambda: ApgdAttack(**apgd, loss="dlr", restarts=restarts),
        "apgd-t": lambda: ApgdAttack(**apgd, loss="dlr_targeted", n_targets=5 if l1_std else 9),
        "fab": lambda: FabAttack(**common, steps=cfg.steps, restarts=5 if plus else 1),
        "fab-t": lambda: FabAttack(**common, steps=cfg.steps, targeted=True, n_targets=9),
        "square": lambda: SquareAttack(  # the authors' Square, as the reference runs it
            **common, queries=cfg.square_queries, p_init=0.8, **SQUARE_L2_PAPER
        ),
    }
    return [(n, make[n]()) for n in names]


class AutoAttack(Attack):
    """``components``: (name, attack) pairs built by the registry from ``component_configs``."""

    cfg: AutoAttackConfig

    def __init__(self, cfg: AutoAttackConfig, components: list[tuple[str, Attack]]) -> None:
        super().__init__(cfg)
        self.components = components
        self.eot = cfg.version == "rand"

    @torch.no_grad()
    def hits(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
    ) -> torch.Tensor:
        """Misclassified (rand: in any of ``rand_evals`` evaluations)."""
        repeats = self.cfg.rand_evals if self.cfg.version == "rand" else 1
        out = torch.zeros(len(y), dtype=torch.bool, device=x.device)
        for _ in range(repeats):
            for i in range(0, len(y), batch_size):
                sl = slice(i, i + batch_size)
                out[sl] |= ~correct(model(x[sl]), y[sl])
        return out

    def solve(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: tuple[float, ...],
        bounds: Bounds,
        generator: torch.Generator | None,
        batch_size: int,
    ) -> AttackResult:
        n, m = len(y), len(self.components)
        broken = self.hits(model, x, y)
        by = torch.where(broken, 0, -1)  # 0: clean, c + 1: component c, -1: robust
        x_best = x.detach().clone()
        x_adv: list[torch.Tensor] = []
        success = torch.zeros(len(eps_list), n, dtype=torch.bool, device=x.device)
        acc = torch.ones(len(eps_list), m)
        passes = torch.zeros(m, 2, dtype=torch.long)
        for k, eps in enumerate(eps_list):
            for c, (_, attack) in enumerate(self.components):
                before = _passes(model)
                idx = (~broken).nonzero()[:, 0]
                for chunk in idx.split(batch_size) if eps > 0 else ():
                    e = torch.full((len(chunk),), eps, dtype=x.dtype, device=x.device)
                    xa = attack.perturb(model, x[chunk], y[chunk], e, bounds, generator).detach()
                    xa = attack.project(x[chunk], xa, e, bounds)
                    hit = self.hits(model, xa, y[chunk])
                    x_best[chunk[hit]] = xa[hit]
                    broken[chunk[hit]] = True
                    by[chunk[hit]] = c + 1
                acc[k, c] = 1.0 - float(broken.float().mean())
                passes[c] += torch.tensor(_passes(model)) - torch.tensor(before)
            success[k] = broken
            x_adv.append(x_best.clone())
        names = [name for name, _ in self.components]
        result = AttackResult(eps_list, x_adv, success, info={"x": x})
        result.info.update(components=names, component_robust_acc=acc, component_passes=passes)
        result.broken_by = [None if b < 0 else ([CLEAN, *names][b]) for b in by.tolist()]
        result.flags += self._square_check(names, acc, n)
        return result

    def _square_check(self, names: list[str], acc: torch.Tensor, n: int) -> list[str]:
        """Square after white-box components: did it break, beyond noise, what they left?"""
        if "square" not in names or names.index("square") == 0:
            return []
        s = names.index("square")
        before = [round(float(a) * n) for a in acc[:, s - 1]]
        after = [round(float(a) * n) for a in acc[:, s]]
        flags = black_box_vs_white_box(after, before, n)
        return [BLACK_BOX_BEATS_WHITE_BOX] if flags else []


def _passes(model: Model) -> tuple[int, int]:
    return int(getattr(model, "n_forward", 0)), int(getattr(model, "n_backward", 0))
