"""One cell of a sweep: everything needed to train one ensemble and attack it.

Two content hashes identify a cell (DESIGN.md): ``train_hash`` covers what determines the
trained weights; ``cell_hash`` adds the evaluation plan and ALGO_VERSION. Execution settings
(devices, batch sizes for evaluation, paths: fields marked ``EXECUTION``) never enter a hash.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Annotated, Any

from pydantic import Field, PositiveInt

from adv_core.config._base import Frozen, canonical_json
from adv_core.config.attacks import AttackConfig
from adv_core.config.data import DatasetConfig
from adv_core.config.models import ModelConfig
from adv_core.config.training import TrainingConfig

# Bump when a change to training or evaluation code changes numbers for an unchanged cell.
ALGO_VERSION = "7"
# 3: execution settings (data_root, download, source_path) left the hashes
# 4: small ensembles' targets attacked in one call (adv_core.evaluate.batched_targets): the
#    random draws of random-start attacks on a cell with several members changed
# 5: Square l2's proposal (l2_eta gaussian, weight 0.5, windows from 2, CE search loss; the
#    paper's is ac.SQUARE_L2_PAPER) and conv models attacked as channels-last twins on CPU
#    (adv_core.layout: logits equal up to rounding)
# 6: Square l2's default proposal "step" (l2_proposal; "move" is version 5's search)


def _sha(text: str) -> str:
    """``content_hash`` of a value whose canonical JSON is ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Cell(Frozen):
    """A fully specified unit of work. ``sweep`` is a label, not part of either hash."""

    sweep: str
    dataset: DatasetConfig
    n_train: PositiveInt
    n_eval: PositiveInt
    model: ModelConfig
    training: TrainingConfig
    ensemble_size: Annotated[int, Field(ge=1, le=256)]
    seed: Annotated[int, Field(ge=0)]
    attacks: tuple[AttackConfig, ...]

    def train_part(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "n_train": self.n_train,
            "model": self.model,
            "training": self.training,
            "ensemble_size": self.ensemble_size,
            "seed": self.seed,
        }

    def hash_part(self) -> dict[str, Any]:
        return {
            "train": self.train_part(),
            "attacks": list(self.attacks),
            "n_eval": self.n_eval,
            "algo_version": ALGO_VERSION,
        }

    @cached_property
    def train_text(self) -> str:
        """``canonical_json(self.train_part())``, joined from the configs' cached texts (keys in
        sorted order): a 100k-cell plan hashes in string joins. Equal to the generic encoding
        (tests/spec/test_spec_hashes.py compares them)."""
        return (
            f'{{"dataset":{self.dataset.canonical_text},"ensemble_size":{self.ensemble_size},'
            f'"model":{self.model.canonical_text},"n_train":{self.n_train},"seed":{self.seed},'
            f'"training":{self.training.canonical_text}}}'
        )

    @cached_property
    def train_hash(self) -> str:
        return _sha(self.train_text)

    @cached_property
    def cell_hash(self) -> str:
        attacks = ",".join(a.canonical_text for a in self.attacks)
        return _sha(
            f'{{"algo_version":{canonical_json(ALGO_VERSION)},"attacks":[{attacks}],'
            f'"n_eval":{self.n_eval},"train":{self.train_text}}}'
        )

    def to_json(self) -> str:
        """The cell as canonical JSON (the ``config`` column)."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, text: str) -> Cell:
        return cls.model_validate_json(text)
