"""Training-method configs, discriminated on ``method``.

The adversarial-training ``eps`` is part of the training config (and so of ``train_hash``);
evaluation eps lists belong to attacks. ``norm`` names the threat model of adversarial training.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from adv_core.config._base import Frozen

NormName = Literal["linf", "l2", "l1"]


class _MethodInterface:
    """What every training config answers besides its fields (the rows' train_norm/train_eps,
    cost estimates, checks); the defaults fit a method without a threat model."""

    @property
    def threat_norm(self) -> NormName | None:
        """The norm of the threat model trained against (the ``train_norm`` column)."""
        return None

    @property
    def threat_eps(self) -> float | None:
        """The budget trained against (the ``train_eps`` column)."""
        return None

    @property
    def unlabeled_pool(self) -> int:
        """Unlabeled training points the method draws besides ``n_train`` (rst)."""
        return 0

    @property
    def passes_per_step(self) -> int:
        """Forward-backward passes per training example and step (1 + the inner attack's)."""
        return 1

    def helper_models(self, ensemble_size: int) -> int:
        """Models trained on the labeled set before the ensemble itself (teachers, sources)."""
        return 0


class TrainingBase(_MethodInterface, Frozen):
    """Optimiser settings and the negative-control defense, shared by every method."""

    epochs: PositiveInt = 30
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 1e-2
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: NonNegativeFloat = 0.0
    loss: Literal["ce", "squared"] = "ce"
    defense: Literal["none", "quantize", "noise"] = "none"
    defense_param: PositiveFloat = 0.1


class NoTraining(_MethodInterface, Frozen):
    """Evaluate only: the model comes trained (an external model's weights). Answers the same
    method-level interface as ``TrainingBase`` (no threat model, no unlabeled pool, zero
    epochs and passes) so cost estimates, rows and checks treat it like any method."""

    method: Literal["none"] = "none"
    defense: Literal["none", "quantize", "noise"] = "none"
    defense_param: PositiveFloat = 0.1

    @property
    def epochs(self) -> int:
        return 0

    @property
    def passes_per_step(self) -> int:
        return 0


class StandardTraining(TrainingBase):
    """Empirical risk minimisation on clean data."""

    method: Literal["standard"] = "standard"


class AdversarialTraining(TrainingBase):
    norm: NormName = "linf"
    eps: NonNegativeFloat = 0.1

    @property
    def threat_norm(self) -> NormName | None:
        return self.norm

    @property
    def threat_eps(self) -> float | None:
        return float(self.eps)


class PgdAtTraining(AdversarialTraining):
    """Madry et al.: train on PGD examples (random start, ``steps`` steps of size rel_step*eps)."""

    method: Literal["pgd_at"] = "pgd_at"
    steps: PositiveInt = 7
    rel_step: PositiveFloat = 0.25

    @property
    def passes_per_step(self) -> int:
        return 1 + self.steps


class FgsmAtTraining(AdversarialTraining):
    """Fast adversarial training: random start, one step of 1.25 eps.

    ``guard`` (Wong et al. 2020): hold ``guard_size`` training examples out, check PGD
    robustness on them after every epoch (``guard_steps`` steps), keep the most robust epoch's
    weights, and flag ``catastrophic_overfitting`` when the last epoch fell more than
    ``guard_drop`` below the best (adv_core/training/guard.py)."""

    method: Literal["fgsm_at"] = "fgsm_at"
    rel_step: PositiveFloat = 1.25
    random_init: bool = True  # False: the step starts at x (FGSM-AT before Wong et al.; it
    # overfits catastrophically, tests/data_training/test_fgsm_guard.py)
    guard: bool = True
    guard_size: PositiveInt = 128
    guard_steps: PositiveInt = 10
    guard_drop: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2

    @property
    def passes_per_step(self) -> int:
        return 2


class TradesTraining(AdversarialTraining):
    """Zhang et al. 2019: CE(clean) + beta * KL(clean || adversarial)."""

    method: Literal["trades"] = "trades"
    beta: PositiveFloat = 6.0
    steps: PositiveInt = 7
    rel_step: PositiveFloat = 0.25

    @property
    def passes_per_step(self) -> int:
        return 2 + self.steps  # the clean pass, the inner attack, the adversarial pass


class RstTraining(AdversarialTraining):
    """Carmon et al. 2019: pseudo-label ``n_unlabeled`` points with a standard model, then PGD-AT
    on labeled + pseudo-labeled points (the teacher uses the same optimiser settings)."""

    method: Literal["rst"] = "rst"
    n_unlabeled: PositiveInt = 1000
    steps: PositiveInt = 7
    rel_step: PositiveFloat = 0.25

    @property
    def unlabeled_pool(self) -> int:
        return self.n_unlabeled

    @property
    def passes_per_step(self) -> int:
        return 1 + self.steps

    def helper_models(self, ensemble_size: int) -> int:
        return ensemble_size  # one standard teacher per member


class EnsembleAtTraining(AdversarialTraining):
    """Tramer et al. 2018: each batch, FGSM examples from a source drawn among the model being
    trained and ``n_static`` static models pre-trained with standard training (same architecture,
    fresh seeds); loss = (CE(clean) + CE(adversarial)) / 2."""

    method: Literal["ensemble_at"] = "ensemble_at"
    n_static: PositiveInt = 2

    @property
    def passes_per_step(self) -> int:
        return 2

    def helper_models(self, ensemble_size: int) -> int:
        return self.n_static


class GradRegTraining(TrainingBase):
    """Input-gradient penalty (double backpropagation): CE + lam * mean ||grad_x CE||_q^2,
    q the dual of ``norm`` (l2 -> l2, Drucker & LeCun; linf -> l1, the first-order price of
    an linf perturbation)."""

    method: Literal["grad_reg"] = "grad_reg"
    lam: PositiveFloat = 1.0
    norm: NormName = "l2"

    @property
    def threat_norm(self) -> NormName | None:
        return self.norm

    @property
    def passes_per_step(self) -> int:
        return 2


TrainingConfig = Annotated[
    StandardTraining
    | PgdAtTraining
    | FgsmAtTraining
    | TradesTraining
    | RstTraining
    | EnsembleAtTraining
    | GradRegTraining
    | NoTraining,
    Field(discriminator="method"),
]


def standard_of(cfg: TrainingBase) -> StandardTraining:
    """The standard-training config with ``cfg``'s optimiser settings and no defense (the
    teacher of rst and the static models of ensemble_at)."""
    keep = {
        k: getattr(cfg, k)
        for k in TrainingBase.model_fields
        if k not in ("defense", "defense_param")
    }
    return StandardTraining(**keep)
