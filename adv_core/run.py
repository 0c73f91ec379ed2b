"""Run one cell in a plain Python process: load data, train (or reuse) the ensemble, attack the
ensemble and each member at every eps, and return metrics rows plus a per-example table.

No Ray, no files: the caller decides where results and weights go.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from adv_core import attacks, checks, data, theory
from adv_core.attacks.base import margin_loss, predict_correct
from adv_core.attacks.exact import Exact
from adv_core.attacks.transfer import Transfer
from adv_core.config import Cell
from adv_core.config.attacks import ExactAttack
from adv_core.data.base import DataBundle
from adv_core.defenses import build_defense
from adv_core.models import Ensemble, new_ensemble, stacked_linear_weights
from adv_core.results import ENSEMBLE_MEMBER, MetricsRow, Status
from adv_core.rng import derive_seed, generator
from adv_core.training import Diverged, TrainLog, train


@dataclass
class CellResult:
    """rows: one dict per (member, attack, eps); examples: column name -> list."""

    rows: list[dict[str, Any]]
    examples: dict[str, list[Any]]
    ensemble: Ensemble | None = None
    trained: bool = False
    train_log: TrainLog | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return Status(self.rows[0]["status"]) if self.rows else Status.OK


def load_data(cell: Cell) -> DataBundle:
    return data.load(
        cell.dataset, cell.n_train, cell.n_eval, cell.seed, cell.training.unlabeled_pool
    )


def build_preprocess(cell: Cell) -> torch.nn.Module | None:
    """Negative-control defenses live in adv_core.defenses (registered by name)."""
    if cell.training.defense == "none":
        return None
    return build_defense(cell.training.defense, cell.training.defense_param)


def train_cell(cell: Cell, bundle: DataBundle, device: torch.device) -> tuple[Ensemble, TrainLog]:
    ens = new_ensemble(
        cell.model,
        bundle.input_shape,
        bundle.n_classes,
        cell.ensemble_size,
        cell.seed,
        build_preprocess(cell),
    ).to(device)
    log = train(ens, bundle, cell.training, generator("train", cell.train_part()), device)
    return ens, log


def run_cell(
    cell: Cell,
    device: torch.device | str = "cpu",
    ensemble: Ensemble | None = None,
    bundle: DataBundle | None = None,
) -> CellResult:
    """Train (unless ``ensemble`` is given) and evaluate one cell. Divergence gives
    ``diverged`` rows, never an exception; other exceptions propagate to the caller."""
    dev = torch.device(device)
    t0 = time.perf_counter()
    bundle = bundle if bundle is not None else load_data(cell)
    trained, log = False, None
    if ensemble is None:
        try:
            ensemble, log = train_cell(cell, bundle, dev)
        except Diverged as exc:
            return CellResult(
                failure_rows(cell, Status.DIVERGED, str(exc)),
                {},
                timings={"total_s": time.perf_counter() - t0},
            )
        trained = True
    ensemble = ensemble.to(dev).eval()
    t1 = time.perf_counter()
    rows, examples = evaluate(cell, ensemble, bundle, dev)
    t2 = time.perf_counter()
    for r in rows:
        r["wall_s"] = t2 - t0
        r["device"] = str(dev)
    return CellResult(
        rows,
        examples,
        ensemble,
        trained,
        log,
        {"train_s": t1 - t0, "eval_s": t2 - t1, "total_s": t2 - t0},
    )


def failure_rows(cell: Cell, status: Status, error: str) -> list[dict[str, Any]]:
    """One row per (attack, eps) for the whole ensemble, accuracies null, saying why."""
    return [
        MetricsRow.failure(a.name, a.norm, eps, Status(status), error).as_dict()
        for a in cell.attacks
        for eps in a.eps
    ]


def error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()[-2000:]


def _row(
    member: int,
    attack: str,
    norm: str,
    eps: float,
    clean: int,
    robust: int,
    n: int,
    flags: list[str],
) -> dict[str, Any]:
    return MetricsRow.measured(
        member, attack, norm, eps, n_clean=clean, n_robust=robust, n=n, flags=flags
    ).as_dict()


def targets(ens: Ensemble) -> list[tuple[int, Any]]:
    """The whole ensemble (member -1) and, when there is more than one, each member."""
    out: list[tuple[int, Any]] = [(ENSEMBLE_MEMBER, ens)]
    if ens.n_members > 1:
        out += [(i, ens.member(i)) for i in range(ens.n_members)]
    return out


EXAMPLE_COLUMNS = ("member", "example", "label", "clean_correct", "margin", "attack", "norm",
                   "broken_eps", "min_distance", "clean_pred")  # fmt: skip


def evaluate(
    cell: Cell, ens: Ensemble, bundle: DataBundle, device: torch.device
) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    """Every attack at every eps on the ensemble and each member; flags from adv_core.checks.

    Transfer attacks craft on their source (a member, the ensemble or a saved folder) and
    score every target; their rows carry ``source_member`` (-1: a whole ensemble)."""
    x, y = bundle.x_test.to(device), bundle.y_test.to(device)
    rows: list[dict[str, Any]] = []
    examples: dict[str, list[Any]] = {k: [] for k in EXAMPLE_COLUMNS}
    built = [_build_attack(a_cfg, ens, device) for a_cfg in cell.attacks]
    for member, model in targets(ens):
        clean_ok = predict_correct(model, x, y)
        base_flags = _target_flags(model, x, y)
        with torch.no_grad():
            logits = model(x)  # (N, C)
            margin, clean_pred = -margin_loss(logits, y), logits.argmax(dim=1)
        per_attack: list[list[dict[str, Any]]] = []
        evals: list[tuple[str, bool, tuple[float, ...], list[int]]] = []
        for a_idx, (a_cfg, (attack, source)) in enumerate(zip(cell.attacks, built, strict=True)):
            gen = generator("attack", cell.hash_part(), a_idx, member)
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(derive_seed("attack-rng", cell.hash_part(), a_idx, member))
                res = attack(model, x, y, a_cfg.eps, bounds=bundle.bounds, generator=gen)
            n_rob = [int(len(y) - s.sum()) for s in res.success]
            flags = (
                base_flags
                + res.flags
                + _attack_flags(cell, ens, model, attack, a_cfg, bundle, clean_ok, res)
            )
            theo = (
                _theory(cell, ens, member, bundle, a_cfg.norm, res.epsilons)
                if _linear(cell, ens)
                else {}
            )
            a_rows = []
            for k, eps in enumerate(res.epsilons):
                row = _row(member, a_cfg.name, a_cfg.norm, eps, int(clean_ok.sum()), n_rob[k],
                           len(y), sorted(set(flags)))  # fmt: skip
                row.update({key: vals[k] for key, vals in theo.items()}, source_member=source)
                row.update(n_forward=res.n_forward, n_backward=res.n_backward)
                a_rows.append(row)
            per_attack.append(a_rows)
            if attack.misclassification:
                evals.append((a_cfg.norm, attack.white_box, res.epsilons, n_rob))
            else:
                evals.append(("", True, (), []))  # the fooling metric is no attack to compare
            _add_examples(examples, member, a_cfg, y, (clean_ok, clean_pred, margin), res)
        for i, extra in checks.black_box_beats_white_box_table(evals, len(y)).items():
            for row in per_attack[i]:
                row["flags"] = sorted(set(row["flags"]) | set(extra))
        rows += [r for a_rows in per_attack for r in a_rows]
    return rows, examples


def _linear(cell: Cell, ens: Ensemble) -> bool:
    return cell.model.name == "linear" and not ens.randomized and cell.training.defense == "none"


def _build_attack(
    a_cfg: Any, ens: Ensemble, device: torch.device
) -> tuple[attacks.Attack, int | None]:
    """(attack, source_member column): transfer attacks get their source model bound once."""
    attack = attacks.build(a_cfg)
    if not isinstance(attack, Transfer):
        return attack, None
    idx = a_cfg.source_member
    if a_cfg.source_path is not None:
        return attack.with_source(
            attack.source_model(device)
        ), ENSEMBLE_MEMBER if idx is None else idx
    if idx is None:
        return attack.with_source(ens), ENSEMBLE_MEMBER
    if idx >= ens.n_members:
        raise ValueError(f"transfer source_member {idx} but the ensemble has {ens.n_members}")
    return attack.with_source(ens.member(idx)), idx


def _attack_flags(
    cell: Cell,
    ens: Ensemble,
    model: Any,
    attack: attacks.Attack,
    a_cfg: Any,
    bundle: DataBundle,
    clean_ok: torch.Tensor,
    res: attacks.AttackResult,
) -> list[str]:
    """The per-attack sanity checks (adv_core.checks) that apply to this attack."""
    n, n_clean = len(clean_ok), int(clean_ok.sum())
    n_rob = [int(n - s.sum()) for s in res.success]
    flags = checks.monotone(n_rob)
    flags += checks.randomized_without_eot(ens.randomized, attack.white_box, attack.eot)
    if not attack.misclassification:
        return flags
    flags += checks.robust_vs_clean(n_clean, n_rob) + checks.eps_zero(res.epsilons, n_clean, n_rob)
    has_exact = a_cfg.norm != "l0" or bundle.bounds is not None
    if _linear(cell, ens) and attack.white_box and not isinstance(attack, Exact) and has_exact:
        x, y = bundle.x_test.to(clean_ok.device), bundle.y_test.to(clean_ok.device)
        ex = attacks.build(ExactAttack(norm=a_cfg.norm, eps=a_cfg.eps))(
            model, x, y, a_cfg.eps, bounds=bundle.bounds
        )
        flags += checks.closed_form(n_rob, [int(n - s.sum()) for s in ex.success], n)
    return flags


def _target_flags(model: Any, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    from adv_core.attacks.base import input_grad

    with torch.no_grad():
        logits = model(x)
    return checks.softmax_outputs(logits) + checks.zero_gradients(input_grad(model, x, y, "margin"))


def _theory(
    cell: Cell,
    ens: Ensemble,
    member: int,
    bundle: DataBundle,
    norm: str,
    epsilons: tuple[float, ...],
) -> dict[str, list[float | None]]:
    """Closed forms for gaussian cells: the trained linear model's exact population robust
    accuracy, the Bayes-optimal robust accuracy, and Schmidt et al.'s any-learner bound."""
    if cell.dataset.name != "gaussian" or norm not in ("linf", "l2"):
        return {}
    w, b = stacked_linear_weights(ens)  # (E, C, D), (E, C)
    w_t, b_t = (w.mean(0), b.mean(0)) if member == ENSEMBLE_MEMBER else (w[member], b[member])
    w_eff = (w_t[1] - w_t[0]).double().numpy()
    b_eff = float(b_t[1] - b_t[0])
    theta, sigma = bundle.meta["theta"].double().numpy(), float(bundle.meta["sigma"])
    eps = np.asarray(epsilons, dtype=float)
    out: dict[str, list[float | None]] = {
        "theory_robust_acc": list(
            1.0 - theory.linear_robust_error(w_eff, b_eff, theta, sigma, eps, norm)
        ),
        "bayes_robust_acc": list(1.0 - theory.bayes_robust_error(theta, sigma, eps, norm)),
    }
    if norm == "linf" and cell.dataset.theta == "normal":
        bound = theory.schmidt_lower_bound(cell.n_train, cell.dataset.d, sigma, eps)
        out["any_learner_robust_acc"] = list(1.0 - bound)
    return out


def _add_examples(
    ex: dict[str, list[Any]],
    member: int,
    a_cfg: Any,
    y: torch.Tensor,
    clean: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    res: attacks.AttackResult,
) -> None:
    """clean: (correct (N,) bool, predicted class (N,), logit margin (N,)) on clean inputs."""
    clean_ok, clean_pred, margin = clean
    n = len(y)
    eps = torch.tensor(res.epsilons + (math.inf,), device=res.success.device)
    first = (
        torch.cat([res.success, torch.ones(1, n, dtype=torch.bool, device=res.success.device)])
        .float()
        .argmax(dim=0)
    )
    broken_eps = eps[first]  # smallest eps in the list that broke each example (inf: none)
    dist = res.distances.tolist() if res.distances is not None else [None] * n
    ex["member"] += [member] * n
    ex["example"] += list(range(n))
    ex["label"] += y.tolist()
    ex["clean_correct"] += clean_ok.tolist()
    ex["margin"] += margin.tolist()
    ex["attack"] += [a_cfg.name] * n
    ex["norm"] += [a_cfg.norm] * n
    ex["broken_eps"] += broken_eps.tolist()
    ex["min_distance"] += dist
    ex["clean_pred"] += clean_pred.tolist()
