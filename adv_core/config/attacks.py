"""Attack configs, discriminated on ``name``. ``eps`` is the list of budgets evaluated in one
call (a column of the results, not a grid axis). Names are stable: fgsm, pgd, apgd, cw, square,
eot_pgd, bpda, transfer, sparse, one_pixel, exact, min_norm, fooling, fab, fmn, autoattack.

For ``sparse`` (norm l0) eps counts changed input entries; for ``one_pixel`` (norm l0) it
counts pixels (all channels of one pixel count once); for ``fooling`` eps is the linf
radius of the optimisation around each random-noise input (0: pure noise).
"""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from adv_core.config._base import EXECUTION, Frozen

NormName = Literal["linf", "l2", "l1"]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class _AttackBase(Frozen):
    norm: NormName = "linf"
    eps: tuple[NonNegativeFloat, ...] = (0.0, 0.1)

    @field_validator("eps")
    def _eps_ok(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) == 0:
            raise ValueError("eps must list at least one budget")
        if len(set(v)) != len(v):
            raise ValueError("eps values must not repeat")
        return tuple(sorted(v))

    @property
    def misclassification(self) -> bool:
        """Success means a wrong label (False only for the fooling metric). Read by the attack
        (``Attack.misclassification``), the checks and the row plan, so it lives here."""
        return True


def _check_norm(norm: str, base_norm: str) -> None:
    if base_norm != norm:
        raise ValueError(f"the base attack's norm {base_norm!r} differs from {norm!r}")


class FgsmAttack(_AttackBase):
    """One signed-gradient step (Goodfellow et al.); for l2 this is FGM (normalised gradient)."""

    name: Literal["fgsm"] = "fgsm"


class FgmAttack(_AttackBase):
    """The fast gradient method: one step of size eps along the l2-normalised gradient (the
    same step as ``fgsm`` with ``norm: l2``, under its usual name; l2 by default)."""

    name: Literal["fgm"] = "fgm"
    norm: NormName = "l2"


class PgdAttack(_AttackBase):
    """Projected gradient descent (Madry et al.) with random start and restarts.

    Step size is ``rel_step * eps``; an example is robust only if no restart breaks it.
    """

    name: Literal["pgd"] = "pgd"
    steps: PositiveInt = 20
    restarts: PositiveInt = 1
    rel_step: PositiveFloat = 0.25
    random_start: bool = True
    loss: Literal["ce", "margin"] = "ce"


class EotPgdAttack(PgdAttack):
    """PGD whose gradient averages ``samples`` draws of the model's randomness (EOT, Athalye
    et al. 2018), optionally over Gaussian input noise of std ``noise`` too."""

    name: Literal["eot_pgd"] = "eot_pgd"  # type: ignore[assignment]
    samples: PositiveInt = 10
    noise: NonNegativeFloat = 0.0


class BpdaAttack(PgdAttack):
    """PGD with a straight-through backward pass through non-differentiable preprocessing
    (BPDA, Athalye et al. 2018): the forward pass is the real model."""

    name: Literal["bpda"] = "bpda"  # type: ignore[assignment]


class ApgdAttack(_AttackBase):
    """Auto-PGD (Croce and Hein 2020) with the AutoAttack step-size schedule.

    ``loss``: ce, dlr, dlr_targeted (the ``n_targets`` runner-up classes in turn) or ``auto``
    (ce, then targeted dlr on what survives: AutoAttack's white-box part).
    """

    name: Literal["apgd"] = "apgd"
    steps: PositiveInt = 100
    restarts: PositiveInt = 1
    loss: Literal["ce", "dlr", "dlr_targeted", "auto"] = "ce"
    n_targets: PositiveInt = 3
    rho: Fraction = 0.75
    momentum: Fraction = 0.75
    eot_samples: PositiveInt = 1  # > 1: each gradient averages this many model draws (EOT)


class CwAttack(_AttackBase):
    """Carlini-Wagner l2 as a minimum-norm attack: tanh change of variables (with a box), Adam,
    a binary search over the constant c. Reports each example's smallest successful distance.
    Defaults at the reference's strength (9 search steps from c = 1e-3, lr 0.01, early abort);
    ``steps`` is where more steps stop helping. ``targets``: also the paper's targeted attack
    against the k most likely wrong classes, keeping the closest point (each one more binary
    search); ``restarts``: the paper's extra starts drawn in the ball of the best distance."""

    name: Literal["cw"] = "cw"
    norm: Literal["l2"] = "l2"
    steps: PositiveInt = 1000
    search_steps: PositiveInt = 9
    lr: PositiveFloat = 0.01
    c_init: PositiveFloat = 1e-3
    kappa: NonNegativeFloat = 0.0
    refine_steps: NonNegativeInt = 12
    abort_early: bool = True
    targets: NonNegativeInt = 2
    restarts: NonNegativeInt = 0


class SquareAttack(_AttackBase):
    """Score-based black-box Square attack (Andriushchenko et al. 2020): random square updates
    accepted when the loss rises. ``queries`` forward passes per example at most.

    The ``l2_*`` fields shape the l2 proposal only (linf and l1 ignore them); docs/attacks.md
    "`square` l2". Defaults: the measured-best variant (``l2_proposal`` "step": a Gaussian
    pattern added in one window, windows down to 2 x 2, the step per example sized by the 1/5
    success rule from ``l2_step``, accepted on cross-entropy); ``SQUARE_L2_PAPER`` restores the
    paper's proposal ("move": mass moved between two windows, eta of nested rectangles at full
    weight, odd windows of at least 3, margin loss). ``l2_eta_weight`` applies to "move"."""

    name: Literal["square"] = "square"
    queries: PositiveInt = 1000
    p_init: Fraction = 0.1
    restarts: PositiveInt = 1
    l2_eta: Literal["gaussian", "paper"] = "gaussian"
    l2_eta_weight: PositiveFloat = 0.5
    l2_min_window: PositiveInt = 2
    l2_loss: Literal["ce", "margin"] = "ce"
    l2_proposal: Literal["step", "move"] = "step"
    l2_step: PositiveFloat = 1.0


class SquareL2Proposal(TypedDict):
    """The ``SquareAttack`` fields of the l2 proposal."""

    l2_eta: Literal["gaussian", "paper"]
    l2_eta_weight: float
    l2_min_window: int
    l2_loss: Literal["ce", "margin"]
    l2_proposal: Literal["step", "move"]


SQUARE_L2_PAPER: SquareL2Proposal = {
    "l2_eta": "paper", "l2_eta_weight": 1.0, "l2_min_window": 3, "l2_loss": "margin",
    "l2_proposal": "move",
}  # fmt: skip
"""The paper's (and the authors' code's) l2 proposal, as ``SquareAttack`` fields."""


class SparseAttack(_AttackBase):
    """l0 attack (PGD0, Croce and Hein 2019): eps is the number of input entries that may
    change; steps of size ``step`` on the normalised margin gradient, projected onto the
    k-sparse set inside the box. Needs bounded inputs."""

    name: Literal["sparse"] = "sparse"
    norm: Literal["l0"] = "l0"  # type: ignore[assignment]
    eps: tuple[NonNegativeFloat, ...] = (0.0, 1.0, 4.0)
    steps: PositiveInt = 50
    step: PositiveFloat = 1.0
    restarts: PositiveInt = 1

    @field_validator("eps")
    def _counts(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(e != int(e) for e in v):
            raise ValueError("l0 budgets count input entries and must be whole numbers")
        return v


class OnePixelAttack(_AttackBase):
    """The one-pixel attack (Su et al. 2019): differential evolution over eps pixels, black-box
    (probabilities only). eps counts pixels: all channels of one pixel count once (on flat
    inputs a pixel is one entry). ``population`` candidates evolve for at most ``generations``
    (DE/rand/1, mutation scale ``f_scale``, no crossover, as in the paper). Needs bounded
    inputs."""

    name: Literal["one_pixel"] = "one_pixel"
    norm: Literal["l0"] = "l0"  # type: ignore[assignment]
    eps: tuple[NonNegativeFloat, ...] = (0.0, 1.0)
    population: PositiveInt = 400
    generations: PositiveInt = 100
    f_scale: PositiveFloat = 0.5

    @field_validator("eps")
    def _counts(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(e != int(e) for e in v):
            raise ValueError("one_pixel budgets count pixels and must be whole numbers")
        return v


class ExactAttack(_AttackBase):
    """Closed-form robust accuracy of a linear model (THEORY.md section 1); errors otherwise.
    Exact for linf, l2, l1 and l0 (l0 needs the box), with or without the box."""

    name: Literal["exact"] = "exact"
    norm: Literal["linf", "l2", "l1", "l0"] = "linf"  # type: ignore[assignment]


class TransferAttack(_AttackBase):
    """Adversarial examples crafted by ``base`` on a source model, scored on the target.

    Source: ``source_path`` (a saved ensemble folder, e.g. another cell's) or this cell's
    ensemble; ``source_member`` picks one member of it (None: the whole ensemble). Rows carry
    ``source_member`` (-1 for a whole ensemble). ``source_path`` is an execution setting; the
    source enters the hashes as ``source_sha256``, the sha256 of its weights file (filled in by
    sweeps/spec.py when the spec is read).

    Crafting runs at full strength: every step of ``base`` on the source, no early exit once
    the source is fooled; with ``kappa`` set it stops once the source's logit margin exceeds
    kappa (a confidence margin, Carlini and Wagner 2017)."""

    name: Literal["transfer"] = "transfer"
    base: Annotated[
        FgsmAttack | PgdAttack | ApgdAttack | EotPgdAttack | BpdaAttack,
        Field(discriminator="name"),
    ] = Field(default_factory=PgdAttack)
    source_member: NonNegativeInt | None = None
    source_path: Annotated[str | None, EXECUTION] = None
    source_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    kappa: NonNegativeFloat | None = None

    @model_validator(mode="after")
    def _same_norm(self) -> TransferAttack:
        _check_norm(self.norm, self.base.norm)
        return self


FixedEpsAttack = Annotated[
    FgsmAttack | PgdAttack | EotPgdAttack | BpdaAttack | ApgdAttack | SquareAttack,
    Field(discriminator="name"),
]


class MinNormAttack(_AttackBase):
    """Per-example minimal eps of the fixed-eps attack ``base`` by bisection on [0, max_eps]
    (``bisection_steps`` halvings), so one run yields the whole robustness-vs-eps curve; rows
    are reported at ``eps``. ``norm`` must match the base attack's."""

    name: Literal["min_norm"] = "min_norm"
    base: FixedEpsAttack = Field(default_factory=PgdAttack)
    max_eps: PositiveFloat = 1.0
    bisection_steps: PositiveInt = 10

    @model_validator(mode="after")
    def _same_norm(self) -> MinNormAttack:
        _check_norm(self.norm, self.base.norm)
        return self


Confirm = bool | FixedEpsAttack
"""A minimum-norm attack's ``confirm``: False (none), True (APGD-CE then APGD-T with 9 targets,
AutoAttack's white-box part) or a fixed-eps attack of the same norm."""


ConfirmReach = Annotated[float, Field(ge=1.0)] | None
"""``confirm_reach``: confirm an example at eps only if its found distance is at most
reach * eps (None: every example the search left robust; ``adv_core.attacks.confirm``)."""


def _check_confirm(confirm: Confirm, norm: str) -> None:
    if not isinstance(confirm, bool):
        _check_norm(norm, confirm.norm)


class FabAttack(_AttackBase):
    """FAB, fast adaptive boundary (Croce and Hein 2020), a minimum-norm attack: steps towards
    the projection onto the linearised decision boundary of the closest class (untargeted) or
    of the ``n_targets`` runner-up classes in turn (``targeted``), biased back towards the input,
    with overshoot ``eta`` and a backward step ``beta`` after each success. ``init_eps`` is the
    radius of restarts' random starts (None: the reference's per-norm default, or the best
    distance found so far). Writes each example's smallest adversarial distance."""

    name: Literal["fab"] = "fab"
    steps: PositiveInt = 100
    restarts: PositiveInt = 1
    targeted: bool = False
    n_targets: PositiveInt = 9
    alpha_max: Fraction = 0.1
    eta: PositiveFloat = 1.05
    beta: Fraction = 0.9
    init_eps: PositiveFloat | None = None
    confirm: Confirm = False
    confirm_reach: ConfirmReach = None

    @model_validator(mode="after")
    def _confirm_norm(self) -> FabAttack:
        _check_confirm(self.confirm, self.norm)
        return self


class FmnAttack(_AttackBase):
    """FMN, fast minimum-norm (Pintor et al. 2021): normalised gradient steps on the logit
    margin inside an lp-ball whose radius adapts (shrinks by gamma after a success, grows
    before the first one), step size and gamma cosine-annealed. l0 budgets count entries.
    Writes each example's smallest adversarial distance."""

    name: Literal["fmn"] = "fmn"
    norm: Literal["linf", "l2", "l1", "l0"] = "linf"  # type: ignore[assignment]
    steps: PositiveInt = 100
    alpha_init: PositiveFloat = 1.0
    alpha_final: PositiveFloat | None = None  # None: alpha_init / 100
    gamma_init: Fraction = 0.05
    gamma_final: Fraction = 0.001
    confirm: Confirm = False
    confirm_reach: ConfirmReach = None

    @model_validator(mode="after")
    def _confirm_norm(self) -> FmnAttack:
        _check_confirm(self.confirm, self.norm)
        return self


AutoAttackComponent = Literal["apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square"]


class AutoAttackConfig(_AttackBase):
    """AutoAttack (Croce and Hein 2020) as one attack: its components run in the reference
    order, each only on what is still robust. ``standard``: APGD-CE, APGD-T (9 targets), FAB-T
    (9 targets), Square (5000 queries, p_init 0.8); l1: APGD with 5 restarts and 5 targets.
    ``plus``: APGD-CE, APGD-DLR (5 restarts), FAB (5 restarts), Square, APGD-T, FAB-T.
    ``rand``: APGD-CE and APGD-DLR with ``eot_samples`` draws per gradient; an example is
    robust only if it survives ``rand_evals`` evaluations. ``custom``: ``components`` in order.
    ``steps`` and ``square_queries`` exist to make tests small; the reference uses 100 / 5000."""

    name: Literal["autoattack"] = "autoattack"
    version: Literal["standard", "plus", "rand", "custom"] = "standard"
    components: tuple[AutoAttackComponent, ...] | None = None
    steps: PositiveInt = 100
    square_queries: PositiveInt = 5000
    eot_samples: PositiveInt = 20
    rand_evals: PositiveInt = 10

    @model_validator(mode="after")
    def _components(self) -> AutoAttackConfig:
        if (self.version == "custom") != (self.components is not None):
            raise ValueError("components are given exactly when version is custom")
        if self.components is not None and len(self.components) == 0:
            raise ValueError("custom components must list at least one attack")
        return self


class FoolingAttack(_AttackBase):
    """Fooling inputs ("rubbish class", Goodfellow et al. 2015; Nguyen et al. 2015): random
    noise inputs (uniform in the box, else N(0, I)), optionally pushed by ``steps`` PGD steps
    on the top softmax probability within linf radius eps. An input fools the model when its
    top probability exceeds ``confidence``. Rows: robust_acc = fraction NOT fooled."""

    name: Literal["fooling"] = "fooling"
    confidence: Fraction = 0.9
    steps: NonNegativeInt = 10
    rel_step: PositiveFloat = 0.25

    @property
    def misclassification(self) -> bool:
        return False


AttackConfig = Annotated[
    FgsmAttack
    | FgmAttack
    | PgdAttack
    | EotPgdAttack
    | BpdaAttack
    | ApgdAttack
    | CwAttack
    | SquareAttack
    | SparseAttack
    | OnePixelAttack
    | ExactAttack
    | TransferAttack
    | MinNormAttack
    | FoolingAttack
    | FabAttack
    | FmnAttack
    | AutoAttackConfig,
    Field(discriminator="name"),
]
