"""The fooling-input metric ("rubbish class": Goodfellow et al. 2015; Nguyen et al. 2015).

The points attacked are not the evaluation set but random noise of the same shape and count:
uniform in the box for image data, N(0, I) otherwise. An input *fools* the model when its top
softmax probability exceeds ``confidence``. At eps = 0 this is the plain rate of confident
predictions on noise; at eps > 0 each noise input is first pushed for ``steps`` PGD steps
(within the eps-ball around it, inside the box) towards higher confidence in the class the model
already gives it, so larger eps measure how easily confident rubbish is made.

Mapping onto metrics rows (attack = "fooling"): ``robust_acc`` = fraction of noise inputs that
do NOT fool the model at that eps (so 1 - robust_acc is the fooling rate), with its Wilson
interval over ``n_eval`` noise inputs; ``clean_acc`` stays the model's accuracy on the real test
set; ``eps`` is the optimisation radius. Checks that compare robust with clean accuracy do not
apply to these rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adv_core.attacks.base import Attack, Bounds, Model
from adv_core.attacks.gradient import pgd_run
from adv_core.config.attacks import FoolingAttack


def _confidence_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p_y: the log probability of the class the model first gave the noise input."""
    return -F.cross_entropy(logits, y, reduction="none")


class Fooling(Attack):
    cfg: FoolingAttack

    def adversarial(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1).amax(dim=1) > self.cfg.confidence

    def inputs(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
        bounds: Bounds,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if bounds is None:
            noise = torch.randn(x.shape, generator=generator)
        else:
            lo, hi = bounds
            noise = lo + (hi - lo) * torch.rand(x.shape, generator=generator)
        noise = noise.to(device=x.device, dtype=x.dtype)
        with torch.no_grad():
            label = model(noise).argmax(dim=1)
        return noise, label

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return pgd_run(
            self, model, x, y, eps, bounds, generator,
            steps=self.cfg.steps, rel_step=self.cfg.rel_step, loss=_confidence_loss,
            random_start=False,
        )  # fmt: skip
