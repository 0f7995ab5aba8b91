"""The confidence mapping: in [0, 1], monotone in its features, and fit on labelled fixes."""

import numpy as np
import pytest

from croco_pipeline.localisation.confidence import (
    FEATURES,
    confidence,
    confidence_features,
    fit_confidence,
)


def test_features_and_mapping() -> None:
    f = confidence_features(first=4.0, second=1.0, agreeing_share=0.75, refine_score=0.9)
    assert f == {"peak_margin": 0.75, "vote_share": 0.75, "refine_score": 0.9}
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
