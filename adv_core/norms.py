"""Norms as objects (STYLE 4): each owns its projection, random start, steepest-ascent step
and dual norm, so attacks never branch on the norm's name.

Shapes: ``delta`` and ``grad`` are (B, *D); per-example norms are (B,).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

_TINY = 1e-12


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1)  # (B, D)


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> broadcastable against (B, *D)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class Norm(ABC):
    """An lp norm on flattened examples. ``dual`` is the lq norm with 1/p + 1/q = 1."""

    name: str
    p: float

    @abstractmethod
    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        """||delta_b||_p for each example: (B, *D) -> (B,)."""

    @abstractmethod
    def project(self, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        """Euclidean projection (for l1: exact simplex-based) onto the eps-ball."""

    @abstractmethod
    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        """Unit-norm direction u maximising <u, grad> (the FGSM/FGM step)."""

    @abstractmethod
    def random_init(
        self,
        shape: torch.Size,
        eps: torch.Tensor | float,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        """A random point in the eps-ball (uniform for linf and l2)."""

    @property
    @abstractmethod
    def dual(self) -> Norm:
        """The dual norm."""

    def dual_norm_of(self, w: torch.Tensor) -> torch.Tensor:
        """||w||_q over the last dimension (the price of eps in a linear margin)."""
        return self.dual.norm(w.reshape(-1, w.shape[-1])).reshape(w.shape[:-1])


def _eps_like(eps: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    e = torch.as_tensor(eps, dtype=like.dtype, device=like.device)
    return _expand(e.expand(like.shape[0]), like) if e.dim() <= 1 else e


class Linf(Norm):
    name = "linf"
    p = float("inf")

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        return _flat(delta).abs().amax(dim=1)

    def project(self, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        e = _eps_like(eps, delta)
        return torch.maximum(torch.minimum(delta, e), -e)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def random_init(
        self,
        shape: torch.Size,
        eps: torch.Tensor | float,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        u = torch.rand(shape, generator=generator, device="cpu").to(device)
        return (2 * u - 1) * _eps_like(eps, u)

    @property
    def dual(self) -> Norm:
        return L1()


class L2(Norm):
    name = "l2"
    p = 2.0

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        return _flat(delta).norm(p=2, dim=1)

    def project(self, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        e = _eps_like(eps, delta)
        n = _expand(self.norm(delta), delta).clamp_min(_TINY)
        return delta * torch.clamp(e / n, max=1.0)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        n = _expand(self.norm(grad), grad).clamp_min(_TINY)
        return grad / n

    def random_init(
        self,
        shape: torch.Size,
        eps: torch.Tensor | float,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        g = torch.randn(shape, generator=generator, device="cpu")
        dim = g[0].numel()
        r = torch.rand(shape[0], generator=generator, device="cpu") ** (1.0 / dim)
        u = g / _expand(self.norm(g).clamp_min(_TINY), g) * _expand(r, g)
        u = u.to(device)
        return u * _eps_like(eps, u)

    @property
    def dual(self) -> Norm:
        return self


class L1(Norm):
    name = "l1"
    p = 1.0

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        return _flat(delta).abs().sum(dim=1)

    def project(self, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        # Duchi et al. 2008: project |delta| onto the simplex of radius eps, keep signs.
        flat = _flat(delta)
        e = torch.as_tensor(eps, dtype=delta.dtype, device=delta.device).expand(flat.shape[0])
        a = flat.abs()
        inside = a.sum(dim=1) <= e
        mu, _ = a.sort(dim=1, descending=True)
        cums = mu.cumsum(dim=1)
        k = torch.arange(1, a.shape[1] + 1, device=a.device, dtype=a.dtype)
        cond = mu - (cums - e[:, None]) / k > 0
        rho = cond.to(a.dtype).cumsum(dim=1).argmax(dim=1, keepdim=True)
        theta = ((cums.gather(1, rho) - e[:, None]) / (rho + 1).to(a.dtype)).clamp_min(0)
        proj = flat.sign() * (a - theta).clamp_min(0)
        out = torch.where(inside[:, None], flat, proj)
        return out.reshape(delta.shape)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        flat = _flat(grad)
        idx = flat.abs().argmax(dim=1, keepdim=True)
        out = torch.zeros_like(flat).scatter(1, idx, flat.gather(1, idx).sign())
        return out.reshape(grad.shape)

    def random_init(
        self,
        shape: torch.Size,
        eps: torch.Tensor | float,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        # Uniform on the l1 ball: Laplace direction, radius U^(1/D).
        e = (
            torch.empty(shape).exponential_(generator=generator)
            if generator is not None
            else torch.empty(shape).exponential_()
        )
        s = torch.rand(shape, generator=generator).round() * 2 - 1
        g = e * s
        dim = g[0].numel()
        r = torch.rand(shape[0], generator=generator) ** (1.0 / dim)
        u = (g / _expand(self.norm(g).clamp_min(_TINY), g) * _expand(r, g)).to(device)
        return u * _eps_like(eps, u)

    @property
    def dual(self) -> Norm:
        return Linf()


NORMS: dict[str, Norm] = {"linf": Linf(), "l2": L2(), "l1": L1()}


def get_norm(name: str) -> Norm:
    try:
        return NORMS[name]
    except KeyError:
        raise KeyError(f"unknown norm {name!r}; known: {sorted(NORMS)}") from None
