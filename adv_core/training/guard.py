"""The FGSM-AT guard against catastrophic overfitting (Wong, Rice and Kolter 2020, "Fast is
better than free", section 5: FGSM training can suddenly lose all robustness to PGD within an
epoch while its FGSM accuracy rises; they check PGD accuracy on a batch and stop early).

Before training, ``guard_size`` examples are held out of the training set (at most a fifth of
it). After each epoch a ``guard_steps``-step PGD (random start, step eps / 4, the training
threat model) measures the members' mean robust accuracy on them; the weights of the most
robust epoch are kept and restored at the end. When the last epoch's held-out robust accuracy
fell more than ``guard_drop`` below the best, catastrophic overfitting happened: the log says
so (``info["catastrophic_overfitting"]``) and every row of the cell carries the flag of that
name. Cost per epoch: guard_steps + 1 passes over the held-out batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adv_core.checks import CATASTROPHIC_OVERFITTING
from adv_core.config.training import FgsmAtTraining
from adv_core.data.base import DataBundle
from adv_core.models import Ensemble
from adv_core.training.loop import BatchLoss, TrainLog, fit

CO_KEY = CATASTROPHIC_OVERFITTING

Check = Callable[[Ensemble, torch.Tensor, torch.Tensor, torch.Generator], float]
"""check(ens, x (H, *in), y (H,), gen) -> the members' mean robust accuracy on the batch."""


def guarded_fit(
    ens: Ensemble,
    data: DataBundle,
    cfg: FgsmAtTraining,
    gen: torch.Generator,
    device: torch.device,
    batch_loss: BatchLoss,
    check: Check,
) -> TrainLog:
    """``fit`` on the training set minus a held-out batch, keeping the most robust epoch."""
    x, y = data.x_train.to(device), data.y_train.to(device)
    n_hold = min(cfg.guard_size, len(y) // 5)
    perm = torch.randperm(len(y), generator=gen).to(device)
    hold, rest = perm[:n_hold], perm[n_hold:]
    check_gen = torch.Generator().manual_seed(gen.initial_seed() + 1)
    accs: list[float] = []
    best: dict[str, torch.Tensor] = {}

    def after_epoch(log: TrainLog) -> None:
        ens.eval()
        acc = check(ens, x[hold], y[hold], check_gen) if n_hold else 0.0
        ens.train()
        if not accs or acc > max(accs):
            best.clear()
            best.update({k: v.detach().clone() for k, v in ens.members.state_dict().items()})
        accs.append(acc)

    log = fit(ens, x[rest], y[rest], cfg, gen, batch_loss, after_epoch)
    if best:
        ens.members.load_state_dict(best)
    log.info.update(
        guard_robust_acc=accs,
        guard_best_epoch=int(torch.tensor(accs).argmax()) + 1 if accs else 0,
    )
    log.info[CO_KEY] = bool(accs) and max(accs) - accs[-1] > cfg.guard_drop
    return log
