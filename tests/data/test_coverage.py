"""Sparse coverage: sparse tiles/blocks are dropped and counted, splits are checked, masks exclude."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from affine import Affine
from kedro.io import DatasetError
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from croco_pipeline.data import prepare
from croco_pipeline.data.coverage import usable_patches
from croco_pipeline.data.geo import GeoRaster, write_geotiff
from croco_pipeline.data.masks import ExclusionMask, ExclusionMaskDataset, apply_exclusion
from croco_pipeline.data.params import PreprocessConfig
from croco_pipeline.errors import CrocoInputError
from fixtures_geo import UTM15, make_stack, pixel_centres

ROOT_CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


def _config(**over: object) -> PreprocessConfig:
    base = yaml.safe_load((ROOT_CONF / "parameters_preprocess.yml").read_text())["preprocess"]
    base.update(gsd=1.0, patch_size_m=16, train_stride_m=8, channels=["h0"])
    base["blocks"] = {"block_size_m": 48, "buffer_m": 16, "fractions": base["blocks"]["fractions"],
                      "seed": 0}  # fmt: skip
    base.update(over)
    return PreprocessConfig.from_params(base)


def _usable_by_loop(valid: np.ndarray, size: int, max_nodata: float) -> int:
    """Slow reference: every non-overlapping window, its valid share counted pixel by pixel."""
    n = 0
    for r in range(0, valid.shape[0] - size + 1, size):
        for c in range(0, valid.shape[1] - size + 1, size):
            n += valid[r : r + size, c : c + size].mean() >= 1 - max_nodata
    return n


def test_usable_patches_matches_the_loop() -> None:
    valid = np.random.default_rng(3).random((70, 90)) > 0.15
    stack = make_stack("s", shape=(70, 90), gsd=1.0, valid=valid)
    for max_nodata in (0.0, 0.1, 0.2, 0.5):
        assert usable_patches(stack, 16, max_nodata) == _usable_by_loop(valid, 16, max_nodata)


def test_scene_with_left_third_nodata(caplog: pytest.LogCaptureFixture) -> None:
    """A 240 m scene, 4 x 4 blocks of 48 m: the blocks left of x = 80 m are dropped, one warning each."""
    valid = np.ones((240, 240), bool)
    valid[:, :80] = False
    scene = make_stack("scene", shape=(240, 240), gsd=1.0, valid=valid)
    with caplog.at_level(logging.WARNING):
        stacks, report = prepare.split_tiles({"scene": scene}, "raster_pair", _config())
    # the reference: blocks whose own pixels hold fewer than one usable 16 m patch
    expected = sorted(f"block_r{r}_c0" for r in range(4))
    assert sorted(d["name"] for d in report["dropped"]) == expected
    assert all(d["split"] is None and d["usable_patches"] == 0 for d in report["dropped"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4 and all("dropped block_r" in w for w in warnings)
    assert report["dropped_tiles"] == 4 and len(stacks) == 12
    # the fractions apply to the 12 kept blocks: 7 / 2 / 3 of 0.6 / 0.15 / 0.25
    assert report["kept_tiles"] == {"train": 7, "val": 2, "test": 3}
    for split, n in report["usable_patches"].items():
        kept = [s for s in stacks.values() if s.split == split]
        assert n == sum(_usable_by_loop(s.valid, 16, 0.2) for s in kept) > 0


def test_dfc_tile_all_nodata_is_dropped_and_counted() -> None:
    names = ["a", "b", "c", "d", "e"]
    stacks = {n: make_stack(n, shape=(64, 64), gsd=1.0) for n in names}
    stacks["b"] = make_stack("b", shape=(64, 64), gsd=1.0, valid=np.zeros((64, 64), bool))
    split = {"a": "train", "b": "train", "c": "train", "d": "val", "e": "test"}
    kept, report = prepare.split_tiles(stacks, "dfc2018", _config(split=split))
    assert sorted(kept) == ["a", "c", "d", "e"]
    assert report["dropped"] == [
        {"name": "b", "split": "train", "usable_patches": 0, "valid_share": 0.0}
    ]
    assert report["usable_patches"] == {"train": 32, "val": 16, "test": 16}


def test_a_split_left_with_too_few_patches_fails_naming_it() -> None:
    stacks = {n: make_stack(n, shape=(64, 64), gsd=1.0) for n in "abc"}
    holey = np.zeros((64, 64), bool)
    holey[:16, :16] = True  # one usable patch left in the only test tile
    stacks["c"] = make_stack("c", shape=(64, 64), gsd=1.0, valid=holey)
    config = _config(split={"a": "train", "b": "val", "c": "test"})
    with pytest.raises(CrocoInputError) as err:
        prepare.split_tiles(stacks, "dfc2018", config)
    message = str(err.value)
    assert "split 'test' has 1 usable patch(es), fewer than the 2" in message
    assert "min_patches_per_split.test" in message and "preprocess.patch_size_m" in message


def _mask_raster(classes: np.ndarray, crs: CRS, transform: Affine) -> GeoRaster:
    return GeoRaster(classes[None].astype(np.uint8), crs, transform)


def test_exclusion_mask_in_another_crs_marks_pixels_invalid(tmp_path) -> None:
    """A water-class raster in EPSG:32615 over a stack in EPSG:26915: class 9 is excluded."""
    stack = make_stack("t", shape=(40, 60), gsd=1.0, origin=(500000.0, 3300040.0))
    m_tf = Affine(0.5, 0, 499990.0, 0, -0.5, 3300050.0)
    mx, my = pixel_centres(m_tf, 120, 160)
    classes = np.where(
        mx < 500020.0, 9, np.where(my < 3300020.0, 5, 1)
    )  # water west, class 5 south
    write_geotiff(_mask_raster(classes, CRS.from_epsg(32615), m_tf), tmp_path / "w.tif")
    mask = ExclusionMaskDataset(filepath=str(tmp_path / "w.tif"), classes=[9]).load()
    assert mask is not None
    masked = apply_exclusion(stack, mask)
    # reference: each stack pixel centre, taken to the mask's CRS, falls west of x = 500020 there
    sx, sy = pixel_centres(stack.transform, 40, 60)
    ux, _ = warp_transform(UTM15, CRS.from_epsg(32615), sx.ravel(), sy.ravel())
    west = (np.asarray(ux) < 500020.0).reshape(40, 60)
    agree = masked.valid == ~west
    assert agree.mean() > 0.98  # nearest neighbour: disagreement only along the edge
    assert not masked.valid[:, :15].any() and masked.valid[:, 25:].all()
    assert stack.valid.all()  # the input is untouched


def test_no_mask_configured_loads_none(tmp_path) -> None:
    assert ExclusionMaskDataset(filepath=None).load() is None
    assert apply_exclusion(make_stack("t"), None).valid.all()
    with pytest.raises(DatasetError, match="raster file not found: .*missing.tif"):
        ExclusionMaskDataset(filepath=str(tmp_path / "missing.tif")).load()


def test_nonzero_mask_excludes(tmp_path) -> None:
    stack = make_stack("t", shape=(40, 60), gsd=1.0, origin=(500000.0, 3300040.0))
    band = np.zeros((40, 60), np.uint8)
    band[10:20, 30:40] = 1
    mask = ExclusionMask(_mask_raster(band, UTM15, stack.transform))
    masked = apply_exclusion(stack, mask)
    np.testing.assert_array_equal(masked.valid, band == 0)
