"""Item 4: training an ensemble of small MLPs together (stacked parameters, one vmapped call)
against training them one after another with a plain PyTorch loop (the usual way)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from adv_core import data
from adv_core.config.data import GaussianData
from adv_core.config.models import MlpModel
from adv_core.config.training import StandardTraining
from adv_core.data.base import DataBundle
from adv_core.models import build_module, init_members, new_ensemble
from adv_core.rng import generator
from adv_core.training import train
from benchmarks.core import Measurement, Scale, best, interleaved

MODEL = MlpModel(width=64, depth=2)
BATCH = 64


def _train_cfg(scale: Scale) -> StandardTraining:
    return StandardTraining(epochs=scale.train_epochs, batch_size=BATCH, lr=1e-3)


def ours_together(bundle: DataBundle, scale: Scale) -> Callable[[], float]:
    """All members in one stacked ensemble, trained by adv_core.training.train."""

    def run() -> float:
        ens = new_ensemble(MODEL, bundle.input_shape, bundle.n_classes, scale.n_members, 0)
        log = train(ens, bundle, _train_cfg(scale), generator("bench-train"), torch.device("cpu"))
        return log.losses[-1]

    return run


def ours_one_by_one(bundle: DataBundle, scale: Scale) -> Callable[[], float]:
    """Our trainer called once per member (ensembles of one): the cost of not stacking."""

    def run() -> float:
        loss = 0.0
        for i in range(scale.n_members):
            ens = new_ensemble(MODEL, bundle.input_shape, bundle.n_classes, 1, i)
            gen = generator("bench-train", i)
            loss = train(ens, bundle, _train_cfg(scale), gen, torch.device("cpu")).losses[-1]
        return loss

    return run


def plain_sequential(bundle: DataBundle, scale: Scale) -> Callable[[], float]:
    """The reference: one nn.Module at a time, a textbook shuffled mini-batch Adam loop."""
    x, y = bundle.x_train, bundle.y_train

    def run() -> float:
        loss = torch.zeros(())
        for i in range(scale.n_members):
            (net,) = init_members(MODEL, bundle.input_shape, bundle.n_classes, 1, i)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            gen = generator("bench-plain", i)
            for _ in range(scale.train_epochs):
                order = torch.randperm(len(y), generator=gen)
                for start in range(0, len(y), BATCH):
                    idx = order[start : start + BATCH]
                    loss = F.cross_entropy(net(x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        return float(loss.detach())

    return run


def run(scale: Scale) -> list[Measurement]:
    bundle = data.load(GaussianData(d=64, sigma_c=1.0), scale.train_n, 16, 0)
    build_module(MODEL, bundle.input_shape, bundle.n_classes)  # fail early on a bad config
    sides = {
        "together": ours_together(bundle, scale),
        "plain_sequential": plain_sequential(bundle, scale),
        "ours_one_by_one": ours_one_by_one(bundle, scale),
    }
    samples, _ = interleaved(sides, max(1, scale.repeats // 2), warmup=1)
    together, seq = best(samples["together"]), best(samples["plain_sequential"])
    steps = scale.train_epochs * -(-scale.train_n // BATCH)
    return [
        Measurement(
            "4 ensemble training",
            f"{scale.n_members} MLPs d=64 w=64, {steps} steps each",
            seq / together,
            2.0,
            higher_is_better=True,
            ours_s=together,
            reference_s=seq,
            reference="one after another",
            details={
                "ours_one_by_one_s": best(samples["ours_one_by_one"]),
                "speedup_vs_ours_one_by_one": best(samples["ours_one_by_one"]) / together,
                "samples": samples,
            },
        )
    ]
