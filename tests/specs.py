"""The small specs of the test suites, from one factory.

``tiny_spec(**fields)`` is the YAML text of the tiny sweep (8 gaussian cells: 2 seeds x 2 d x
2 n_train, a linear 2-member ensemble, fgsm and exact, a few seconds on one CPU) with the given
top-level fields replaced (``None`` drops a field). Every field is written on one line in flow
style (``n_train: [4, 16]``), so a test may still edit the text. The ``make_spec`` fixture
(tests/conftest.py) writes one to a file."""

from __future__ import annotations

from typing import Any

import yaml

FGSM = {"name": "fgsm", "norm": "linf", "eps": [0.0, 0.1, 0.3]}
EXACT = {"name": "exact", "norm": "linf", "eps": [0.0, 0.1, 0.3]}

TINY: dict[str, Any] = {
    "name": "tiny",
    "seeds": [0, 1],
    "datasets": [{"name": "gaussian", "d": [8, 32], "sigma_c": 1.0}],
    "n_train": [4, 16],
    "n_eval": 200,
    "models": [{"name": "linear"}],
    "training": [{"method": "standard", "epochs": 5, "batch_size": 16}],
    "ensemble_size": 2,
    "attacks": [FGSM, EXACT],
    "resources": {"cpus_per_worker": 1, "max_retries": 1},
}


def _flow(value: Any) -> str:
    if isinstance(value, (list, dict)):
        text: str = yaml.safe_dump(
            value, default_flow_style=True, sort_keys=False, width=1 << 20
        ).strip()
        return text
    return str(value).lower() if isinstance(value, bool) else str(value)


def tiny_spec(**fields: Any) -> str:
    """The tiny spec's YAML with ``fields`` replaced (a value of None drops the field)."""
    doc = {k: v for k, v in {**TINY, **fields}.items() if v is not None}
    return "".join(f"{k}: {_flow(v)}\n" for k, v in doc.items())
