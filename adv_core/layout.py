"""The memory layout an attack runs a convolutional model in.

On CPU, PyTorch's convolutions and max-pooling run faster on channels-last (NHWC) tensors than
on the default NCHW: the CNN of ``models._cnn`` on 105 MNIST images, one thread, forward 9.6 ->
4.7 ms, forward + backward 17.2 -> 12.9 ms (NCHW max-pooling alone was 63% of the forward;
BENCHMARKS.md "Item 1b met"). The layout follows the weights: a conv layer with
channels-last weights returns channels-last activations for NCHW inputs, so converting the model
is enough. ``fast_layout`` hands an attack a channels-last twin of the model it was given (a
copy: the caller's model is not touched), built once per model and rebuilt when its weights
change (the parameters' version counters), and only when it is safe:

- CPU inputs of rank 4 and a model that is an ``nn.Module`` holding ``nn.Conv2d`` layers;
- no 5-D parameters (an ensemble's vmapped member stack: channels-last covers rank 4 only);
- not randomized (a probe would draw the model's noise);
- a probe on the first rows gives the model's logits (to 1e-4 relative): a forward that
  ``view``s an activation as NCHW fails or differs there, and the model is used as given.

The twin's logits differ from the model's by rounding only (1e-6 on the CNN). Opt out with
``SWEEPS_CHANNELS_LAST=0`` (every attack then runs the model as given).
"""

from __future__ import annotations

import copy
import os
import weakref
from collections.abc import Callable

import torch
from torch import nn

Model = Callable[[torch.Tensor], torch.Tensor]
_PROBE_ROWS = 4
_TWINS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], nn.Module | None]] = (
    weakref.WeakKeyDictionary()
)


def enabled() -> bool:
    return os.environ.get("SWEEPS_CHANNELS_LAST", "1") != "0"


def fast_layout(model: Model, x: torch.Tensor) -> Model:
    """The model an attack on inputs ``x`` should call: a channels-last twin of a conv model
    on CPU where that is safe (module docstring), else ``model`` itself."""
    if not (enabled() and x.dim() == 4 and x.device.type == "cpu"):
        return model
    if not isinstance(model, nn.Module) or getattr(model, "randomized", False):
        return model
    params = list(model.parameters())
    if any(p.dim() == 5 for p in params):
        return model
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return model
    versions = tuple(p._version for p in params)
    cached = _TWINS.get(model)
    if cached is not None and cached[0] == versions:
        return cached[1] if cached[1] is not None else model
    twin = _twin(model, x[:_PROBE_ROWS])
    _TWINS[model] = (versions, twin)
    return twin if twin is not None else model


def _twin(model: nn.Module, probe: torch.Tensor) -> nn.Module | None:
    """A channels-last copy of ``model`` that gives its logits on ``probe``, else None."""
    try:
        twin = copy.deepcopy(model).to(memory_format=torch.channels_last)
        with torch.no_grad():
            want, got = model(probe), twin(probe)
    except (RuntimeError, TypeError, ValueError):
        return None
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        return None
    return twin
