"""Models and ensembles. Every model returns logits.

An ensemble of E members of one architecture keeps its parameters stacked, shape (E, ...), and
runs all members in one vectorised call (torch.func.vmap over functional_call), so E small
networks train and get attacked together; ``LoopMembers`` is the fallback for architectures that
do not vectorise. ``Ensemble`` averages member logits and is just another model (STYLE 3).
Weights are saved as safetensors plus a JSON config and loaded without unpickling.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from pydantic import TypeAdapter
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from adv_core.config.models import (
    CnnModel,
    ExternalModel,
    LinearModel,
    MlpModel,
    ModelConfig,
    ResnetModel,
)
from adv_core.defenses import preprocess_from_spec
from adv_core.registry import Registry
from adv_core.rng import derive_seed, seed_global

Builder = Callable[[Any, tuple[int, ...], int], nn.Module]
MODELS: Registry[Builder] = Registry("model")
register = MODELS.register

_ACTS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def build_module(cfg: ModelConfig, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    return MODELS.get(cfg.name)(cfg, input_shape, n_classes)


@register("linear")
def _linear(cfg: LinearModel, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_classes))


@register("mlp")
def _mlp(cfg: MlpModel, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = math.prod(input_shape)
    for _ in range(cfg.depth):
        layers += [nn.Linear(width_in, cfg.width), _ACTS[cfg.activation]()]
        width_in = cfg.width
    layers.append(nn.Linear(width_in, n_classes))
    return nn.Sequential(*layers)


def _image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"model {model!r} needs image inputs (C, H, W), got shape {input_shape}")
    c, h, w = input_shape
    return c, h, w


@register("cnn")
def _cnn(cfg: CnnModel, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    c, h, _ = _image_shape(input_shape, "cnn")
    ch = cfg.channels
    pool = 2 if h >= 8 else 1
    side = h // pool // pool
    return nn.Sequential(
        nn.Conv2d(c, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(pool),
        nn.Conv2d(ch, 2 * ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(pool),
        nn.Flatten(), nn.Linear(2 * ch * side * side, cfg.hidden), nn.ReLU(),
        nn.Linear(cfg.hidden, n_classes),
    )  # fmt: skip


class _Block(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(4, ch), nn.ReLU(),
            nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(4, ch),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


@register("resnet")
def _resnet(cfg: ResnetModel, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    c, _, _ = _image_shape(input_shape, "resnet")
    w = cfg.width
    layers: list[nn.Module] = [nn.Conv2d(c, w, 3, padding=1), nn.GroupNorm(4, w), nn.ReLU()]
    layers += [_Block(w) for _ in range(cfg.blocks)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, n_classes)]
    return nn.Sequential(*layers)


@register("external")
def _external(cfg: ExternalModel, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The user's module with its safetensors weights (adv_core.external); its output must be
    (B, n_classes) logits on inputs of ``input_shape``."""
    from adv_core import external

    module = external.load(cfg)
    with torch.no_grad():
        out = module(torch.zeros(2, *input_shape))
    if tuple(out.shape) != (2, n_classes):
        raise external.ExternalModelError(
            f"factory {cfg.factory!r}: inputs (2, {', '.join(map(str, input_shape))}) give "
            f"outputs {tuple(out.shape)}, expected (2, {n_classes}) logits"
        )
    return module


def init_members(
    cfg: ModelConfig, input_shape: tuple[int, ...], n_classes: int, n: int, seed: int
) -> list[nn.Module]:
    """n freshly initialised modules, member i seeded from (seed, i) under a forked RNG."""
    out = []
    for i in range(n):
        with torch.random.fork_rng(devices=[]):
            seed_global(derive_seed("init", seed, i) % (2**63))
            out.append(build_module(cfg, input_shape, n_classes))
    return out


class Members(nn.Module):
    """E members with stacked parameters; forward (B,*in) or (E,B,*in) -> (E,B,C)."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        params, buffers = stack_module_state(modules)
        self.n_members = len(modules)
        self._names = list(params)
        self.stacked = nn.ParameterList(
            [nn.Parameter(params[k].detach().clone()) for k in self._names]
        )
        self._buffer_names = list(buffers)
        for i, k in enumerate(self._buffer_names):
            self.register_buffer(f"_buf{i}", buffers[k].clone())
        self._base = [copy.deepcopy(modules[0]).to("meta")]  # list: keep it out of the module tree

    def param_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self._names, self.stacked, strict=True))

    def buffer_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, f"_buf{i}") for i, k in enumerate(self._buffer_names)}

    def forward_member(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Member ``index`` alone: (B, *in) -> (B, C), without running the others."""
        params = {k: v[index] for k, v in self.param_dict().items()}
        buffers = {k: v[index] for k, v in self.buffer_dict().items()}
        return functional_call(self._base[0], (params, buffers), (x,))

    def _call(self, x: torch.Tensor, x_dim: int | None) -> torch.Tensor:
        base = self._base[0]

        def one(
            p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xi: torch.Tensor
        ) -> torch.Tensor:
            return functional_call(base, (p, b), (xi,))

        return vmap(one, in_dims=(0, 0, x_dim))(self.param_dict(), self.buffer_dict(), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every member on the same inputs: (B, *in) -> (E, B, C)."""
        return self._call(x, None)

    def forward_each(self, x: torch.Tensor) -> torch.Tensor:
        """Member e on its own inputs x[e]: (E, B, *in) -> (E, B, C)."""
        return self._call(x, 0)

    def state(self) -> dict[str, torch.Tensor]:
        return {
            k: v.detach().contiguous().cpu()
            for k, v in {**self.param_dict(), **self.buffer_dict()}.items()
        }

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for k, p in self.param_dict().items():
                p.copy_(tensors[k])
            for k, b in self.buffer_dict().items():
                b.copy_(tensors[k])


class LoopMembers(nn.Module):
    """Fallback: members kept as a ModuleList and run one after another. Same interface."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.n_members = len(modules)
        self.members = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def forward_each(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(xi) for m, xi in zip(self.members, x, strict=True)])

    def forward_member(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return self.members[index](x)

    def state(self) -> dict[str, torch.Tensor]:
        sd = [m.state_dict() for m in self.members]
        return {k: torch.stack([s[k] for s in sd]).contiguous().cpu() for k in sd[0]}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for i, m in enumerate(self.members):
            m.load_state_dict({k: v[i] for k, v in tensors.items()})


MemberStack = Members | LoopMembers


class Ensemble(nn.Module):
    """The averaged-logit ensemble of ``members`` behind an optional input ``preprocess``.

    ``preprocess`` holds negative-control defenses (quantisation, input noise); it is part of
    the model, so attacks see it exactly as a deployed model would.
    """

    def __init__(
        self,
        members: MemberStack,
        model_cfg: ModelConfig,
        input_shape: tuple[int, ...],
        n_classes: int,
        preprocess: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.members = members
        self.model_cfg = model_cfg
        self.input_shape = tuple(input_shape)
        self.n_classes = n_classes
        self.preprocess = preprocess if preprocess is not None else nn.Identity()

    @property
    def n_members(self) -> int:
        return self.members.n_members

    @property
    def randomized(self) -> bool:
        return bool(getattr(self.preprocess, "randomized", False))

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *in) -> (E, B, C)."""
        return self.members(self.preprocess(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *in) -> (B, C): the mean of member logits (one member: its logits, the same
        numbers without the stack and the mean, which small models pay for)."""
        if self.n_members == 1:
            return self.members.forward_member(self.preprocess(x), 0)
        return self.member_logits(x).mean(dim=0)

    def member(self, i: int) -> MemberView:
        return MemberView(self, i)

    def linear_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W (C, D), b (C,)) of the averaged ensemble; raises unless the model is linear."""
        w, b = stacked_linear_weights(self)
        return w.mean(dim=0), b.mean(dim=0)

    def affine_form(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(W (C, D), b (C,)), on the model's device, when ``forward`` is exactly
        ``F.linear(x.flatten(1), W, b)`` (one linear member, no preprocessing), else None.
        Attacks take such a model's input gradient in closed form (``attacks.base.loss_grad``);
        an ensemble of several averages logits in another order of operations, so it has none."""
        return member_affine(self, 0) if self.n_members == 1 else None

    def affine_head(self) -> AffineHead | None:
        """``member_head`` of the one member (None for several: their logits are averaged)."""
        return member_head(self, 0) if self.n_members == 1 else None


class MemberView(nn.Module):
    """Member ``index`` of an ensemble as a model of its own: (B, *in) -> (B, C)."""

    def __init__(self, ensemble: Ensemble, index: int) -> None:
        super().__init__()
        self._ens = [ensemble]  # not a submodule: a view, not an owner
        self.index = index

    @property
    def randomized(self) -> bool:
        return self._ens[0].randomized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ens = self._ens[0]  # only this member runs (the preprocess draws the same randomness)
        return ens.members.forward_member(ens.preprocess(x), self.index)

    def linear_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        w, b = stacked_linear_weights(self._ens[0])
        return w[self.index], b[self.index]

    def affine_form(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """As ``Ensemble.affine_form``, for this member."""
        return member_affine(self._ens[0], self.index)

    def affine_head(self) -> AffineHead | None:
        """As ``Ensemble.affine_head``, for this member."""
        return member_head(self._ens[0], self.index)


class TargetTally:
    """Per-example passes of a ``Targets`` model, per target (index member + 1)."""

    def __init__(self, n_targets: int) -> None:
        self.forward = [0] * n_targets
        self.backward = [0] * n_targets


class Targets:
    """The whole ensemble and each of its members as one model over stacked rows (issue 17
    item 7): row j is scored by target ``route[j]`` (-1: the ensemble's mean logits, i:
    member i's logits), so one attack call attacks every target at once and pays the attack's
    own per-step work once, not once per target.

    Member e runs once per call, on the ensemble's rows and its own rows together
    (``forward_member``: the computation ``MemberView`` does alone, no padding, no batched
    matmul, which is slow on CPU); the ensemble's rows average the members' logits as
    ``Ensemble.forward`` does. Rows are gathered with ``index_select``, whose backward is an
    ``index_add`` (advanced indexing's accumulating backward is far slower on CPU). Attacks
    select the route with their rows (``adv_core.attacks.counting.rows``); a selection builds
    the row indices once. Passes are counted per target in ``tally``."""

    def __init__(
        self, ens: Ensemble, route: torch.Tensor, tally: TargetTally | None = None
    ) -> None:
        self.ens = ens
        self.route = route
        self.tally = tally if tally is not None else TargetTally(ens.n_members + 1)
        self._gather, self._place, self._per_target = _routing(route, ens.n_members)
        self._n_whole = self._per_target[0]

    @property
    def randomized(self) -> bool:
        return self.ens.randomized

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) != len(self.route):
            raise ValueError(f"{len(x)} rows for a route of {len(self.route)}")
        ens, w = self.ens, self._n_whole
        pre = ens.preprocess(x)
        z = [
            ens.members.forward_member(pre.index_select(0, g), e)
            for e, g in enumerate(self._gather)
        ]  # member e: (W + its own rows, C)
        whole = torch.stack([ze[:w] for ze in z]).mean(dim=0)  # (W, C): the ensemble's rows
        out = torch.cat([whole] + [ze[w:] for ze in z]).index_select(0, self._place)  # (B, C)
        _add(self.tally.forward, self._per_target)
        if out.requires_grad:
            out.register_hook(lambda g: _add(self.tally.backward, self._per_target))
        return out

    def select_rows(self, idx: torch.Tensor | slice) -> Targets:
        return Targets(self.ens, self.route[idx], self.tally)


def _routing(
    route: torch.Tensor, n_members: int
) -> tuple[list[torch.Tensor], torch.Tensor, list[int]]:
    """(gather: per member e the rows it runs on, the W ensemble rows first, then its own;
    place (B,): each row's position in [ensemble logits (W); member 0's own rows; member 1's
    ...]; rows per target: [W, member 0's, member 1's, ...])."""
    dev = route.device
    whole = (route < 0).nonzero()[:, 0]
    own = [(route == e).nonzero()[:, 0] for e in range(n_members)]
    place = torch.empty(len(route), dtype=torch.long, device=dev)
    place[whole] = torch.arange(len(whole), device=dev)
    start = len(whole)
    for o in own:
        place[o] = start + torch.arange(len(o), device=dev)
        start += len(o)
    counts = [len(whole)] + [len(o) for o in own]
    return [torch.cat([whole, o]) for o in own], place, counts


def _add(total: list[int], part: list[int]) -> None:
    for i, v in enumerate(part):
        total[i] += v


def target_route(n_members: int, n: int, device: torch.device) -> torch.Tensor:
    """(T * n,): block t of n rows routed to target t - 1 (-1: the whole ensemble)."""
    return torch.arange(-1, n_members, device=device).repeat_interleave(n)


def member_affine(ens: Ensemble, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Member ``index``'s (W (C, D), b (C,)), detached, on its device, when the member is
    ``_linear``'s Flatten + Linear and the ensemble has no preprocessing; else None."""
    if ens.model_cfg.name != "linear" or not isinstance(ens.preprocess, nn.Identity):
        return None
    members = ens.members
    if isinstance(members, LoopMembers):
        layer = cast(nn.Linear, cast(nn.Sequential, members.members[index])[1])
        return layer.weight.detach(), layer.bias.detach()
    params = members.param_dict()
    return params["1.weight"][index].detach(), params["1.bias"][index].detach()


AffineHead = tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]
"""(W (H, D), b (H,), tail): a model that is ``tail(F.linear(x.flatten(1), W, b))``."""


def member_head(ens: Ensemble, index: int) -> AffineHead | None:
    """Member ``index`` split after its first layer, when the member is a Sequential that
    starts with Flatten + Linear (``_linear``, ``_mlp``) and the ensemble has no preprocessing:
    (W (H, D), b (H,), detached) and the rest of the member as a function of the first
    layer's output (H = C for a linear model: the tail is the identity). Square scores a
    proposal that changes a few inputs by updating the current point's first-layer output
    (``attacks.square``): an MLP's largest product, skipped. Else None."""
    if not isinstance(ens.preprocess, nn.Identity):
        return None
    members = ens.members
    seq = members.members[index] if isinstance(members, LoopMembers) else members._base[0]
    if not (
        isinstance(seq, nn.Sequential)
        and len(seq) >= 2
        and isinstance(seq[0], nn.Flatten)
        and seq[0].start_dim == 1
        and isinstance(seq[1], nn.Linear)
    ):
        return None
    tail = cast(nn.Sequential, seq[2:])
    if isinstance(members, LoopMembers):
        layer = cast(nn.Linear, seq[1])
        return layer.weight.detach(), layer.bias.detach(), tail
    params = {k: v[index].detach() for k, v in members.param_dict().items()}
    buffers = {k: v[index] for k, v in members.buffer_dict().items()}

    def after(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The layers after the first two (``seq[2:]`` keeps their names)."""
        return {k: v for k, v in named.items() if int(k.split(".", 1)[0]) >= 2}

    state = (after(params), after(buffers))

    def run_tail(z: torch.Tensor) -> torch.Tensor:
        return functional_call(tail, state, (z,))

    return params["1.weight"], params["1.bias"], run_tail


def stacked_linear_weights(ens: Ensemble) -> tuple[torch.Tensor, torch.Tensor]:
    """(W (E, C, D), b (E, C)) of a linear ensemble with no preprocessing."""
    if ens.model_cfg.name != "linear" or not isinstance(ens.preprocess, nn.Identity):
        raise TypeError("closed forms need a linear model with no input preprocessing")
    state = ens.members.state()
    return state["1.weight"], state["1.bias"]


def _vmap_works(members: Members, input_shape: tuple[int, ...]) -> bool:
    """One tiny forward and backward in training mode on zeros: layers that vmap cannot batch
    (e.g. BatchNorm updating running statistics in place) fail here, not mid-training."""
    probe = torch.zeros(members.n_members, 2, *input_shape)
    try:
        with torch.enable_grad():
            members.train()
            members.forward_each(probe).sum().backward()
    except (RuntimeError, ValueError, NotImplementedError):
        return False
    finally:
        members.zero_grad(set_to_none=True)
    return True


def make_members(
    modules: list[nn.Module],
    vectorize: bool = True,
    input_shape: tuple[int, ...] | None = None,
) -> MemberStack:
    """Stack modules for vmap when possible (checked by a probe call when ``input_shape`` is
    given), else fall back to a loop. A single member runs as a plain module: vmap over one
    member only adds overhead (2.5x on a small MLP's forward and backward, BENCHMARKS.md)."""
    if vectorize and len(modules) > 1:
        try:
            members = Members(modules)
        except (RuntimeError, ValueError):
            return LoopMembers(modules)
        if input_shape is None or _vmap_works(members, input_shape):
            return members
    return LoopMembers(modules)


def new_ensemble(
    cfg: ModelConfig,
    input_shape: tuple[int, ...],
    n_classes: int,
    n_members: int,
    seed: int,
    preprocess: nn.Module | None = None,
    vectorize: bool = True,
) -> Ensemble:
    modules = init_members(cfg, input_shape, n_classes, n_members, seed)
    members = make_members(modules, vectorize, tuple(input_shape))
    return Ensemble(members, cfg, input_shape, n_classes, preprocess)


_MODEL_ADAPTER: TypeAdapter[Any] = TypeAdapter(ModelConfig)


def ensemble_to_bytes(ens: Ensemble, extra: dict[str, Any] | None = None) -> tuple[bytes, str]:
    """(safetensors weights, JSON config) of an ensemble."""
    meta = {
        "model": ens.model_cfg.model_dump(mode="json"),
        "input_shape": list(ens.input_shape),
        "n_classes": ens.n_classes,
        "n_members": ens.n_members,
        "preprocess": getattr(ens.preprocess, "spec", None),
        **(extra or {}),
    }
    return st_save(ens.members.state()), json.dumps(meta, sort_keys=True)


def ensemble_from_bytes(
    weights: bytes, config: str, device: torch.device | str = "cpu"
) -> Ensemble:
    """Rebuild an ensemble from safetensors bytes and its JSON config; nothing is unpickled."""
    meta = json.loads(config)
    if meta.get("model", {}).get("name") == "external":
        raise ValueError(
            "an external model is built from the spec that names it, never from a saved "
            "config (that would import code named by a data file)"
        )
    cfg = _MODEL_ADAPTER.validate_python(meta["model"])
    shape = tuple(meta["input_shape"])
    modules = [build_module(cfg, shape, meta["n_classes"]) for _ in range(meta["n_members"])]
    members = make_members(modules, input_shape=shape)
    members.load_state(st_load(weights))
    pre_spec = meta.get("preprocess")
    pre = preprocess_from_spec(pre_spec) if pre_spec else None
    return Ensemble(members, cfg, shape, meta["n_classes"], pre).to(device)


WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"


def save_ensemble(ens: Ensemble, path: str | Path) -> None:
    """Write weights.safetensors and config.json into the folder ``path``."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    weights, config = ensemble_to_bytes(ens)
    (p / WEIGHTS_FILE).write_bytes(weights)
    (p / CONFIG_FILE).write_text(config)


def load_ensemble(path: str | Path, device: torch.device | str = "cpu") -> Ensemble:
    """Load an ensemble saved by ``save_ensemble`` (or the results store) without unpickling."""
    p = Path(path)
    return ensemble_from_bytes(
        (p / WEIGHTS_FILE).read_bytes(), (p / CONFIG_FILE).read_text(), device
    )
