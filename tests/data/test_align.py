"""Alignment puts RGB and heights on one grid, and features land on the same pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

from croco_pipeline.data import dfc2018
from croco_pipeline.data.align import align_scene
from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.readers import Dfc2018Release, read_raster_pair
from croco_pipeline.errors import CrocoInputError
from fixtures_geo import UTM15, write_dfc_release, write_raster, write_square_pair

AUTZEN = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "autzen"


def _edges(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(first row, last row, first col, last col) of a mask's True cells."""
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def test_two_crs_pair_shares_grid_and_feature_lands_on_same_pixels(tmp_path: Path) -> None:
    pair = write_square_pair(tmp_path, rgb_ft=0.5)
    rasters = read_raster_pair(pair.rgb, {"DSM": pair.dsm}, gsd=1.0)
    stack = align_scene("pair", rasters, ("DSM",), gsd=1.0)
    assert stack.crs == UTM15
    assert stack.rgb.shape[1:] == stack.elevation.shape[1:] == stack.valid.shape == (100, 100)
    assert stack.transform.almost_equals(Affine(1, 0, 500000, 0, -1, 3300100))
    assert stack.valid.all()
    raised = stack.elevation[0] > 5.0
    bright = stack.rgb.mean(axis=0) > 135
    # the square x 500030-500060, y 3300040-3300070 is rows 30..59, cols 30..59 on this grid
    assert _edges(raised) == (30, 59, 30, 59)
    assert _edges(bright) == (30, 59, 30, 59)
    assert (raised == bright).mean() > 0.99  # only rotated edge pixels may differ


def test_grid_is_snapped_to_gsd_multiples(tmp_path: Path) -> None:
    pair = write_square_pair(tmp_path)
    rasters = read_raster_pair(pair.rgb, {"DSM": pair.dsm}, gsd=2.0)
    shifted = rasters["DSM"]
    rasters["DSM"] = GeoRaster(
        shifted.data, shifted.crs, shifted.transform * Affine.translation(0.3, 0.3), shifted.nodata
    )
    stack = align_scene("pair", rasters, ("DSM",), gsd=2.0)
    assert stack.gsd == 2.0
    assert stack.transform.c % 2.0 == 0 and stack.transform.f % 2.0 == 0
    left, bottom, right, top = rasters["DSM"].bounds
    assert stack.transform.c >= left and stack.transform.f <= top


def test_dfc_tile_aligns_pixel_for_pixel_with_channel_order(tmp_path: Path) -> None:
    tiles = write_dfc_release(tmp_path, n_rows=1, n_cols=2)
    channels = ("DEM+B_C123", "DSM_C12")
    release = Dfc2018Release(tmp_path, channels=channels)
    rasters = release.read_tile(tiles[0], gsd=0.5)
    stack = align_scene(tiles[0].name, rasters, channels, gsd=0.5)
    assert stack.channels == channels
    assert stack.transform.almost_equals(rasters["rgb"].transform)
    assert np.array_equal(stack.rgb, rasters["rgb"].data)  # same grid: a slice, no interpolation
    assert np.array_equal(stack.elevation[1], rasters["DSM_C12"].data[0])
    # the mosaic writer adds 10 m per product in DEFAULT_CHANNELS order: DEM+B is product 2
    assert np.allclose(stack.elevation[0] - stack.elevation[1], 20.0)


def test_holes_filled_with_nearest_and_marked_invalid(tmp_path: Path) -> None:
    tiles = write_dfc_release(tmp_path, n_rows=1, n_cols=1, channels=("DSM_C12",))
    path = tmp_path / dfc2018.ELEVATION_PRODUCTS["DSM_C12"]
    import rasterio

    with rasterio.open(path) as src:
        data, tf = src.read(), src.transform
    data[0, 14:18, 14:18] = dfc2018.NODATA  # a 4 x 4 hole inside the tile (window rows/cols 10..13)
    write_raster(path, data, UTM15, tf, dfc2018.NODATA)
    rasters = Dfc2018Release(tmp_path, channels=("DSM_C12",)).read_tile(tiles[0], gsd=0.5)
    stack = align_scene("t", rasters, ("DSM_C12",), gsd=0.5)
    hole = ~stack.valid
    assert _edges(hole) == (10, 13, 10, 13) and hole.sum() == 16
    assert np.isfinite(stack.elevation).all()
    # the hole's corner takes the value of one of its two valid neighbours at distance 1
    e = stack.elevation[0]
    assert e[10, 10] in (e[9, 10], e[10, 9])
    assert e[11, 10] == e[11, 9]  # one step from the left edge: copied from the left


def test_bilinear_does_not_smear_nodata(tmp_path: Path) -> None:
    pair = write_square_pair(tmp_path)
    flat = np.full((200, 200), 7.0, np.float32)
    flat[100:110, 100:110] = -9999.0
    tf = Affine(0.5, 0, 500000.25, 0, -0.5, 3300100.25)  # off the target lattice: a real resample
    write_raster(tmp_path / "holes.tif", flat, UTM15, tf, -9999.0)
    rasters = read_raster_pair(pair.rgb, {"DSM": tmp_path / "holes.tif"}, gsd=0.5)
    stack = align_scene("h", rasters, ("DSM",), gsd=0.5)
    assert np.allclose(stack.elevation, 7.0)  # no placeholder leaked into any value
    invalid = int((~stack.valid).sum())
    assert 100 <= invalid <= 12 * 12  # the 10 x 10 hole grows by at most one pixel per side


def test_all_nan_channel_names_channel(tmp_path: Path) -> None:
    pair = write_square_pair(tmp_path)
    rasters = read_raster_pair(pair.rgb, {"DSM": pair.dsm}, gsd=1.0)
    dsm = rasters["DSM"]
    rasters["DTM"] = GeoRaster(np.full_like(dsm.data, np.nan), dsm.crs, dsm.transform)
    with pytest.raises(CrocoInputError, match="'DTM'"):
        align_scene("pair", rasters, ("DSM", "DTM"), gsd=1.0)


def _gradient(a: np.ndarray) -> np.ndarray:
    a = ndimage.gaussian_filter(a.astype(np.float32), 1.5)
    return np.hypot(ndimage.sobel(a, 0), ndimage.sobel(a, 1))


def test_autzen_edges_line_up() -> None:
    if not AUTZEN.is_dir():
        pytest.skip(
            f"Autzen sample data not found at {AUTZEN} (shared/data/autzen beside the repo)"
        )
    rasters = read_raster_pair(
        AUTZEN / "ortho" / "autzen.jpg", {"DSM": AUTZEN / "dsm" / "autzen_dsm_0.5m.tif"}, gsd=1.0
    )
    stack = align_scene("autzen", rasters, ("DSM",), gsd=1.0)
    assert stack.crs.to_epsg() == 26910 and stack.gsd == 1.0
    assert stack.rgb.shape[1:] == stack.elevation.shape[1:] == stack.valid.shape
    assert stack.valid.mean() > 0.9
    grey = _gradient(stack.rgb.mean(axis=0))
    # log compresses the tree-canopy gradients, which otherwise swamp building and kerb edges
    height = np.log1p(_gradient(stack.elevation[0]))
    k, (h, w) = 5, grey.shape

    def corr(dy: int, dx: int) -> float:
        a, b = grey[k : h - k, k : w - k], height[k + dy : h - k + dy, k + dx : w - k + dx]
        ok = (
            stack.valid[k : h - k, k : w - k]
            & stack.valid[k + dy : h - k + dy, k + dx : w - k + dx]
        )
        return float(np.corrcoef(a[ok], b[ok])[0, 1])

    zero = corr(0, 0)
    for d in (-5, -4, -3, 3, 4, 5):
        assert zero > corr(0, d) and zero > corr(d, 0), d
    # the peak itself sits within 2 px of zero (NAIP registration and building lean leave ~1-2 m)
    shifts = [(dy, dx) for dy in range(-4, 5, 2) for dx in range(-4, 5, 2)]
    best = max(shifts, key=lambda s: corr(*s))
    assert max(abs(best[0]), abs(best[1])) <= 2
