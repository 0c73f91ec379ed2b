"""Configs of one cell (dataset, model, training, attack, Cell). Importable without torch."""

from adv_core.config._base import Frozen, canonical_json, content_hash
from adv_core.config.attacks import AttackConfig
from adv_core.config.cell import ALGO_VERSION, Cell
from adv_core.config.data import DatasetConfig
from adv_core.config.models import ModelConfig
from adv_core.config.training import TrainingConfig

__all__ = [
    "ALGO_VERSION",
    "AttackConfig",
    "Cell",
    "DatasetConfig",
    "Frozen",
    "ModelConfig",
    "TrainingConfig",
    "canonical_json",
    "content_hash",
]
