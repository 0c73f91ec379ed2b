"""Speed-up of training E small MLPs together (stacked parameters, one vmap call per batch)
over training them one after another, on the same data with the same optimiser settings.

    python -m benchmarks.bench_ensemble --members 16 [--device cuda] [--threads 1]

Prints one JSON object: wall and CPU seconds (CPU time is the steadier number on a shared
machine) for the stacked ensemble, for the LoopMembers fallback (one fit, members looped
inside each batch) and for E separate fits of one plain module each (no vmap), and the
speed-ups.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from adv_core.config.data import DigitsData
from adv_core.config.models import MlpModel
from adv_core.config.training import StandardTraining
from adv_core.data import load
from adv_core.models import new_ensemble
from adv_core.rng import generator
from adv_core.training import train


def _timed_fit(
    members: int, seed: int, vectorize: bool, args: argparse.Namespace, bundle: Any
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one training run."""
    dev = torch.device(args.device)
    cfg = StandardTraining(epochs=args.epochs, batch_size=args.batch_size, lr=1e-2)
    ens = new_ensemble(
        MlpModel(width=args.width, depth=args.depth),
        bundle.input_shape,
        bundle.n_classes,
        members,
        seed,
        vectorize=vectorize,
    ).to(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    train(ens, bundle, cfg, generator("bench", seed), dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    bundle = load(DigitsData(), args.n_train, 10, seed=0)
    _timed_fit(2, 99, True, args, bundle)  # warm-up: first-call costs of vmap and kernels
    stacked = _timed_fit(args.members, 0, True, args, bundle)
    looped = _timed_fit(args.members, 0, False, args, bundle)
    singles = [_timed_fit(1, i, False, args, bundle) for i in range(args.members)]
    sequential = (sum(s[0] for s in singles), sum(s[1] for s in singles))
    out: dict[str, Any] = {
        "members": args.members,
        "device": args.device,
        "threads": args.threads,
        "model": f"mlp width {args.width} depth {args.depth}",
        "data": f"digits n_train {args.n_train}, {args.epochs} epochs, batch {args.batch_size}",
    }
    for i, kind in enumerate(("wall", "cpu")):
        out[f"{kind}_stacked_s"] = round(stacked[i], 3)
        out[f"{kind}_loop_members_s"] = round(looped[i], 3)
        out[f"{kind}_sequential_s"] = round(sequential[i], 3)
        out[f"{kind}_speedup_vs_sequential"] = round(sequential[i] / stacked[i], 2)
        out[f"{kind}_speedup_vs_loop_members"] = round(looped[i] / stacked[i], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    print(json.dumps(run(p.parse_args()), indent=2))


if __name__ == "__main__":
    main()
