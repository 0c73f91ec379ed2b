"""worst_case rows: per (target, norm, eps) an example is robust only if no attack broke it."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch
from pydantic import TypeAdapter

from adv_core.config import Cell
from adv_core.config.attacks import AttackConfig
from adv_core.examples import first_broken_eps
from adv_core.results import common_epsilons, rows_per_target
from adv_core.run import CellResult, run_cell
from adv_core.worst_case import Broken, worst_case

T, F = True, False


def test_disjoint_breaks_leave_the_intersection_robust() -> None:
    # Six examples at eps (0.1, 0.2); success rows are per eps (nested: broken stays broken).
    a = Broken("a", (0.1, 0.2), torch.tensor([[T, T, F, F, F, F], [T, T, T, F, F, F]]))
    b = Broken("b", (0.1, 0.2), torch.tensor([[F, F, F, T, F, F], [F, F, F, T, T, F]]))
    wc = worst_case([a, b])
    assert wc is not None and wc.epsilons == (0.1, 0.2)
    # robust under a: {2,3,4,5} then {3,4,5}; under b: {0,1,2,4,5} then {0,1,2,5}
    assert wc.n_robust == [len({2, 3, 4, 5} & {0, 1, 2, 4, 5}), len({3, 4, 5} & {0, 1, 2, 5})]
    assert (~wc.success[0]).nonzero().flatten().tolist() == [2, 4, 5]
    assert (~wc.success[1]).nonzero().flatten().tolist() == [5]
    assert wc.first_by == ["a", "a", "a", "b", "b", None]
    assert first_broken_eps(wc.epsilons, wc.success).tolist() == pytest.approx(
        [0.1, 0.1, 0.2, 0.1, 0.2, math.inf]
    )


def test_ties_go_to_the_first_attack_and_uncovered_eps_are_skipped() -> None:
    a = Broken("a", (0.1, 0.3), torch.tensor([[T, F], [T, T]]))
    b = Broken("b", (0.0, 0.1), torch.tensor([[F, F], [T, T]]))
    wc = worst_case([a, b])
    assert wc is not None and wc.epsilons == (0.1,)  # 0.0 and 0.3 are not covered by both
    assert wc.n_robust == [0] and wc.first_by == ["a", "b"]
    assert worst_case([a, Broken("c", (0.5,), torch.tensor([[F, F]]))]) is None
    assert common_epsilons([(0.2, 0.1), (0.1, 0.2, 0.3)]) == (0.1, 0.2)


ADAPTER: TypeAdapter = TypeAdapter(AttackConfig)


def test_rows_per_target_adds_worst_case_rows_only_for_two_or_more_attacks_of_a_norm() -> None:
    def cfgs(*specs: dict) -> list:
        return [ADAPTER.validate_python(s) for s in specs]

    fgsm = {"name": "fgsm", "eps": [0.0, 0.1]}
    pgd = {"name": "pgd", "eps": [0.1, 0.2]}
    fooling = {"name": "fooling", "eps": [0.1]}
    assert rows_per_target(cfgs(fgsm)) == 2  # one attack: its rows are the worst case
    assert rows_per_target(cfgs(fgsm, fooling)) == 3  # fooling is no misclassification attack
    assert rows_per_target(cfgs(fgsm, pgd)) == 4 + 1  # worst case at the shared eps 0.1
    assert rows_per_target(cfgs(fgsm, {**pgd, "norm": "l2"})) == 4


ATTACKS = [
    {"name": "fgsm", "eps": [0.0, 0.1, 0.2]},
    {"name": "pgd", "eps": [0.1, 0.2], "steps": 5},
    {"name": "square", "eps": [0.1, 0.2, 0.3], "queries": 30},
    {"name": "transfer", "eps": [0.1, 0.2], "source_member": 0, "base": {"name": "fgsm"}},
    {"name": "pgd", "norm": "l2", "eps": [0.5, 1.0], "steps": 5},
    {"name": "fgm", "eps": [0.5, 1.0]},
    {"name": "fooling", "eps": [0.1], "steps": 2},  # no misclassification attack: left out
]


@pytest.fixture(scope="module")
def result() -> tuple[Cell, CellResult]:
    cell = Cell(
        sweep="t", dataset={"name": "digits", "classes": [3, 8]}, n_train=80, n_eval=60,
        model={"name": "mlp", "width": 16}, training={"method": "standard", "epochs": 4},
        ensemble_size=2, seed=0, attacks=tuple(ADAPTER.validate_python(a) for a in ATTACKS),
    )  # fmt: skip
    return cell, run_cell(cell)


def test_worst_case_is_never_above_any_attack(result: tuple[Cell, CellResult]) -> None:
    cell, res = result
    assert len(res.rows) == 3 * rows_per_target(cell.attacks)
    single: dict[tuple[int, str, float], list[float]] = defaultdict(list)
    worst: dict[tuple[int, str, float], float] = {}
    for r in res.rows:
        key = (r["member"], r["norm"], r["eps"])
        if r["attack"] == "worst_case":
            worst[key] = r["robust_acc"]
        elif r["attack"] != "fooling":
            single[key].append(r["robust_acc"])
    assert {(m, n, e) for m, n, e in worst} == {
        (m, n, e) for m in (-1, 0, 1) for n, e in [("linf", 0.1), ("linf", 0.2), ("l2", 0.5),
                                                   ("l2", 1.0)]
    }  # fmt: skip
    for key, acc in worst.items():
        assert acc <= min(single[key]), key
    # its pass counts are those of the attacks it combines
    passes: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
    for r in res.rows:
        if r["attack"] not in ("worst_case", "fooling"):
            passes[(r["member"], r["norm"])][r["attack"]] = r["n_forward"]
    for r in res.rows:
        if r["attack"] == "worst_case":
            assert r["n_forward"] == sum(passes[(r["member"], r["norm"])].values()) > 0


def test_worst_case_examples_say_who_broke_each_first(result: tuple[Cell, CellResult]) -> None:
    _, res = result
    ex = res.examples
    n = len(ex["member"])
    own = {
        (ex["member"][i], ex["attack"][i], ex["norm"][i], ex["example"][i]): ex["broken_eps"][i]
        for i in range(n)
    }
    rows = {(r["member"], r["attack"], r["norm"], r["eps"]): r for r in res.rows}
    for i in range(n):
        if ex["attack"][i] != "worst_case":
            assert ex["first_broken_by"][i] is None
            continue
        member, norm, broke = ex["member"][i], ex["norm"][i], ex["broken_eps"][i]
        by = ex["first_broken_by"][i]
        assert (by is None) == math.isinf(broke)
        if by is not None:  # that attack's own table says it broke the example by that eps
            name = by.split("[")[0]
            assert own[(member, name, norm, ex["example"][i])] <= broke
    # recount from each attack's own examples: robust = not broken by any attack of the norm
    of_norm = {"linf": ("fgsm", "pgd", "square", "transfer"), "l2": ("pgd", "fgm")}
    for (member, attack, norm, eps), r in rows.items():
        if attack == "worst_case":
            keys = [(member, a, norm, i) for i in range(60) for a in of_norm[norm]]
            robust = {i for i in range(60)} - {k[3] for k in keys if own[k] <= eps}
            assert r["n_robust"] == len(robust), (member, norm, eps)
