"""Transfer attack: adversarial examples crafted by a white-box ``base`` attack on a source
model, scored on the target (black-box with respect to the target).

The source is given per call (``with_source``): one ensemble member, the whole ensemble, or an
ensemble saved by ``adv_core.models.save_ensemble`` (``source_path``, e.g. another cell's
weights), optionally one of its members. The cascade still attacks only the points the target
gets right at the smaller eps.
"""

from __future__ import annotations

import torch

from adv_core.attacks.base import Attack, Bounds, Model
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

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return self.base.perturb(self.source_model(x.device), x, y, eps, bounds, generator)
