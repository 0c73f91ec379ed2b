"""The FGSM-AT guard (Wong et al. 2020): the weights of the most robust epoch are restored and
a drop of more than ``guard_drop`` below the best is reported as catastrophic overfitting."""

from __future__ import annotations

import copy

import torch

from adv_core import attacks, checks
from adv_core.config import attacks as ac
from adv_core.config.data import DigitsData, Mnist5kData
from adv_core.config.models import CnnModel, MlpModel
from adv_core.config.training import FgsmAtTraining
from adv_core.data import load
from adv_core.models import Ensemble, new_ensemble
from adv_core.rng import generator
from adv_core.training import train
from adv_core.training.adversarial import _adversarial_loss, _pgd_check
from adv_core.training.guard import guarded_fit

N_TRAIN = 4000
CO_SETTING = dict(
    eps=0.25, rel_step=1.0, random_init=False, epochs=6, batch_size=64, lr=3e-3, guard_drop=0.1
)


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


def _pgd_acc(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    cfg = ac.PgdAttack(eps=(eps,), steps=20)
    res = attacks.build(cfg)(model, x, y, (eps,), bounds=(0.0, 1.0), generator=generator("e"))
    return float(res.robust_acc()[0])


def _fgsm_acc(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    cfg = ac.FgsmAttack(eps=(eps,))
    res = attacks.build(cfg)(model, x, y, (eps,), bounds=(0.0, 1.0))
    return float(res.robust_acc()[0])


def test_guard_fires_on_a_real_catastrophic_overfit() -> None:
    """FGSM-AT from x itself (no random start, step eps: the setting Wong et al. 2020 show
    overfitting catastrophically) at linf 0.25 on 4000 MNIST digits with a small CNN. Measured
    (this test, 1 thread, ~30 s CPU): held-out PGD accuracy per epoch 0.16, 0.05, 0, 0, 0, 0;
    the last epoch's weights have PGD-20 accuracy 0.000 on 200 test points but FGSM accuracy
    0.39 (FGSM no longer finds what PGD finds); the kept epoch-1 weights 0.17 PGD. The collapse
    (0.16 -> 0) is below the default guard_drop 0.2 because this small model's robustness
    peaks low, hence guard_drop 0.1 here."""
    bundle = load(Mnist5kData(), N_TRAIN, 200, 0)
    ens = new_ensemble(CnnModel(channels=16, hidden=32), bundle.input_shape, 10, 1, 0)
    cfg = FgsmAtTraining(**CO_SETTING)  # type: ignore[arg-type]
    snapshots: list[dict[str, torch.Tensor]] = []
    real = _pgd_check(cfg, bundle.bounds)

    def check(e: Ensemble, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> float:
        snapshots.append({k: v.clone() for k, v in e.members.state_dict().items()})
        return real(e, x, y, g)

    loss = _adversarial_loss(cfg, 1, bundle.bounds)
    log = guarded_fit(ens, bundle, cfg, generator("t", 0), torch.device("cpu"), loss, check)
    accs = log.info["guard_robust_acc"]
    assert log.info[checks.CATASTROPHIC_OVERFITTING] is True, accs
    eps, x, y = cfg.eps, bundle.x_test, bundle.y_test
    kept = _pgd_acc(ens.eval(), x, y, eps)
    last = copy.deepcopy(ens)
    last.members.load_state_dict(snapshots[-1])
    last_pgd, last_fgsm = _pgd_acc(last.eval(), x, y, eps), _fgsm_acc(last, x, y, eps)
    assert last_pgd <= 0.02 and last_fgsm >= last_pgd + 0.3, (last_pgd, last_fgsm)
    assert kept >= last_pgd + 0.1, (kept, last_pgd, accs)
