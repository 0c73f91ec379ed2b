"""Closed forms of THEORY.md, in numpy and the standard library only (no torch), so that the
analysis layer evaluates exactly the same formulas as the cells do.

Notation: Phi is the standard normal CDF; eps the perturbation budget; ``norm`` the threat
model ("linf" or "l2"), whose dual norm q prices eps in a linear margin (linf -> l1, l2 -> l2);
theta the class-mean vector and sigma the noise scale of the Gaussian model
x | y ~ N(y theta, sigma^2 I); labels y in {-1, +1}.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

_N = NormalDist()
_DUAL_ORD = {"linf": 1, "l2": 2, "l1": np.inf}

Phi = np.vectorize(_N.cdf, otypes=[float])
Phi_inv = np.vectorize(_N.inv_cdf, otypes=[float])


def dual_norm(w: ArrayLike, norm: str) -> float:
    return float(np.linalg.norm(np.asarray(w, dtype=float), ord=_DUAL_ORD[norm]))


def linear_robust_error(
    w: ArrayLike, b: float, theta: ArrayLike, sigma: float, eps: ArrayLike, norm: str = "linf"
) -> NDArray[np.float64]:
    """Exact population robust error of sign(w.x + b) in the Gaussian model (THEORY.md 2):
    1/2 [Phi((eps ||w||_q - <w,theta> - b) / (sigma ||w||_2))
       + Phi((eps ||w||_q - <w,theta> + b) / (sigma ||w||_2))]; eps = 0 is the standard error.
    """
    w_arr = np.asarray(w, dtype=float)
    th = np.asarray(theta, dtype=float)
    e = np.asarray(eps, dtype=float)
    wq, w2, wt = dual_norm(w_arr, norm), float(np.linalg.norm(w_arr)), float(w_arr @ th)
    if w2 == 0.0:
        return np.full_like(e, 1.0 if b == 0 else 0.5, dtype=float)
    plus = Phi((e * wq - wt - b) / (sigma * w2))
    minus = Phi((e * wq - wt + b) / (sigma * w2))
    return 0.5 * (plus + minus)


def soft_threshold(theta: ArrayLike, eps: float) -> NDArray[np.float64]:
    """S_eps(t) = sign(t) max(|t| - eps, 0)."""
    t = np.asarray(theta, dtype=float)
    return np.sign(t) * np.maximum(np.abs(t) - eps, 0.0)


def bayes_robust_error(
    theta: ArrayLike, sigma: float, eps: ArrayLike, norm: str = "linf"
) -> NDArray[np.float64]:
    """Smallest robust error of ANY classifier with theta known (THEORY.md 2):
    linf: Phi(-||S_eps(theta)||_2 / sigma); l2: Phi(-(||theta||_2 - eps)_+ / sigma)."""
    th = np.asarray(theta, dtype=float)
    e = np.atleast_1d(np.asarray(eps, dtype=float))
    if norm == "linf":
        r = np.array([np.linalg.norm(soft_threshold(th, ei)) for ei in e])
    elif norm == "l2":
        r = np.maximum(np.linalg.norm(th) - e, 0.0)
    else:
        raise ValueError(f"no Bayes closed form for norm {norm!r}")
    out: NDArray[np.float64] = Phi(-r / sigma)
    return out.reshape(np.shape(eps))


def schmidt_lower_bound(
    n: ArrayLike, d: ArrayLike, sigma: ArrayLike, eps: ArrayLike
) -> NDArray[np.float64]:
    """Schmidt et al. 2018 Thm 11 (theta ~ N(0, I)): the expected linf robust error of every
    learner from n samples is >= 1/2 (2 Phi(eps sqrt((sigma^2 + n) / n)) - 1)^d."""
    n_, d_, s_, e_ = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (n, d, sigma, eps)))
    inner = 2.0 * Phi(e_ * np.sqrt((s_**2 + n_) / n_)) - 1.0
    return 0.5 * np.power(inner, d_)


def tsipras_robust_bound(p: ArrayLike, delta: ArrayLike) -> NDArray[np.float64]:
    """Tsipras et al. 2019 Thm 2.1: for eps >= 2 eta, standard accuracy >= 1 - delta implies
    robust accuracy <= p delta / (1 - p)."""
    p_, dl = np.asarray(p, dtype=float), np.asarray(delta, dtype=float)
    return np.minimum(1.0, p_ * dl / (1.0 - p_))


def spheres_cap_distance(mu: ArrayLike, d: ArrayLike) -> NDArray[np.float64]:
    """Gilmer et al. 2018: typical distance to the nearest error for error rate mu on the
    sphere in R^d, about Phi^-1(1 - mu) / sqrt(d) (a spherical cap is extremal)."""
    mu_ = np.asarray(mu, dtype=float)
    return Phi_inv(1.0 - mu_) / np.sqrt(np.asarray(d, dtype=float))


def dense_bayes_robust_error(
    r: ArrayLike, d: ArrayLike, eps: ArrayLike, sigma: ArrayLike = 1.0
) -> NDArray[np.float64]:
    """bayes_robust_error for the dense weak-signal model theta_i = r / sqrt(d) (linf), in closed
    form: ||S_eps(theta)||_2 = (r - eps sqrt(d))_+, so the error Phi(-(r - eps sqrt(d))_+ / sigma)
    depends on eps and d only through eps * sqrt(d)."""
    r_, d_, e_, s_ = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (r, d, eps, sigma)))
    out: NDArray[np.float64] = Phi(-np.maximum(r_ - e_ * np.sqrt(d_), 0.0) / s_)
    return out


def dense_eps_to_break(
    r: ArrayLike, d: ArrayLike, error: ArrayLike, sigma: ArrayLike = 1.0
) -> NDArray[np.float64]:
    """The linf eps at which even the Bayes-optimal classifier of the dense model reaches robust
    error ``error`` (< 1/2): (r + sigma Phi^-1(error)) / sqrt(d), clipped at 0."""
    r_, d_, q_, s_ = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (r, d, error, sigma))
    )
    return np.maximum(r_ + s_ * Phi_inv(q_), 0.0) / np.sqrt(d_)


def _mean_abs_shifted_normal(s: NDArray[np.float64]) -> NDArray[np.float64]:
    """E|1 + s Z| for Z ~ N(0, 1), s >= 0 (s = 0 gives 1)."""
    safe = np.where(s > 0, s, 1.0)
    folded = safe * math.sqrt(2.0 / math.pi) * np.exp(-0.5 / safe**2) + 1.0 - 2.0 * Phi(-1.0 / safe)
    return np.where(s > 0, folded, 1.0)


def mean_estimator_robust_error(
    n: ArrayLike, d: ArrayLike, sigma: ArrayLike, eps: ArrayLike
) -> NDArray[np.float64]:
    """Large-d value of the linf robust error of the mean estimator w = (1/n) sum y_i x_i in the
    Gaussian model with theta = +-1 (no bias). w = theta + s z with s = sigma / sqrt(n), so
    <w,theta> ~ d, ||w||_1 ~ d E|1 + s Z|, ||w||_2 ~ sqrt(d (1 + s^2)) and
    error ~ Phi(sqrt(d) (eps E|1 + s Z| - 1) / (sigma sqrt(1 + s^2))).
    The error crosses 1/2 where eps E|1 + s Z| = 1, i.e. at n* = sigma^2 / s*^2 (~ sqrt(d)
    when sigma = c d^(1/4))."""
    n_, d_, s_, e_ = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (n, d, sigma, eps)))
    spread = s_ / np.sqrt(n_)
    z = np.sqrt(d_) * (e_ * _mean_abs_shifted_normal(spread) - 1.0) / (s_ * np.sqrt(1 + spread**2))
    out: NDArray[np.float64] = Phi(z)
    return out


def tsipras_standard_accuracy(eta: ArrayLike, d: ArrayLike) -> NDArray[np.float64]:
    """Standard accuracy of averaging the d weak features of Tsipras et al.: Phi(eta sqrt(d))."""
    out: NDArray[np.float64] = Phi(np.asarray(eta, dtype=float) * np.sqrt(np.asarray(d, float)))
    return out


def sphere_robust_fraction_bound(
    eps: ArrayLike, d: ArrayLike, density_ratio: ArrayLike = 1.0
) -> NDArray[np.float64]:
    """Shafahi et al. 2019 on the unit sphere in R^d: the fraction of points with no l2
    adversarial example within eps is at most about U exp(-(d - 1) eps^2 / 2), U the ratio of
    the class density to uniform (capped at 1)."""
    e_, d_, u_ = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (eps, d, density_ratio)))
    return np.minimum(1.0, u_ * np.exp(-(d_ - 1.0) * e_**2 / 2.0))


def bernoulli_critical_eps(tau: ArrayLike, box: bool = False) -> NDArray[np.float64]:
    """linf eps beyond which the linear classifier sign(<theta, x>) of the Bernoulli model loses
    robustness at large d. Paper's model (no box): the margin <y theta, x> ~ tau d against the
    adversary's eps ||theta||_1 = eps d, so eps* = tau. Boxed variant (x in [-1, 1]^d): only the
    (1 + tau) d / 2 agreeing coordinates can move (the others sit on the box's edge), so
    tau d = eps (1 + tau) d / 2 and eps* = 2 tau / (1 + tau)."""
    t = np.asarray(tau, dtype=float)
    out: NDArray[np.float64] = 2.0 * t / (1.0 + t) if box else t.copy()
    return out


def _binom_cdf(m: NDArray[np.float64], d: int, q: float) -> NDArray[np.float64]:
    """P(Bin(d, q) <= m) for each entry of m (floored; exact sum in log space)."""
    a = np.arange(d + 1, dtype=float)
    logc = np.array([math.lgamma(d + 1) - math.lgamma(k + 1) - math.lgamma(d - k + 1) for k in a])
    logp = logc + a * math.log(q) + (d - a) * math.log1p(-q)
    pmf = np.exp(logp - logp.max())
    cdf = np.cumsum(pmf) / pmf.sum()
    idx = np.floor(m).astype(int)
    return np.where(idx < 0, 0.0, cdf[np.clip(idx, 0, d)])


def bernoulli_robust_error(
    tau: float, d: int, eps: ArrayLike, box: bool = False
) -> NDArray[np.float64]:
    """Exact population linf robust error of sign(<theta, x>) in the Bernoulli model (ties
    count as errors). With A ~ Bin(d, (1 + tau)/2) agreeing coordinates the clean margin is
    2A - d. No box: the adversary removes eps d, so robust iff A > d (1 + eps) / 2. Box
    [-1, 1]^d: it can move only the agreeing coordinates, each by min(eps, 2), so robust iff
    A (2 - min(eps, 2)) > d."""
    e = np.atleast_1d(np.asarray(eps, dtype=float))
    q = (1.0 + tau) / 2.0
    if box:  # not robust iff A room <= d; with no room left every A is not robust
        room = 2.0 - np.minimum(e, 2.0)
        m = np.where(room > 0, np.floor(d / np.maximum(room, 1e-300) + 1e-9), float(d))
    else:  # not robust iff 2A - d <= eps d
        m = np.floor(d * (1.0 + e) / 2.0 + 1e-9)
    out: NDArray[np.float64] = _binom_cdf(m, d, q)
    return out.reshape(np.shape(eps))
