"""Closed forms of one linear target, each computed once per norm and reused.

- ``exact_robust(norm)``: the exact attack's robust count at every eps of the cell's attacks of
  that norm (the ``closed_form`` sanity flag compares attacks and the worst case with it).
- ``theory(norm)``: for gaussian cells, the trained linear model's exact population robust
  accuracy, the Bayes-optimal one, and Schmidt et al.'s any-learner bound (THEORY.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch

from adv_core import attacks, theory
from adv_core.attacks.exact import Exact
from adv_core.config import Cell
from adv_core.config.attacks import ExactAttack
from adv_core.config.data import GaussianData
from adv_core.data.base import DataBundle
from adv_core.models import Ensemble, stacked_linear_weights
from adv_core.results import ENSEMBLE_MEMBER, TheoryColumns


@dataclass(frozen=True)
class Theory:
    """The theory columns of one (target, norm) at each eps (empty: no closed form)."""

    by_eps: dict[float, TheoryColumns] = field(default_factory=dict)

    def at(self, eps: float) -> TheoryColumns:
        return self.by_eps.get(eps, TheoryColumns())


class ClosedForms:
    """Closed forms of target ``member`` (-1: the ensemble) of a linear cell; x (N, *D), y (N,)
    are the evaluation points on the device."""

    def __init__(
        self,
        cell: Cell,
        ens: Ensemble,
        bundle: DataBundle,
        x: torch.Tensor,
        y: torch.Tensor,
        member: int,
    ) -> None:
        self.cell, self.ens, self.bundle, self.x, self.y, self.member = (
            cell, ens, bundle, x, y, member,
        )  # fmt: skip
        self._exact: dict[str, dict[float, int]] = {}
        self._theory: dict[str, Theory] = {}

    def epsilons(self, norm: str) -> tuple[float, ...]:
        """Every eps the cell's attacks of ``norm`` evaluate, sorted."""
        return tuple(sorted({e for a in self.cell.attacks if a.norm == norm for e in a.eps}))

    def exact_robust(self, norm: str) -> dict[float, int]:
        """{eps: points the exact attack leaves robust}, one exact run per norm."""
        if norm not in self._exact:
            eps = self.epsilons(norm)
            model = self.ens if self.member == ENSEMBLE_MEMBER else self.ens.member(self.member)
            exact = cast(Exact, attacks.build(ExactAttack(norm=norm, eps=eps)))  # type: ignore[arg-type]
            # the closed form's counts only: no adversarial points are built for them
            robust = exact.robust_at(model, self.x, self.y, eps, self.bundle.bounds)
            self._exact[norm] = {e: int(r.sum()) for e, r in zip(eps, robust, strict=True)}
        return self._exact[norm]

    def theory(self, norm: str) -> Theory:
        if norm not in self._theory:
            self._theory[norm] = self._compute_theory(norm)
        return self._theory[norm]

    def _compute_theory(self, norm: str) -> Theory:
        cell, data = self.cell, self.cell.dataset
        if not isinstance(data, GaussianData) or norm not in ("linf", "l2"):
            return Theory()
        w, b = stacked_linear_weights(self.ens)  # (E, C, D), (E, C)
        m = self.member
        w_t, b_t = (w.mean(0), b.mean(0)) if m == ENSEMBLE_MEMBER else (w[m], b[m])
        w_eff = (w_t[1] - w_t[0]).double().numpy()
        b_eff = float(b_t[1] - b_t[0])
        meta = self.bundle.meta
        theta, sigma = meta["theta"].double().numpy(), float(meta["sigma"])
        eps_list = self.epsilons(norm)
        eps = np.asarray(eps_list, dtype=float)
        linear = 1.0 - theory.linear_robust_error(w_eff, b_eff, theta, sigma, eps, norm)
        bayes = 1.0 - theory.bayes_robust_error(theta, sigma, eps, norm)
        any_learner: list[float | None] = [None] * len(eps_list)
        if norm == "linf" and data.theta == "normal":
            bound = theory.schmidt_lower_bound(cell.n_train, data.d, sigma, eps)
            any_learner = [float(v) for v in 1.0 - bound]
        return Theory({
            e: TheoryColumns(float(linear[k]), float(bayes[k]), any_learner[k])
            for k, e in enumerate(eps_list)
        })  # fmt: skip
