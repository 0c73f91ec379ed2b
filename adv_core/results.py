"""The vocabulary of results, at the bottom of the stack (stdlib only: no torch, no pyarrow).

- ``Status``: how a cell ended. A ``str`` enum, so the values written to Parquet stay the plain
  strings ``ok`` / ``failed`` / ``diverged``. ``FINISHED``: the statuses that end a cell for
  good (a ``failed`` cell is run again; a ``diverged`` one is a result).
- A metrics row (one per cell, target, attack, eps) is three typed records side by side:
  ``Provenance`` (who wrote it), ``CellColumns`` (which cell) and ``MetricsRow`` (what adv_core
  measured). ``sweeps.schema`` derives the Parquet column types from these fields, so a column
  is named once, here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from adv_core.stats import wilson


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    DIVERGED = "diverged"


FINISHED: frozenset[Status] = frozenset({Status.OK, Status.DIVERGED})
"""Statuses of a cell that is done: only a ``failed`` cell is worth running again."""

ENSEMBLE_MEMBER = -1
"""The ``member`` of a row about the whole ensemble (0..E-1 name single members)."""


@dataclass(frozen=True)
class TheoryColumns:
    """Closed forms at one eps (null where none applies): the trained model's exact
    population robust accuracy, the Bayes-optimal one, Schmidt et al.'s any-learner bound."""

    theory_robust_acc: float | None = None
    bayes_robust_acc: float | None = None
    any_learner_robust_acc: float | None = None


@dataclass(frozen=True)
class MetricsRow:
    """What adv_core measured for one (target, attack, eps): ``member`` is the target (-1: the
    whole ensemble); counts are out of ``n_eval`` points; accuracies are null on failure."""

    member: int
    attack: str
    norm: str
    eps: float
    source_member: int | None = None  # transfer attacks: the member crafted on (-1: ensemble)
    clean_acc: float | None = None
    robust_acc: float | None = None
    robust_acc_lo: float | None = None  # 95% Wilson interval of robust_acc
    robust_acc_hi: float | None = None
    n_clean_correct: int | None = None
    n_robust: int | None = None
    theory_robust_acc: float | None = None  # closed form of the trained model, where one exists
    bayes_robust_acc: float | None = None
    any_learner_robust_acc: float | None = None
    flags: list[str] = field(default_factory=list)
    status: Status = Status.OK
    error: str | None = None
    wall_s: float | None = None
    device: str | None = None
    n_forward: int | None = None  # model passes of the attack call behind the row, per example
    n_backward: int | None = None  # (shared by the rows of one attack entry; docs/attacks.md)
    components: list[str] | None = None  # autoattack: its components in order ...
    component_robust_acc: list[float] | None = None  # ... and the robust acc after each

    @classmethod
    def measured(
        cls,
        member: int,
        attack: str,
        norm: str,
        eps: float,
        *,
        n_clean: int,
        n_robust: int,
        n: int,
        flags: list[str],
        source_member: int | None = None,
        theory: TheoryColumns | None = None,
        n_forward: int | None = None,
        n_backward: int | None = None,
        components: list[str] | None = None,
        component_robust_acc: list[float] | None = None,
    ) -> MetricsRow:
        """An ``ok`` row from counts: accuracies and the Wilson interval follow from them."""
        lo, hi = wilson(n_robust, n)
        t = theory or TheoryColumns()
        return cls(
            member, attack, norm, float(eps), source_member=source_member,
            clean_acc=n_clean / n if n else None, robust_acc=n_robust / n if n else None,
            robust_acc_lo=lo, robust_acc_hi=hi, n_clean_correct=n_clean, n_robust=n_robust,
            theory_robust_acc=t.theory_robust_acc, bayes_robust_acc=t.bayes_robust_acc,
            any_learner_robust_acc=t.any_learner_robust_acc, flags=sorted(set(flags)),
            n_forward=n_forward, n_backward=n_backward, components=components,
            component_robust_acc=component_robust_acc,
        )  # fmt: skip

    @classmethod
    def failure(cls, attack: str, norm: str, eps: float, status: Status, error: str) -> MetricsRow:
        """A row of the whole ensemble saying why the cell has no numbers."""
        return cls(ENSEMBLE_MEMBER, attack, norm, float(eps), status=status, error=error)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CellColumns:
    """The columns that describe the cell a row belongs to (built by ``sweeps.rows``)."""

    cell_hash: str
    train_hash: str
    dataset: str
    d: int
    n_train: int
    n_eval: int
    model: str
    train_method: str
    train_norm: str | None
    train_eps: float | None
    ensemble_size: int
    seed: int
    config: str  # the cell as canonical JSON
    dataset_config: str
    model_config: str
    training_config: str


@dataclass(frozen=True)
class Provenance:
    """Who wrote a row, when, where (never part of a hash)."""

    schema_version: int
    sweep: str
    run_id: str
    code_version: str
    created_at: dt.datetime
    node: str | None = None
    model_reused: bool | None = None
    attempt: int | None = None


@dataclass(frozen=True)
class ExampleRow:
    """One example under one (target, attack): the examples table's own columns (the table
    also carries schema_version, sweep, run_id and cell_hash). ``broken_eps``: the smallest eps
    of the attack's list that broke it (inf: none). ``first_broken_by``: on ``worst_case``
    rows, the attack that broke it first (null otherwise, and where none did)."""

    member: int
    example: int
    label: int
    clean_correct: bool
    margin: float  # true logit minus the best other one, on the clean input
    attack: str
    norm: str
    broken_eps: float
    min_distance: float | None  # minimum-norm attacks and closed forms
    clean_pred: int | None  # the predicted class on the clean input
    first_broken_by: str | None


ROW_RECORDS: tuple[type[Any], ...] = (Provenance, CellColumns, MetricsRow)
"""The records that make up one metrics row (their fields are disjoint)."""


class PlannedAttack(Protocol):
    """What the row plan reads of an attack config (``adv_core.config.attacks``)."""

    @property
    def norm(self) -> str: ...

    @property
    def eps(self) -> tuple[float, ...]: ...

    @property
    def misclassification(self) -> bool: ...


def common_epsilons(eps_lists: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """The sorted eps values present in every list (empty when there are no lists)."""
    if not eps_lists:
        return ()
    common = set(eps_lists[0]).intersection(*eps_lists[1:])
    return tuple(sorted(common))


def rows_per_target(attack_cfgs: Sequence[PlannedAttack]) -> int:
    """Metrics rows ``adv_core.evaluate`` writes per target: one per (attack, eps), plus, for
    each norm with two or more misclassification attacks, one ``worst_case`` row per eps they
    all evaluate (``adv_core.worst_case``). Torch-free, so ``sweeps plan`` can say it."""
    by_norm: dict[str, list[tuple[float, ...]]] = {}
    for cfg in attack_cfgs:
        if cfg.misclassification:
            by_norm.setdefault(cfg.norm, []).append(tuple(cfg.eps))
    common = sum(len(common_epsilons(e)) for e in by_norm.values() if len(e) >= 2)
    return sum(len(cfg.eps) for cfg in attack_cfgs) + common
