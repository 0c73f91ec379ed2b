"""Configs of one cell (dataset, model, training, attack, Cell). Importable without torch."""

from adv_core.config._base import (
    EXECUTION,
    Frozen,
    canonical_json,
    content_hash,
    execution_fields,
)
from adv_core.config.attacks import AttackConfig
from adv_core.config.cell import ALGO_VERSION, Cell
from adv_core.config.data import DatasetConfig
from adv_core.config.models import ModelConfig
from adv_core.config.training import TrainingConfig

__all__ = [
    "ALGO_VERSION",
    "EXECUTION",
    "AttackConfig",
    "Cell",
    "DatasetConfig",
    "Frozen",
    "ModelConfig",
    "TrainingConfig",
    "canonical_json",
    "content_hash",
    "execution_fields",
]
