"""The FGSM-AT guard (Wong et al. 2020): the weights of the most robust epoch are restored and
a drop of more than ``guard_drop`` below the best is reported as catastrophic overfitting."""

from __future__ import annotations

import torch

from adv_core import checks
from adv_core.config.data import DigitsData
from adv_core.config.models import MlpModel
from adv_core.config.training import FgsmAtTraining
from adv_core.data import load
from adv_core.models import Ensemble, new_ensemble
from adv_core.rng import generator
from adv_core.training import train
from adv_core.training.adversarial import _adversarial_loss
from adv_core.training.guard import guarded_fit


def _setup() -> tuple[Ensemble, object, FgsmAtTraining]:
    bundle = load(DigitsData(classes=(3, 7)), 200, 20, 0)
    ens = new_ensemble(MlpModel(width=16), bundle.input_shape, 2, 1, 0)
    return ens, bundle, FgsmAtTraining(eps=0.1, epochs=4, batch_size=32, lr=1e-2)


def test_guard_restores_the_most_robust_epoch_and_flags_the_collapse() -> None:
    ens, bundle, cfg = _setup()
    scripted = iter([0.5, 0.7, 0.6, 0.1])  # epoch 2 is best; epoch 4 collapses by 0.6
    snapshots: list[dict[str, torch.Tensor]] = []

    def check(e: Ensemble, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> float:
        snapshots.append({k: v.clone() for k, v in e.members.state_dict().items()})
        return next(scripted)

    loss = _adversarial_loss(cfg, 1, bundle.bounds)  # type: ignore[attr-defined]
    log = guarded_fit(ens, bundle, cfg, generator("t", 0), torch.device("cpu"), loss, check)  # type: ignore[arg-type]
    assert log.info[checks.CATASTROPHIC_OVERFITTING] is True
    assert log.info["guard_best_epoch"] == 2 and log.info["guard_robust_acc"] == [
        0.5,
        0.7,
        0.6,
        0.1,
    ]
    final = ens.members.state_dict()
    assert all(torch.equal(final[k], snapshots[1][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[3][k]) for k in final)


def test_guard_quiet_without_a_collapse_and_trains_on_fewer_points() -> None:
    ens, bundle, cfg = _setup()
    log = train(ens, bundle, cfg, generator("t", 0), torch.device("cpu"))  # the real PGD check
    accs = log.info["guard_robust_acc"]
    assert len(accs) == cfg.epochs and all(0.0 <= a <= 1.0 for a in accs)
    assert log.info[checks.CATASTROPHIC_OVERFITTING] == (max(accs) - accs[-1] > cfg.guard_drop)
    unguarded = train(
        new_ensemble(MlpModel(width=16), bundle.input_shape, 2, 1, 0), bundle,  # type: ignore[attr-defined]
        cfg.model_copy(update={"guard": False}), generator("t", 0), torch.device("cpu"),
    )  # fmt: skip
    assert "guard_robust_acc" not in unguarded.info
