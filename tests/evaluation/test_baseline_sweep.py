"""The classical baseline's options and its sweep on validation tiles: geometry of coarsened tiles,
the smoothing against scipy, and a sweep that finds the setting a noisy photo needs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter

from croco_pipeline.data.stack import NormalisationStats
from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.evaluation.baseline import BaselineModel, gaussian_smooth, ncc_descriptor
from croco_pipeline.evaluation.baseline_sweep import (
    BaselineSetting,
    best_setting,
    coarsen_index,
    coarsen_stack,
    score_setting,
    sweep_baseline,
)
from croco_pipeline.evaluation.params import BaselineSweepParams
from croco_pipeline.evaluation.protocols import paper_protocol
from fixtures_geo import make_stack, patch_grid

STATS = NormalisationStats("global_minmax", 0.0, 1.0, 1.0)


def _noisy_photo_tiles(n: int = 2, side: int = 64, noise: float = 0.6, seed: int = 0):
    """Heights = a smooth field; the photo = the same field plus strong per-pixel noise."""
    rng = np.random.default_rng(seed)
    stacks = []
    for t in range(n):
        field = gaussian_filter(rng.normal(size=(side, side)), 2.5)
        field = (field - field.min()) / (field.max() - field.min())
        photo = np.clip(field + noise * rng.normal(size=field.shape) * field.std(), 0, 1)
        stack = make_stack(f"v{t}", (side, side), gsd=1.0, origin=(1000.0 + 100 * t, 5000.0),
                           split="val", elevation=field[None].astype(np.float32))  # fmt: skip
        stack.rgb = np.repeat(np.round(photo * 255).astype(np.uint8)[None], 3, axis=0)
        stacks.append(stack)
    index = pd.concat([patch_grid(s, 8, 8, split="val") for s in stacks], ignore_index=True)
    return stacks, index


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_gaussian_smooth_matches_scipy(sigma: float) -> None:
    images = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 20, 24)))
    got = gaussian_smooth(images, sigma).numpy()
    want = np.stack(
        [gaussian_filter(im, sigma, mode="mirror", truncate=3.0) for im in images.numpy()]
    )
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert gaussian_smooth(images, 0.0) is images


def test_abs_components_descriptor_is_the_ncc_of_abs_gradients() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 10)), rng.normal(size=(10, 10))
    d = ncc_descriptor(torch.from_numpy(np.stack([a, b])), gradient="abs_components").numpy()

    def grads(im: np.ndarray) -> np.ndarray:
        gx = np.abs(im[1:-1, 2:] - im[1:-1, :-2])
        gy = np.abs(im[2:, 1:-1] - im[:-2, 1:-1])
        return np.concatenate([gx.ravel(), gy.ravel()])

    want = np.corrcoef(grads(a), grads(b))[0, 1]
    assert float(d[0] @ d[1]) == pytest.approx(want, abs=1e-5)


def test_coarsened_tile_keeps_its_geometry_and_block_means() -> None:
    rng = np.random.default_rng(2)
    stack = make_stack("t", (9, 12), gsd=0.5, elevation=rng.random((1, 9, 12)).astype(np.float32))
    stack.rgb = rng.integers(0, 256, (3, 9, 12), dtype=np.uint8)
    stack.valid[0, 0] = False
    coarse = coarsen_stack(stack, 3)
    assert coarse.shape == (3, 4) and coarse.gsd == pytest.approx(1.5) and coarse.crs == stack.crs
    # a coarse pixel's centre is the centre of its 3x3 block of fine pixels
    fine_x, fine_y = stack.transform * (1.5, 1.5)  # fine block (0..3, 0..3), centre at col 1.5
    assert coarse.transform * (0.5, 0.5) == pytest.approx((fine_x, fine_y))
    for r in range(3):
        for c in range(4):
            block = (slice(3 * r, 3 * r + 3), slice(3 * c, 3 * c + 3))
            assert coarse.elevation[0, r, c] == pytest.approx(stack.elevation[0][block].mean())
            assert coarse.rgb[1, r, c] == round(float(stack.rgb[1][block].astype(float).mean()))
            assert coarse.valid[r, c] == stack.valid[block].all()


def test_coarsened_index_covers_the_same_ground() -> None:
    stack = make_stack("t", (32, 32), gsd=1.0)
    index = patch_grid(stack, 8, 8)
    coarse_index = coarsen_index(index, 2)
    assert coarse_index is not None
    coarse = coarsen_stack(stack, 2)
    t = coarse.transform
    s = coarse_index["size_px"].to_numpy()
    x = t.c + t.a * (coarse_index["col"].to_numpy() + s / 2)
    y = t.f + t.e * (coarse_index["row"].to_numpy() + s / 2)
    np.testing.assert_allclose(x, index["x"])
    np.testing.assert_allclose(y, index["y"])
    assert coarsen_index(index, 3) is None  # 8 px patches do not fall on whole 3 px blocks


def test_identity_setting_scores_exactly_the_configured_baseline() -> None:
    stacks, index = _noisy_photo_tiles()
    got = score_setting(BaselineSetting(), stacks, index, STATS)
    want = paper_protocol(BaselineModel(), stacks, index, STATS)
    assert got is not None
    assert got["elevation_to_rgb"] == want["elevation_to_rgb"]


def test_sweep_finds_that_a_noisy_photo_needs_smoothing() -> None:
    stacks, index = _noisy_photo_tiles()
    params = BaselineSweepParams(coarsen=[1, 3], sigmas_px=[0.0, 1.5], downsamples=[1],
                                 gradients=["magnitude"])  # fmt: skip
    table = sweep_baseline(stacks, index, STATS, params)
    assert len(table) == 2  # coarsen 3 does not divide the 8 px grid: skipped
    by_sigma = table.set_index("sigma_px")["top1"]
    assert by_sigma[1.5] > by_sigma[0.0] + 0.1
    best = best_setting(table)
    assert best.sigma_px == 1.5 and best.coarsen == 1
    assert table.loc[table["sigma_px"] == 1.5, "gsd_m"].item() == 1.0


def test_ties_go_to_the_cheaper_setting() -> None:
    table = pd.DataFrame(
        [
            {"coarsen": 1, "sigma_px": 1.0, "downsample": 1, "gradient": "magnitude",
             "elevation_channel": 0, "top1": 0.3},
            {"coarsen": 2, "sigma_px": 1.0, "downsample": 1, "gradient": "magnitude",
             "elevation_channel": 0, "top1": 0.3},
            {"coarsen": 1, "sigma_px": 0.0, "downsample": 1, "gradient": "magnitude",
             "elevation_channel": 0, "top1": 0.2},
        ]
    )  # fmt: skip
    assert best_setting(table) == BaselineSetting(2, 1.0, 1, "magnitude", 0)


def test_sweep_parameters_are_checked() -> None:
    with pytest.raises(CrocoConfigError, match="evaluate.baseline_sweep.gradients"):
        BaselineSweepParams.from_params({"gradients": ["sobel"]})
    with pytest.raises(CrocoConfigError, match="did you mean sigmas_px"):
        BaselineSweepParams.from_params({"sigma_px": [1.0]})
