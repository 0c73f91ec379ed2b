"""Evaluate one trained ensemble in typed steps: every attack at every eps on each target.

1. ``targets``: the whole ensemble (member -1) and, when there are several, each member.
2. ``CleanFacts`` per target: clean correctness, prediction, margin and the target's flags.
3. ``AttackRun`` per (target, attack): the attack's result and its sanity flags. Attacks
   that can (``Attack.routes_rows``) attack every target in one call on small problems
   (``batched_targets``): one batch of T x N rows, each row scored by its own target
   (``models.Targets``), split back into one result per target.
4. ``ClosedForms`` per linear target: the exact attack's robust counts and the theory columns,
   each computed once per norm over every eps of the cell, reused by the ``closed_form`` flag
   and by the rows.
5. ``worst_case`` per (target, norm), from the runs' per-example successes (no extra runs).
6. ``MetricsRow`` records and the examples table, built from those records.

Transfer attacks craft on their source (a member, the ensemble or a saved folder) and score
every target; their rows carry ``source_member`` (-1: a whole ensemble).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from adv_core import attacks, checks, worst_case
from adv_core.attacks.base import (
    ALL_EPS_MAX,
    AttackResult,
    Model,
    input_grad,
    margin_loss,
    predict_correct,
)
from adv_core.attacks.exact import Exact
from adv_core.attacks.trace import recording
from adv_core.attacks.transfer import Transfer
from adv_core.closed_forms import ClosedForms, Theory
from adv_core.config import AttackConfig, Cell
from adv_core.data.base import DataBundle
from adv_core.diagnostics import attack_diagnostics
from adv_core.examples import Broken, CleanFacts, ExampleColumns
from adv_core.models import Ensemble, Targets, target_route
from adv_core.results import ENSEMBLE_MEMBER, MetricsRow
from adv_core.rng import derive_seed, generator, seed_global


@dataclass(frozen=True)
class Setting:
    """What every step of one cell's evaluation shares; x (N, *D), y (N,) on the device."""

    cell: Cell
    ens: Ensemble
    bundle: DataBundle
    x: torch.Tensor
    y: torch.Tensor

    @property
    def linear(self) -> bool:
        """Closed forms apply: a deterministic linear model with no preprocessing defense."""
        return (
            self.cell.model.name == "linear"
            and not self.ens.randomized
            and self.cell.training.defense == "none"
        )

    @property
    def n(self) -> int:
        return len(self.y)

    def has_exact(self, norm: str) -> bool:
        return norm != "l0" or self.bundle.bounds is not None


@dataclass(frozen=True)
class Target:
    member: int  # -1: the whole ensemble
    model: Model


@dataclass(frozen=True)
class BuiltAttack:
    index: int  # position in cell.attacks (seeds the attack's randomness)
    cfg: AttackConfig
    attack: attacks.Attack
    source_member: int | None  # transfer attacks: what they craft on
    label: str  # the name, or name[index] when the cell has two attacks of that name


@dataclass(frozen=True)
class Attacked:
    """An attack's result on one target and its loss trace (``attacks.trace``)."""

    result: attacks.AttackResult
    trace: list[float]


@dataclass(frozen=True)
class AttackRun:
    """One attack on one target: its result and flags (n_robust per eps, sorted eps)."""

    built: BuiltAttack
    result: attacks.AttackResult
    n_robust: list[int]
    flags: list[str]


class Evaluation(NamedTuple):
    """What ``checks.black_box_beats_white_box_table`` reads of one run."""

    norm: str
    white_box: bool
    epsilons: tuple[float, ...]
    n_robust: list[int]


def evaluate(
    cell: Cell, ens: Ensemble, bundle: DataBundle, device: torch.device
) -> tuple[list[MetricsRow], ExampleColumns]:
    """Every attack at every eps on the ensemble and each member, plus the worst case per
    (target, norm, eps); flags from adv_core.checks."""
    s = Setting(cell, ens, bundle, bundle.x_test.to(device), bundle.y_test.to(device))
    built = build_attacks(cell, ens, device)
    rows: list[MetricsRow] = []
    examples = ExampleColumns()
    tgts = targets(ens)
    batched = {b.index: attack_targets(s, tgts, b) for b in built if batched_targets(s, b, tgts)}
    for target in tgts:
        clean = clean_facts(s, target)
        forms = ClosedForms(cell, ens, bundle, s.x, s.y, target.member) if s.linear else None
        runs = [
            run_attack(s, target, clean, b, forms, batched.get(b.index, {}).get(target.member))
            for b in built
        ]
        runs = with_black_box_flags(runs, s.n)
        for run in runs:
            cfg, res = run.built.cfg, run.result
            rows += attack_rows(target, clean, run, _theory(forms, cfg.norm), s.n)
            broken = Broken(res.epsilons, res.success, res.distances, res.broken_by)
            examples.add_block(target.member, cfg.name, cfg.norm, s.y, clean, broken)
        for norm, wc in worst_cases(runs).items():
            rows += worst_case_rows(s, target, clean, norm, wc, forms)
            broken = Broken(wc.epsilons, wc.success, first_by=wc.first_by)
            examples.add_block(target.member, worst_case.NAME, norm, s.y, clean, broken)
    return rows, examples


def _theory(forms: ClosedForms | None, norm: str) -> Theory:
    return forms.theory(norm) if forms is not None else Theory()


def targets(ens: Ensemble) -> list[Target]:
    """The whole ensemble (member -1) and, when there is more than one, each member."""
    out = [Target(ENSEMBLE_MEMBER, ens)]
    if ens.n_members > 1:
        out += [Target(i, ens.member(i)) for i in range(ens.n_members)]
    return out


def build_attacks(cell: Cell, ens: Ensemble, device: torch.device) -> list[BuiltAttack]:
    """Each attack of the cell, built once; transfer attacks get their source bound here."""
    names = [a.name for a in cell.attacks]
    out = []
    for i, cfg in enumerate(cell.attacks):
        attack, source = _bind_source(attacks.build(cfg), cfg, ens, device)
        label = cfg.name if names.count(cfg.name) == 1 else f"{cfg.name}[{i}]"
        out.append(BuiltAttack(i, cfg, attack, source, label))
    return out


def _bind_source(
    attack: attacks.Attack, cfg: AttackConfig, ens: Ensemble, device: torch.device
) -> tuple[attacks.Attack, int | None]:
    """(attack, source_member column): transfer attacks get their source model bound once."""
    if not isinstance(attack, Transfer):
        return attack, None
    idx = attack.cfg.source_member
    if attack.cfg.source_path is not None:
        source = attack.with_source(attack.source_model(device))
        return source, ENSEMBLE_MEMBER if idx is None else idx
    if idx is None:
        return attack.with_source(ens), ENSEMBLE_MEMBER
    if idx >= ens.n_members:
        raise ValueError(f"transfer source_member {idx} but the ensemble has {ens.n_members}")
    return attack.with_source(ens.member(idx)), idx


def clean_facts(s: Setting, target: Target) -> CleanFacts:
    """Seeded from (cell, target), so a randomized model gives the same clean numbers on any
    worker (the global RNG is forked, not advanced)."""
    model, x, y = target.model, s.x, s.y
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        seed_global(derive_seed("clean-rng", s.cell.hash_part(), target.member))
        correct = predict_correct(model, x, y)
        with torch.no_grad():
            logits = model(x)  # (N, C)
        grad = input_grad(model, x, y, "margin")
    flags = checks.softmax_outputs(logits) + checks.zero_gradients(grad)
    return CleanFacts(correct, logits.argmax(dim=1), -margin_loss(logits, y), flags)


BATCH_TARGETS_MAX = ALL_EPS_MAX // 2
"""Elements of (targets x positive eps x the evaluation batch) up to which a cell attacks its
targets in one call (``batched_targets``): half the cascade's one-pass budget, since a batch of
several targets also pays its routing (gathers per pass, indices per selection). Measured on
MLPs of width 32 and 256, 2 and 4 members, PGD 10 x 15 eps, PGD 50 x 2 restarts and APGD 100
x 4 eps (``python -m benchmarks.small_cells targets``): the 16 attacks within this bound took
0.73-0.94x the per-target calls; between it and ALL_EPS_MAX 0.85-1.31x; beyond ALL_EPS_MAX,
where the batch loses the one-pass path, up to 2.9x (BENCHMARKS.md, "Batched targets")."""


def batched_targets(s: Setting, b: BuiltAttack, tgts: Sequence[Target]) -> bool:
    """Attack every target in one call: the attack selects its model with its rows
    (``routes_rows``), the model is deterministic (a randomized one would draw its noise for
    all targets at once), and the whole batch, every target at every positive eps, is small
    (``BATCH_TARGETS_MAX``: above it the per-element cost of the attack's elementwise work
    rises as its tensors leave the cache, and one call of T targets costs more than T)."""
    if len(tgts) < 2 or not b.attack.routes_rows or s.ens.randomized:
        return False
    n_pos = max(1, sum(e > 0 for e in b.cfg.eps))
    return len(tgts) * n_pos * s.x.numel() <= BATCH_TARGETS_MAX


def attack_targets(s: Setting, tgts: Sequence[Target], b: BuiltAttack) -> dict[int, Attacked]:
    """{member: its result} from one call on a ``Targets`` batch (block t of N rows routed to
    target t), seeded from (cell, attack, "targets"); passes counted per target."""
    device, n, k = s.x.device, s.n, len(tgts)
    model = Targets(s.ens, target_route(s.ens.n_members, n, device))
    gen = generator("attack", s.cell.hash_part(), b.index, "targets")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        seed_global(derive_seed("attack-rng", s.cell.hash_part(), b.index, "targets"))
        with recording() as rec:
            x, y = s.x.repeat(k, *([1] * (s.x.dim() - 1))), s.y.repeat(k)
            res = b.attack(model, x, y, b.cfg.eps, bounds=s.bundle.bounds, generator=gen)
    out = {}
    for i, t in enumerate(tgts):
        part = _rows_of(res, slice(i * n, (i + 1) * n))
        part.n_forward, part.n_backward = model.tally.forward[i], model.tally.backward[i]
        out[t.member] = Attacked(part, rec.trace(t.member))
    return out


def _rows_of(res: AttackResult, sl: slice) -> AttackResult:
    """One target's rows of a ``Targets`` batch's result (pass counts set by the caller)."""
    return AttackResult(
        res.epsilons,
        [xa[sl] for xa in res.x_adv],
        res.success[:, sl],
        None if res.distances is None else res.distances[sl],
        {k: v[sl] if isinstance(v, torch.Tensor) else v for k, v in res.info.items()},
        flags=list(res.flags),
        broken_by=None if res.broken_by is None else res.broken_by[sl],
    )


def run_attack(
    s: Setting,
    target: Target,
    clean: CleanFacts,
    b: BuiltAttack,
    forms: ClosedForms | None,
    done: Attacked | None = None,
) -> AttackRun:
    """One attack on one target, its randomness seeded from (cell, attack, target); ``done``:
    its result from a call on every target at once (``attack_targets``)."""
    device = s.x.device
    gen = generator("attack", s.cell.hash_part(), b.index, target.member)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        seed_global(derive_seed("attack-rng", s.cell.hash_part(), b.index, target.member))
        if done is None:
            with recording() as rec:
                res = b.attack(
                    target.model, s.x, s.y, b.cfg.eps, bounds=s.bundle.bounds, generator=gen
                )
            done = Attacked(res, rec.trace())
        res = done.result
        diag = attack_diagnostics(
            b.attack, b.cfg.norm, target.model, s.x, s.y, res, s.bundle.bounds, done.trace, gen
        )
    n_rob = _n_robust(res.success)
    flags = clean.flags + res.flags + diag + checks.monotone(n_rob)
    flags += checks.randomized_without_eot(s.ens.randomized, b.attack.white_box, b.attack.eot)
    if b.attack.misclassification:
        flags += _count_flags(clean.n_correct, res.epsilons, n_rob)
        compare = b.attack.white_box and not isinstance(b.attack, Exact)
        if forms is not None and compare and s.has_exact(b.cfg.norm):
            exact = forms.exact_robust(b.cfg.norm)
            flags += checks.closed_form(n_rob, [exact[e] for e in res.epsilons], len(s.y))
    return AttackRun(b, res, n_rob, flags)


def _n_robust(success: torch.Tensor) -> list[int]:
    """(K, N) bool -> robust count per eps."""
    return [int((~row).sum()) for row in success]


def _count_flags(n_clean: int, epsilons: Sequence[float], n_rob: list[int]) -> list[str]:
    return checks.robust_vs_clean(n_clean, n_rob) + checks.eps_zero(epsilons, n_clean, n_rob)


def with_black_box_flags(runs: list[AttackRun], n: int) -> list[AttackRun]:
    """Flag white-box and black-box runs of one target where the black box did better."""
    evals = [
        Evaluation(r.built.cfg.norm, r.built.attack.white_box, r.result.epsilons, r.n_robust)
        if r.built.attack.misclassification
        else Evaluation("", True, (), [])  # the fooling metric is no attack to compare
        for r in runs
    ]
    extra = checks.black_box_beats_white_box_table(evals, n)
    return [
        AttackRun(r.built, r.result, r.n_robust, r.flags + extra.get(i, []))
        for i, r in enumerate(runs)
    ]


def attack_rows(
    target: Target, clean: CleanFacts, run: AttackRun, theory: Theory, n: int
) -> list[MetricsRow]:
    cfg = run.built.cfg
    return [
        MetricsRow.measured(
            target.member,
            cfg.name,
            cfg.norm,
            eps,
            n_clean=clean.n_correct,
            n_robust=run.n_robust[k],
            n=n,
            flags=run.flags,
            source_member=run.built.source_member,
            theory=theory.at(eps),
            n_forward=run.result.n_forward,
            n_backward=run.result.n_backward,
            **_components(run.result, k),
        )
        for k, eps in enumerate(run.result.epsilons)
    ]


def _components(res: AttackResult, k: int) -> dict[str, Any]:
    """Attacks made of parts (autoattack): the parts in order and the robust accuracy after
    each at eps k (cumulative, as AutoAttack reports it)."""
    if "components" not in res.info:
        return {}
    acc = res.info["component_robust_acc"][k]
    return {"components": list(res.info["components"]), "component_robust_acc": acc.tolist()}


def worst_cases(runs: list[AttackRun]) -> dict[str, worst_case.WorstCase]:
    """{norm: the worst case over the target's misclassification runs of that norm}, for the
    norms with two or more (with one, the worst case is that attack's own rows)."""
    by_norm: dict[str, list[worst_case.Broken]] = {}
    for r in runs:
        if r.built.attack.misclassification:
            res = r.result
            broken = worst_case.Broken(
                r.built.label, res.epsilons, res.success, res.n_forward, res.n_backward
            )
            by_norm.setdefault(r.built.cfg.norm, []).append(broken)
    out = {norm: worst_case.worst_case(b) for norm, b in by_norm.items() if len(b) >= 2}
    return {norm: wc for norm, wc in out.items() if wc is not None}


def worst_case_rows(
    s: Setting,
    target: Target,
    clean: CleanFacts,
    norm: str,
    wc: worst_case.WorstCase,
    forms: ClosedForms | None,
) -> list[MetricsRow]:
    """Flags: the target's, the count checks, and ``closed_form`` on a linear target."""
    n_rob = wc.n_robust
    flags = clean.flags + checks.monotone(n_rob) + _count_flags(clean.n_correct, wc.epsilons, n_rob)
    if forms is not None and s.has_exact(norm):
        exact = forms.exact_robust(norm)
        flags += checks.closed_form(n_rob, [exact[e] for e in wc.epsilons], s.n)
    theory = _theory(forms, norm)
    return [
        MetricsRow.measured(
            target.member,
            worst_case.NAME,
            norm,
            eps,
            n_clean=clean.n_correct,
            n_robust=n_rob[k],
            n=s.n,
            flags=flags,
            theory=theory.at(eps),
            n_forward=wc.n_forward,
            n_backward=wc.n_backward,
        )
        for k, eps in enumerate(wc.epsilons)
    ]
