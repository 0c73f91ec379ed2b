"""The worker's C allocator tuning (cluster/allocator.py): large temporaries are reused instead
of mapped afresh and zero-filled by the kernel on every step. Measured in a fresh interpreter
per case (the tuning is per process and cannot be undone): minor page faults of ten forward
and backward passes of a conv layer on 1000 MNIST-sized inputs (an attack step's work), once
the heap has settled. Measured here: 984-994k faults untuned, 0-12k tuned."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json, resource
import torch
from cluster.allocator import tune_allocator
tuned = tune_allocator()
torch.set_num_threads(1)
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
    torch.nn.Linear(16 * 28 * 28, 10),
)
x = torch.rand(1000, 1, 28, 28)  # the first conv output: 50 MB, above any dynamic threshold
def step():
    xx = x.clone().requires_grad_(True)
    net(xx).sum().backward()
for _ in range(10):  # the heap settles
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"tuned": tuned, "faults": after - before}))
"""


def _run(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tuning_stops_the_page_faults_of_large_temporaries() -> None:
    plain = _run({"SWEEPS_MALLOC_TUNING": "0"})
    tuned = _run({})
    assert plain["tuned"] is False and tuned["tuned"] is True
    # untuned: the activations are mapped afresh every step and their pages faulted in
    assert plain["faults"] >= 500_000, plain
    # tuned, once settled: the same heap blocks serve every step (now and then one buffer of
    # 12k pages is placed afresh)
    assert tuned["faults"] <= 50_000, tuned
