"""Confidence of a fix: raw features from the vote and the refinement, and a calibrated mapping.

Features (all roughly in [0, 1]): ``peak_margin`` = 1 - runner-up / winner score of the candidate
fixes (the vote support relative to the first peak, plus the re-ranking's weight x gradient NCC where
``localize.rerank`` is on; without it, 1 - second / first vote peak): a unique answer,
``vote_share`` = share of query tiles whose best candidate votes within one cell of the winner,
``refine_score`` = the refinement's best correlation, ``relief`` = 1 - exp(-spread / 5 m) with
spread the 10-90 percentile range of the query's heights (flat ground holds nothing to match),
``gradient_ncc`` = the classical check: normalised cross-correlation of the query's height gradients
with the ortho's grey gradients at the fix (best of +-1 px), independent of the learned embedding,
``vote_contrast`` = 1 - exp(-z / 10) with z how many standard deviations the winning cell's support
stands above the mean support of the whole vote grid (``VoteGrid.contrast``): a peak that stands out
of the whole map, not only above the runner-up.
``confidence`` maps them through a logistic function whose coefficients ``fit_confidence`` learns on
validation fixes known right or wrong (``localize_eval`` fits them and reports the fitted values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

FEATURES = ("peak_margin", "vote_share", "refine_score", "relief", "gradient_ncc", "vote_contrast")
RELIEF_SCALE_M = 5.0
CONTRAST_SCALE = 10.0


def height_spread(heights: np.ndarray, valid: np.ndarray) -> float:
    """10-90 percentile range (m) of the valid heights (0 where fewer than two are valid)."""
    h = np.asarray(heights, dtype=np.float64)[np.asarray(valid, dtype=bool)]
    h = h[np.isfinite(h)]
    if h.size < 2:
        return 0.0
    lo, hi = np.percentile(h, [10.0, 90.0])
    return float(hi - lo)


def spread_from_relief(relief: np.ndarray) -> np.ndarray:
    """The height spread (m) behind ``relief`` features: the inverse of 1 - exp(-spread / 5 m).

    A relief of 1 (spread beyond float precision) gives ``inf``; NaN stays NaN.
    """
    r = np.clip(np.asarray(relief, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return -RELIEF_SCALE_M * np.log1p(-r)


def confidence_features(
    first: float,
    second: float,
    agreeing_share: float,
    refine_score: float,
    spread_m: float = 0.0,
    gradient_ncc: float = 0.0,
    contrast_z: float = 0.0,
) -> dict[str, float]:
    """The raw features of one fix (see the module docstring)."""
    return {
        "peak_margin": 1.0 - (second / first if first > 0 else 1.0),
        "vote_share": float(agreeing_share),
        "refine_score": float(refine_score) if math.isfinite(refine_score) else 0.0,
        "relief": 1.0 - math.exp(-max(0.0, float(spread_m)) / RELIEF_SCALE_M),
        "gradient_ncc": float(gradient_ncc) if math.isfinite(gradient_ncc) else 0.0,
        "vote_contrast": 1.0 - math.exp(-max(0.0, float(contrast_z)) / CONTRAST_SCALE),
    }


def confidence(features: Mapping[str, float], bias: float, weights: Mapping[str, float]) -> float:
    """Logistic mapping to [0, 1]: sigmoid(bias + sum of weight * feature)."""
    unknown = set(weights) - set(FEATURES)
    if unknown:
        raise ValueError(
            f"confidence weights for unknown features {sorted(unknown)}; known: {FEATURES}"
        )
    z = bias + sum(float(w) * float(features.get(name, 0.0)) for name, w in weights.items())
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def fit_confidence(
    features: np.ndarray,
    is_right: np.ndarray,
    names: Sequence[str] = FEATURES,
    l2: float = 1e-3,
    iterations: int = 50,
) -> tuple[float, dict[str, float]]:
    """Logistic regression (Newton's method, small ridge) of right/wrong on the features.

    Args:
        features: (N, len(names)), columns in ``names`` order (default ``FEATURES``).
        is_right: (N,) bool.

    Returns:
        (bias, weights) for ``confidence`` / the ``localize.confidence`` parameters.
    """
    x = np.column_stack([np.ones(len(features)), np.asarray(features, dtype=np.float64)])
    y = np.asarray(is_right, dtype=np.float64)
    beta = np.zeros(x.shape[1])
    ridge = l2 * np.eye(x.shape[1])
    ridge[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -60, 60)))
        grad = x.T @ (p - y) + ridge @ beta
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(beta[0]), {name: float(b) for name, b in zip(names, beta[1:], strict=True)}
