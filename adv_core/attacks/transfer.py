"""Transfer attack: adversarial examples crafted by a white-box ``base`` attack on a source
model, scored on the target (black-box with respect to the target).

The source is given per call (``with_source``): one ensemble member, the whole ensemble, or an
ensemble saved by ``adv_core.models.save_ensemble`` (``source_path``, e.g. another cell's
weights), optionally one of its members. The cascade still attacks only the points the target
gets right at the smaller eps.

Examples are crafted at full strength: a fixed-eps attack stops on an example as soon as it
fools the model it attacks, which on the source leaves the example just across the source's
boundary and rarely across the target's (Papernot et al. 2016 and Tramer et al. 2017 craft with
every step). Here the source never counts as fooled, so every step and restart runs (the last
restart's iterate is kept), unless ``kappa`` is set: then crafting stops once the source's
margin (best wrong logit minus true logit, Carlini and Wagner's confidence) exceeds kappa.
"""

from __future__ import annotations

import copy

import torch

from adv_core.attacks.base import Attack, Bounds, Model, margin_loss
from adv_core.config.attacks import TransferAttack


class Transfer(Attack):
    cfg: TransferAttack
    white_box = False

    def __init__(self, cfg: TransferAttack, base: Attack, source: Model | None = None) -> None:
        """``base``: the white-box attack built from ``cfg.base`` (by the registry)."""
        super().__init__(cfg)
        self.base = base
        self.source = source

    def with_source(self, source: Model) -> Transfer:
        """A copy of this attack crafting on ``source`` (the attack object stays stateless)."""
        return Transfer(self.cfg, self.base, source)

    def source_model(self, device: torch.device) -> Model:
        if self.source is not None:
            return self.source
        if self.cfg.source_path is None:
            raise ValueError("a transfer attack needs a source model or a source_path")
        from adv_core.models import load_ensemble

        ens = load_ensemble(self.cfg.source_path, device).eval()
        return ens if self.cfg.source_member is None else ens.member(self.cfg.source_member)

    def source_done(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) bool: when crafting on the source may stop for an example (never without
        kappa; with kappa, once the source's margin exceeds it)."""
        if self.cfg.kappa is None:
            return torch.zeros(len(y), dtype=torch.bool, device=logits.device)
        return margin_loss(logits, y) > self.cfg.kappa

    def crafter(self) -> Attack:
        """The base attack with its stopping rule replaced by ``source_done``."""
        out = copy.copy(self.base)
        out.adversarial = self.source_done  # type: ignore[method-assign]
        return out

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        source = self.source_model(x.device)
        return self.crafter().perturb(source, x, y, eps, bounds, generator)
