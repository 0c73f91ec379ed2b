"""AutoAttack as one attack: the reference component lists, the cascade over components, who
broke each example, each component's robust accuracy, and Square's masking check."""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.attacks.autoattack import component_configs
from adv_core.config import attacks as ac
from adv_core.rng import generator
from tests.attacks.conftest import Linear, linear_problem

BOX = (0.0, 1.0)


@pytest.mark.parametrize(
    "version,norm,names",
    [
        ("standard", "linf", ["apgd-ce", "apgd-t", "fab-t", "square"]),
        ("standard", "l2", ["apgd-ce", "apgd-t", "fab-t", "square"]),
        ("standard", "l1", ["apgd-ce", "apgd-t", "fab-t", "square"]),
        ("plus", "linf", ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]),
        ("rand", "linf", ["apgd-ce", "apgd-dlr"]),
    ],
)
def test_reference_component_lists(version: str, norm: str, names: list[str]) -> None:
    comps = component_configs(ac.AutoAttackConfig(version=version, norm=norm))  # type: ignore[arg-type]
    assert [n for n, _ in comps] == names
    by = dict(comps)
    assert by["apgd-t"].n_targets == (5 if norm == "l1" else 9) if "apgd-t" in by else True
    if "square" in by:
        assert (by["square"].queries, by["square"].p_init) == (5000, 0.8)
    if "fab-t" in by:
        assert by["fab-t"].targeted and by["fab-t"].n_targets == 9
    if version == "rand":
        assert all(c.eot_samples == 20 for c in by.values())


@pytest.mark.parametrize("version", ["standard", "plus"])
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_component_lists_are_the_reference_packages(version: str, norm: str) -> None:
    """The components and their settings as pyautoattack's own ``_set_version`` sets them
    (the earlier l1 standard dropped Square, which the reference runs on every norm, and l1
    plus had 5 APGD-T targets where the reference has 9)."""
    from pyautoattack import AutoAttack as Reference

    ref = Reference(torch.nn.Linear(4, 3), norm={"linf": "Linf", "l2": "L2", "l1": "L1"}[norm],
                    eps=0.1, version=version)  # fmt: skip
    comps = component_configs(ac.AutoAttackConfig(version=version, norm=norm))  # type: ignore[arg-type]
    assert [n for n, _ in comps] == list(ref.attacks_to_run)
    by = dict(comps)
    assert by["apgd-ce"].restarts == ref.apgd.n_restarts
    assert by["apgd-t"].n_targets == ref.apgd_targeted.n_target_classes
    assert by["fab-t"].n_targets == ref.fab.n_target_classes
    assert by["square"].queries == ref.square.n_queries
    assert by["square"].p_init == ref.square.p_init


def test_custom_needs_components() -> None:
    with pytest.raises(ValueError, match="components"):
        ac.AutoAttackConfig(version="custom")
    with pytest.raises(ValueError, match="components"):
        ac.AutoAttackConfig(components=("apgd-ce",))


def test_cascade_records_who_broke_what() -> None:
    model, x, y = linear_problem(4, n=120)
    cfg = ac.AutoAttackConfig(
        version="custom", components=("apgd-ce", "fab-t", "square"), eps=(0.05, 0.15),
        steps=10, square_queries=50,
    )  # fmt: skip
    res = attacks.build(cfg)(model, x, y, bounds=BOX, generator=generator("aa"))
    exact = attacks.build(ac.ExactAttack(eps=cfg.eps))(model, x, y, bounds=BOX)
    assert bool((res.robust_acc() >= exact.robust_acc() - 1e-9).all())  # nothing beats exact
    assert bool((res.robust_acc() <= exact.robust_acc() + 3 / len(y)).all())  # and it is strong
    acc = res.info["component_robust_acc"]  # (K, M), cumulative
    assert res.info["components"] == ["apgd-ce", "fab-t", "square"]
    assert torch.allclose(acc[:, -1], res.robust_acc().float())
    assert bool((acc[:, 1:] <= acc[:, :-1]).all())
    by = res.broken_by
    assert by is not None and len(by) == len(y)
    clean_wrong = model(x).argmax(1) != y
    for n, b in enumerate(by):
        if clean_wrong[n]:
            assert b == "clean"
        else:
            assert (b is None) == bool(~res.success[-1, n])
    assert res.info["component_passes"].sum(0)[0] <= res.n_forward


class Masked(torch.nn.Module):
    """A linear model behind a rounding of its inputs: zero gradients everywhere (gradient
    masking), while a score-based attack still sees the decision change."""

    def __init__(self, inner: Linear) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 8) / 8)  # round's gradient is zero


def test_square_beating_the_gradient_part_is_flagged() -> None:
    inner, x, y = linear_problem(3, n=100)
    model = Masked(inner)
    y = model(x).argmax(1).detach()  # every point clean-correct
    cfg = ac.AutoAttackConfig(eps=(0.2,), steps=5, square_queries=200)
    res = attacks.build(cfg)(model, x, y, bounds=BOX, generator=generator("m"))
    acc = res.info["component_robust_acc"][0]
    # APGD-CE, APGD-T and FAB-T see no gradient (only random starts break a few); Square
    # sees the decisions and breaks many more.
    assert float(acc[3]) < float(acc[2]) - 0.1, acc
    assert "black_box_beats_white_box" in res.flags
    honest = attacks.build(cfg)(inner, x, y, bounds=BOX, generator=generator("m"))
    assert "black_box_beats_white_box" not in honest.flags


def test_rand_counts_an_example_robust_only_if_every_draw_is_right() -> None:
    inner, x, y = linear_problem(3, n=200)
    y = inner(x).argmax(1).detach()

    def noisy(z: torch.Tensor) -> torch.Tensor:
        return inner(z) + 0.3 * torch.randn(len(z), 3)

    torch.manual_seed(0)
    cfg = ac.AutoAttackConfig(version="rand", eps=(0.0,), rand_evals=10)
    res = attacks.build(cfg)(noisy, x, y, bounds=BOX)
    one = attacks.build(cfg.model_copy(update={"rand_evals": 1}))(noisy, x, y, bounds=BOX)
    assert float(res.robust_acc()[0]) < float(one.robust_acc()[0])
    assert attacks.build(cfg).eot and not attacks.build(ac.AutoAttackConfig()).eot


def test_spec_names_give_rows_and_examples() -> None:
    """fab, fmn and autoattack selected from a spec: rows with distances-based curves, the
    component columns on autoattack rows, and who broke each example in the examples table."""
    from adv_core.run import run_cell
    from tests.attacks.test_evaluate import _cell

    specs = [
        {"name": "fab", "eps": [0.05, 0.1], "steps": 10},
        {"name": "fmn", "norm": "l2", "eps": [0.5], "steps": 20, "confirm": True},
        {"name": "autoattack", "eps": [0.05, 0.1], "steps": 5, "square_queries": 20},
    ]
    result = run_cell(_cell(specs))
    rows = [r for r in result.rows if r["attack"] in {"fab", "fmn", "autoattack"}]
    assert {r["attack"] for r in rows} == {"fab", "fmn", "autoattack"}
    for r in rows:
        assert r["status"] == "ok" and r["n_forward"] > 0 and r["n_backward"] > 0
        if r["attack"] == "autoattack":
            assert r["components"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
            assert r["component_robust_acc"][-1] == pytest.approx(r["robust_acc"])
        else:
            assert r["components"] is None
    ex = result.examples
    aa = [b for a, b in zip(ex["attack"], ex["first_broken_by"], strict=True) if a == "autoattack"]
    names = {None, "clean", "apgd-ce", "apgd-t", "fab-t", "square"}
    assert aa and set(aa) <= names and "apgd-ce" in aa
    fab = [d for a, d in zip(ex["attack"], ex["min_distance"], strict=True) if a == "fab"]
    assert all(d is not None for d in fab)
