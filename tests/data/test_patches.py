"""Patch index geometry, nodata filtering, normalisation from train only, and splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from croco_pipeline.data.patches import COLUMNS, compute_normalisation, patch_index
from croco_pipeline.data.splits import assign_splits, require_nonempty, split_into_blocks
from croco_pipeline.data.stack import NormalisationStats, normalise_elevation
from croco_pipeline.errors import CrocoConfigError, CrocoInputError
from fixtures_geo import make_stack


def test_centres_from_transform_and_metre_conversion() -> None:
    stack = make_stack("t", shape=(40, 60), gsd=0.5, origin=(1000.0, 2000.0))
    df = patch_index([stack], patch_size_m=8.0, stride_m=4.0, max_nodata_fraction=0.0)
    assert tuple(df.columns) == COLUMNS
    assert (df["size_px"] == 16).all()
    assert sorted(df["row"].unique()) == [0, 8, 16, 24]  # 8 px stride, last start 40 - 16
    assert sorted(df["col"].unique()) == list(range(0, 45, 8))
    first = df[(df.row == 8) & (df.col == 16)].iloc[0]
    # top-left pixel (8, 16) at 0.5 m, 16 px wide: centre 8 + 4 m right, 4 + 4 m down
    assert (first.x, first.y) == pytest.approx((1000.0 + 12.0, 2000.0 - 8.0))
    assert pd.api.types.is_string_dtype(df["tile"]) and df["row"].dtype == np.int64


def test_sizes_must_be_whole_pixels() -> None:
    stack = make_stack("t", gsd=0.5)
    with pytest.raises(CrocoConfigError, match="preprocess.patch_size_m"):
        patch_index([stack], 8.25, 4.0, 0.0)
    with pytest.raises(CrocoConfigError, match="preprocess.stride_m"):
        patch_index([stack], 8.0, 0.3, 0.0)


def test_valid_fraction_drops_patches() -> None:
    valid = np.ones((40, 60), bool)
    valid[0:10, 0:10] = False  # covers 100 / 400 px of the first 20 px patch
    stack = make_stack("t", valid=valid)
    df = patch_index([stack], 10.0, 10.0, max_nodata_fraction=0.1)
    assert len(df) == 5 and not ((df.row == 0) & (df.col == 0)).any()
    df = patch_index([stack], 10.0, 10.0, max_nodata_fraction=0.25)
    assert len(df) == 6
    assert df.loc[(df.row == 0) & (df.col == 0), "valid_fraction"].item() == pytest.approx(0.75)


def test_patch_larger_than_tile() -> None:
    with pytest.raises(CrocoConfigError, match=r"patch_size_m.*tile small"):
        patch_index([make_stack("small", shape=(20, 60))], 16.0, 16.0, 0.0)


def test_nan_only_tile_names_tile_and_parameter() -> None:
    stack = make_stack("holey", valid=np.zeros((40, 60), bool))
    with pytest.raises(CrocoInputError, match=r"holey.*NaN-only.*preprocess.max_nodata_fraction"):
        patch_index([make_stack("ok"), stack], 10.0, 10.0, 0.5)


def test_split_filter() -> None:
    stacks = [make_stack("a", split="train"), make_stack("b", split="test")]
    df = patch_index(stacks, 10.0, 10.0, 0.0, splits=["test"])
    assert set(df["tile"]) == {"b"} and set(df["split"]) == {"test"}


def test_normalisation_from_train_only() -> None:
    train = make_stack(
        "a", elevation=np.linspace(-20, 40, 2400, dtype=np.float32).reshape(1, 40, 60)
    )
    valid = np.ones((40, 60), bool)
    valid[0, 0] = False  # a filled hole must not count
    train.elevation[0, 0, 0], train.valid = -500.0, valid
    extreme = make_stack("v", split="val", elevation=np.full((1, 40, 60), 9000.0, np.float32))
    stats = compute_normalisation([train, extreme], "global_minmax")
    assert stats.minimum == pytest.approx(-20 + 60 / 2399) and stats.maximum == pytest.approx(40.0)
    rel = compute_normalisation([train, extreme], "relative", height_range=25.0)
    assert rel.height_range == 25.0 and rel.maximum == pytest.approx(40.0)
    with pytest.raises(CrocoInputError, match="empty split 'train'"):
        compute_normalisation([extreme], "global_minmax")


def _blocks(seed: int = 3) -> tuple[list, object]:
    scene = make_stack("scene", shape=(200, 300), gsd=0.5, origin=(0.0, 100.0))
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    return split_into_blocks(scene, 20.0, 8.0, fractions, seed=seed), scene


def test_blocks_have_buffers_and_no_patch_crosses() -> None:
    blocks, _ = _blocks()
    # 100 m x 150 m scene, blocks of at least 20 m with 8 m buffers: 3 rows x 5 cols
    assert len(blocks) == 15
    names = {b.name for b in blocks}
    assert "block_r0_c0" in names and "block_r2_c4" in names
    assert all(min(b.shape) * b.gsd >= 20.0 for b in blocks)
    df = patch_index(blocks, 8.0, 4.0, 0.0)
    # footprints of every patch in map coordinates, per block
    half = 4.0
    boxes = {
        name: (g.x.min() - half, g.x.max() + half, g.y.min() - half, g.y.max() + half)
        for name, g in df.groupby("tile")
    }
    for a, (ax0, ax1, ay0, ay1) in boxes.items():
        for b, (bx0, bx1, by0, by1) in boxes.items():
            if a != b:
                gap = max(bx0 - ax1, ax0 - bx1, by0 - ay1, ay0 - by1)
                assert gap >= 8.0, (a, b)


def test_block_assignment_deterministic_and_proportional() -> None:
    first, _ = _blocks(seed=3)
    again, _ = _blocks(seed=3)
    assert [b.split for b in first] == [b.split for b in again]
    counts = {s: sum(b.split == s for b in first) for s in ("train", "val", "test")}
    assert counts == {"train": 7, "val": 4, "test": 4}  # 7.5 / 3.75 / 3.75 rounded
    other, _ = _blocks(seed=4)
    assert [b.split for b in other] != [b.split for b in first]


def test_too_few_blocks_names_block_size() -> None:
    scene = make_stack("scene", shape=(40, 60), gsd=0.5)
    with pytest.raises(CrocoConfigError, match="preprocess.block_size_m"):
        split_into_blocks(scene, 20.0, 8.0, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)


def test_assign_splits_and_errors() -> None:
    stacks = [make_stack("a"), make_stack("b")]
    out = assign_splits(stacks, {"a": "train", "b": "val"})
    assert [s.split for s in out] == ["train", "val"]
    with pytest.raises(CrocoConfigError, match=r"missing \['b'\]"):
        assign_splits(stacks, {"a": "train"})
    with pytest.raises(CrocoConfigError, match="holdout"):
        assign_splits(stacks, {"a": "train", "b": "holdout"})
    with pytest.raises(CrocoInputError, match=r"empty split 'test'.*preprocess.splits"):
        require_nonempty(out, "test")
    assert [s.name for s in require_nonempty(out, "val")] == ["b"]


def test_intensity_channels_are_centred_per_patch_and_kept_out_of_the_heights() -> None:
    rng = np.random.default_rng(4)
    heights = rng.uniform(100.0, 130.0, (40, 60)).astype(np.float32)
    intensity = rng.uniform(0.0, 200.0, (40, 60)).astype(np.float32)
    stack = make_stack("a", elevation=np.stack([heights, intensity]))
    stack.channels = ("dsm", "intensity")
    stats = compute_normalisation([stack], "relative", height_range=30.0)
    # the heights' range ignores the intensities (which reach 0 and 200, outside 100..130)
    assert stats.intensity_channels == (1,)
    assert (stats.minimum, stats.maximum) == (float(heights.min()), float(heights.max()))
    assert stats.intensity_spread == pytest.approx(180.0, abs=6.0)  # 5-95 % of uniform(0, 200)
    assert NormalisationStats.from_dict(stats.to_dict()) == stats

    patches = stack.elevation[None, :, :8, :8].repeat(2, axis=0)
    patches[1] += 7.0  # a whole patch 7 m higher and 7 units brighter: both cancel
    out = normalise_elevation(patches, stats)
    floor = heights[:8, :8].min()
    np.testing.assert_allclose(out[0, 0], (heights[:8, :8] - floor) / 30.0, rtol=1e-5)
    centred = intensity[:8, :8] - intensity[:8, :8].mean()
    np.testing.assert_allclose(out[0, 1], centred / stats.intensity_spread + 0.5, atol=1e-5)
    np.testing.assert_allclose(out[1], out[0], atol=1e-5)
    # without intensity channels the heights alone: the old files read back as before
    old = NormalisationStats.from_dict(
        {"mode": "relative", "minimum": 0, "maximum": 1, "height_range": 30.0}
    )
    assert old.intensity_channels == ()
    np.testing.assert_allclose(normalise_elevation(patches[:, :1], old)[0, 0], out[0, 0])
