"""The whole-scan gradient-NCC baseline: FFT surface equals direct correlation; crops are found exactly."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from scipy.ndimage import gaussian_filter

from croco_pipeline.localisation.baseline import locate_whole_scan
from croco_pipeline.localisation.ncc import GradientNccMap, gradient_image, gradient_valid

GSD = 2.0
MAP_TRANSFORM = Affine(GSD, 0.0, 500_000.0, 0.0, -GSD, 4_000_400.0)


def _scene(seed: int = 0, shape: tuple[int, int] = (150, 210)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return gaussian_filter(rng.normal(0, 1, shape), 1.5) * 50 + 100


def _rgb(grey_image: np.ndarray) -> np.ndarray:
    return np.repeat(grey_image[None], 3, axis=0)  # luma of equal channels = the channel


def test_crop_found_at_its_exact_offset() -> None:
    scene = _scene()
    ncc_map = GradientNccMap(_rgb(scene), np.ones(scene.shape, bool))
    r0, c0, h, w = 37, 101, 32, 40
    crop = scene[r0 : r0 + h, c0 : c0 + w]
    surface = ncc_map.ncc(gradient_image(crop), gradient_valid(np.ones(crop.shape, bool)))
    assert surface.shape == (150 - 2 - (h - 2) + 1, 210 - 2 - (w - 2) + 1)
    assert np.unravel_index(np.argmax(surface), surface.shape) == (r0, c0)
    assert surface[r0, c0] == pytest.approx(1.0, abs=1e-9)
    assert np.sort(surface.ravel())[-2] < 0.9  # the random field has no second match


def test_masked_ncc_equals_corrcoef() -> None:
    rng = np.random.default_rng(1)
    scene = _scene(1)
    ncc_map = GradientNccMap(_rgb(scene), np.ones(scene.shape, bool))
    r0, c0, h, w = 20, 60, 30, 36
    heights = 0.2 * scene[r0 : r0 + h, c0 : c0 + w] - 22 + rng.normal(0, 0.5, (h, w))
    valid = rng.random((h, w)) > 0.15  # holes in the scan
    template, mask = gradient_image(heights), gradient_valid(valid)
    surface = ncc_map.ncc(template, mask)
    image = gradient_image(scene)
    for r, c in [(r0, c0), (0, 0), (5, 17), (surface.shape[0] - 1, surface.shape[1] - 1)]:
        window = image[r : r + h - 2, c : c + w - 2]
        direct = np.corrcoef(template[mask], window[mask])[0, 1]
        assert surface[r, c] == pytest.approx(direct, abs=1e-8)
    assert np.unravel_index(np.argmax(surface), surface.shape) == (r0, c0)


def test_offsets_over_missing_map_are_refused() -> None:
    scene = _scene(2)
    valid = np.ones(scene.shape, bool)
    valid[:, :100] = False  # west half of the map has no ortho
    ncc_map = GradientNccMap(_rgb(scene), valid)
    crop = scene[10:42, 150:182]
    surface = ncc_map.ncc(gradient_image(crop), gradient_valid(np.ones(crop.shape, bool)))
    assert (surface[:, :60] == -1.0).all()  # template (30 px) mostly over the missing half
    assert np.unravel_index(np.argmax(surface), surface.shape) == (10, 150)


def test_locate_whole_scan_reports_the_footprint_centre_on_the_map() -> None:
    scene = _scene(3)
    ncc_map = GradientNccMap(_rgb(scene), np.ones(scene.shape, bool))
    r0, c0, h, w = 44, 77, 32, 32
    heights = 0.1 * scene[r0 : r0 + h, c0 : c0 + w]
    # the query lives 50 km away in its own coordinates (a displaced scan)
    q_left, q_top = 550_000.0 + 0.25, 4_050_000.0 - 0.5
    q_transform = Affine(GSD, 0.0, q_left, 0.0, -GSD, q_top)
    footprint = (q_left + 0.7, q_top - h * GSD + 0.4, q_left + w * GSD - 0.3, q_top - 0.2)
    fix = locate_whole_scan(
        ncc_map, MAP_TRANSFORM, heights[None], np.ones((h, w), bool), q_transform, footprint
    )
    true_left, true_top = MAP_TRANSFORM * (c0, r0)
    cx = (footprint[0] + footprint[2]) / 2 - q_left + true_left
    cy = (footprint[1] + footprint[3]) / 2 - q_top + true_top
    # the integer peak is exact; the parabolic sub-pixel step may move it by a few hundredths of a px
    assert (fix.x, fix.y) == (pytest.approx(cx, abs=0.1), pytest.approx(cy, abs=0.1))
    assert (fix.shift_x, fix.shift_y) == (
        pytest.approx(true_left - q_left, abs=0.1),
        pytest.approx(true_top - q_top, abs=0.1),
    )
    assert fix.score == pytest.approx(1.0, abs=1e-9)
    assert fix.second < 0.9


def test_folder_baseline_whole_scan_and_tiled_find_scans_and_tracks(
    tmp_path, oracle_map, heights
) -> None:
    from conftest import STATS, cloud_points, write_las

    from croco_pipeline.localisation.baseline import localise_folder_baseline, prepare_baselines
    from croco_pipeline.localisation.params import LocalizeParams

    lmap, source = oracle_map
    x, y, z = cloud_points(heights, slice(61, 101), slice(101, 141))
    write_las(tmp_path / "scan.laz", x, y, z)
    (tmp_path / "drive").mkdir()
    truths = {}
    for i, cols in enumerate((slice(20, 44), slice(40, 64))):
        tx, ty, tz = cloud_points(heights, slice(30, 54), cols, seed=i)
        write_las(tmp_path / "drive" / f"s{i}.laz", tx, ty, tz)
        truths[f"s{i}"] = ((tx.min() + tx.max()) / 2, (ty.min() + ty.max()) / 2)
    truths["scan"] = ((x.min() + x.max()) / 2, (y.min() + y.max()) / 2)
    maps = prepare_baselines(source, lmap.metadata, whole=True, tiled=True)
    params = LocalizeParams.from_params({"displace_km": 25.0, "truth": "coords"})
    out = localise_folder_baseline(maps, tmp_path, params, STATS)
    assert set(out) == {"whole_scan", "tiled"}
    for rows in out.values():
        assert sorted(r["query"] for r in rows) == ["s0", "s1", "scan"]
        for r in rows:
            assert r["status"] == "ok"
            assert (r["truth_x"], r["truth_y"]) == pytest.approx(truths[r["query"]])
            assert np.hypot(r["x"] - r["truth_x"], r["y"] - r["truth_y"]) < 0.6
