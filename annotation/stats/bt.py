"""Bradley–Terry maximum likelihood, batched: one Newton solve fits a thousand bootstrap rounds at once."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

ELO_SCALE = 400 * math.log10(math.e)
# Separable data (a system that never lost) has no finite MLE; strengths are capped here instead of
# diverging. ±12 on the log-odds scale is over 2000 Elo points from the mean: "unbeaten", not a number.
BETA_CAP = 12.0


def fit(wins: np.ndarray, beta0: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """wins[..., i, j] = (half-)wins of i over j. Returns β[..., i], centred to mean 0.

    Newton's method on the log-likelihood, with the sum-to-zero constraint folded into the Hessian
    (L + 11ᵀ/S is invertible on a connected comparison graph), steps capped so that separable rounds
    cannot overshoot; warm-started from `beta0` (the point estimate) for bootstrap rounds."""
    wins = np.asarray(wins, dtype=float)
    s = wins.shape[-1]
    games = wins + np.swapaxes(wins, -1, -2)
    total_wins = wins.sum(-1)
    beta = np.zeros(wins.shape[:-1]) if beta0 is None else np.broadcast_to(beta0, wins.shape[:-1]).copy()
    ones = np.ones((s, s)) / s
    ridge = 1e-9 * np.eye(s)  # only matters when the comparison graph is disconnected
    for _ in range(max_iter):
        prob = expit(beta[..., :, None] - beta[..., None, :])
        grad = total_wins - (games * prob).sum(-1)
        curv = games * prob * (1 - prob)
        lap = -curv
        idx = np.arange(s)
        lap[..., idx, idx] = curv.sum(-1)
        step = np.linalg.solve(lap + ones + ridge, grad[..., None])[..., 0]
        step = np.clip(step, -2.0, 2.0)
        beta = np.clip(beta + step, -BETA_CAP, BETA_CAP)
        beta -= beta.mean(-1, keepdims=True)
        if np.max(np.abs(step)) < tol:
            break
    return beta


def to_elo(beta: np.ndarray) -> np.ndarray:
    return 1000 + ELO_SCALE * beta


def ranks(beta: np.ndarray) -> np.ndarray:
    """1 + number of systems strictly stronger (ties share the better rank)."""
    return 1 + (beta[..., None, :] > beta[..., :, None]).sum(-1)
