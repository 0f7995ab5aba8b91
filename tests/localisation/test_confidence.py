"""The confidence mapping: in [0, 1], monotone in its features, and fit on labelled fixes."""

import numpy as np
import pytest

from croco_pipeline.localisation.confidence import (
    FEATURES,
    confidence,
    confidence_features,
    fit_confidence,
    height_spread,
    spread_from_relief,
)


def test_features_and_mapping() -> None:
    f = confidence_features(
        first=4.0,
        second=1.0,
        agreeing_share=0.75,
        refine_score=0.9,
        spread_m=5.0,
        gradient_ncc=float("nan"),
        contrast_z=20.0,
    )
    assert f == pytest.approx(
        {"peak_margin": 0.75, "vote_share": 0.75, "refine_score": 0.9, "relief": 1 - np.exp(-1),
         "gradient_ncc": 0.0, "vote_contrast": 1 - np.exp(-2)}
    )  # fmt: skip
    low = confidence({**f, "vote_share": 0.1}, -3.0, {"vote_share": 6.0})
    high = confidence(f, -3.0, {"vote_share": 6.0})
    assert 0.0 < low < high < 1.0
    assert high == pytest.approx(1 / (1 + np.exp(-(-3.0 + 6.0 * 0.75))))
    with pytest.raises(ValueError, match="unknown features"):
        confidence(f, 0.0, {"votes": 1.0})


def test_fit_separates_right_from_wrong_fixes() -> None:
    rng = np.random.default_rng(0)
    right = rng.uniform(0.5, 1.0, (200, len(FEATURES)))
    wrong = rng.uniform(0.0, 0.6, (200, len(FEATURES)))
    x = np.concatenate([right, wrong])
    y = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    bias, weights = fit_confidence(x, y)
    assert set(weights) == set(FEATURES) and all(w > 0 for w in weights.values())
    scores = np.array(
        [confidence(dict(zip(FEATURES, row, strict=True)), bias, weights) for row in x]
    )
    assert ((scores > 0.5) == y).mean() > 0.9


def test_height_spread_is_the_10_90_range_of_valid_heights() -> None:
    heights = np.arange(101, dtype=float).reshape(1, 101)  # 0..100 m
    valid = np.ones_like(heights, bool)
    assert height_spread(heights, valid) == pytest.approx(80.0)
    heights[0, :50] = 1e6  # invalid cells (nodata fill) do not count
    valid[0, :50] = False
    assert height_spread(heights, valid) == pytest.approx(0.8 * 50)
    assert height_spread(heights, np.zeros_like(valid)) == 0.0
    flat = confidence_features(1.0, 0.0, 1.0, 1.0, spread_m=0.0)
    assert flat["relief"] == 0.0 and flat["vote_contrast"] == 0.0


def test_spread_from_relief_inverts_the_relief_feature() -> None:
    spreads = [0.0, 0.3, 1.0, 4.0, 25.0]
    reliefs = [confidence_features(1.0, 0.0, 1.0, 1.0, spread_m=s)["relief"] for s in spreads]
    assert spread_from_relief(np.array(reliefs)) == pytest.approx(spreads, abs=1e-9)
    back = spread_from_relief(np.array([1.0, np.nan]))
    assert np.isinf(back[0]) and np.isnan(back[1])


def test_vote_contrast_is_the_peaks_height_above_the_grid_in_standard_deviations() -> None:
    from croco_pipeline.localisation.voting import VoteGrid

    votes = np.ones((6, 8))
    votes[4, 5] = 5.0  # one spike over a flat background: z = (5 - m) / sd over the 48 cells
    grid = VoteGrid(votes, pad=1, best_cells=np.zeros((1, 2)), best_scores=np.ones(1), gather=False)
    m, sd = (47 + 5) / 48, np.sqrt(((votes - (47 + 5) / 48) ** 2).mean())
    assert grid.contrast(3, 4) == pytest.approx((5 - m) / sd)  # lattice (3, 4) = padded (4, 5)
    assert grid.contrast(0, 0) == pytest.approx((1 - m) / sd) and grid.contrast(0, 0) < 0
    flat = VoteGrid(np.ones((3, 3)), 0, np.zeros((1, 2)), np.ones(1), gather=False)
    assert flat.contrast(1, 1) == 0.0  # no spread, no contrast


def test_fit_on_named_subset_of_features() -> None:
    rng = np.random.default_rng(1)
    relief = np.r_[rng.uniform(0.4, 1.0, 50), rng.uniform(0.0, 0.3, 50)]
    y = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    bias, weights = fit_confidence(relief[:, None], y, names=["relief"])
    assert list(weights) == ["relief"] and weights["relief"] > 0
    assert (
        confidence({"relief": 0.9}, bias, weights)
        > 0.5
        > confidence({"relief": 0.1}, bias, weights)
    )
