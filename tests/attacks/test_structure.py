"""The attack structure: one final ``__call__`` with one hook, the box said explicitly, no
registry look-ups from inside attacks, and model passes counted per example."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from adv_core import attacks
from adv_core.attacks.base import Attack
from adv_core.config import attacks as ac
from adv_core.rng import generator
from tests.attacks.conftest import linear_problem

ATTACK_DIR = Path(attacks.__file__).parent


def test_call_is_final_and_never_overridden() -> None:
    assert getattr(Attack.__call__, "__final__", False)
    classes = [c for c in _subclasses(Attack)]
    assert len(classes) >= 10
    for cls in classes:
        assert "__call__" not in vars(cls), f"{cls.__name__} overrides Attack.__call__"


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_bounds_must_be_said() -> None:
    model, x, y = linear_problem(3, n=8)
    attack = attacks.build(ac.FgsmAttack(eps=(0.1,)))
    with pytest.raises(TypeError, match="bounds"):
        attack(model, x, y)  # type: ignore[call-arg]
    attack(model, x, y, bounds=None)  # unbounded, said explicitly
    attack(model, x, y, bounds=(0.0, 1.0))


def test_attack_modules_never_import_the_registry() -> None:
    """min_norm / transfer / autoattack get their parts from the registry's factories; no
    attack module imports ``adv_core.attacks`` itself (the old lazy-import cycle)."""
    for path in sorted(ATTACK_DIR.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "adv_core.attacks", f"{path.name} imports the registry"
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
                assert "adv_core.attacks" not in names, f"{path.name} imports the registry"


class Tally(torch.nn.Module):
    """An independent count: module hooks, per example."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.fwd = 0
        self.bwd = 0
        self.register_full_backward_hook(self._bwd)

    def _bwd(self, module: torch.nn.Module, gin: object, gout: tuple) -> None:
        self.bwd += int(gout[0].shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.fwd += int(x.shape[0])
        return self.inner(x) * 1.0  # a fresh output, so the backward hook sees every pass

    def linear_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.linear_weights()


@pytest.mark.parametrize(
    "cfg",
    [
        ac.FgsmAttack(eps=(0.0, 0.05, 0.2)),
        ac.PgdAttack(eps=(0.05, 0.2), steps=7, restarts=2),
        ac.ApgdAttack(eps=(0.1,), steps=10, loss="auto", n_targets=2),
        ac.SquareAttack(eps=(0.1,), queries=30),
    ],
    ids=["fgsm", "pgd", "apgd-auto", "square"],
)
def test_pass_counts_match_an_independent_tally(cfg: object) -> None:
    model, x, y = linear_problem(4, n=40)
    tally = Tally(model)
    res = attacks.build(cfg)(tally, x, y, bounds=(0.0, 1.0), generator=generator("count"))  # type: ignore[attr-defined]
    assert (res.n_forward, res.n_backward) == (tally.fwd, tally.bwd)
    assert res.n_forward >= len(y)
    if attacks.build(cfg).white_box:  # type: ignore[arg-type]
        assert res.n_backward > 0
    else:
        assert res.n_backward == 0


def test_fgsm_counts_by_hand() -> None:
    """FGSM at one eps > 0: the clean check (N), one gradient on the A clean-correct points
    (A forward + A backward) and the check of the result (A)."""
    model, x, y = linear_problem(3, n=50)
    a = int((model(x).argmax(1) == y).sum())
    res = attacks.build(ac.FgsmAttack(eps=(0.1,)))(model, x, y, bounds=(0.0, 1.0))
    assert (res.n_forward, res.n_backward) == (len(y) + 2 * a, a)


def test_rows_carry_pass_counts() -> None:
    from adv_core.run import run_cell
    from tests.attacks.test_evaluate import _cell

    rows = run_cell(_cell([{"name": "fgsm", "eps": [0.0, 0.1]}, {"name": "square", "eps": [0.1],
                                                                  "queries": 5}])).rows  # fmt: skip
    for r in rows:
        assert r["n_forward"] >= 60  # at least the clean check of the 60 points
        assert (r["n_backward"] > 0) == (r["attack"] in ("fgsm", "worst_case"))
    fgsm = {(r["member"], r["n_forward"]) for r in rows if r["attack"] == "fgsm"}
    assert len(fgsm) == 3  # one count per (target, attack entry), shared by its eps rows
