"""Readers on tiny real GeoTIFFs: geometry, decimation, nodata masking and every user-causable error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from croco_pipeline.data import dfc2018
from croco_pipeline.data.dfc2018 import TileId
from croco_pipeline.data.readers import Dfc2018Release, read_raster_pair
from croco_pipeline.errors import CrocoInputError
from fixtures_geo import UTM15, write_dfc_release, write_raster, write_square_pair


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, list[TileId]]:
    return tmp_path, write_dfc_release(tmp_path, n_rows=1, n_cols=2)


def test_tiles_discovered_north_first_west_to_east(tmp_path: Path) -> None:
    tiles = write_dfc_release(tmp_path, n_rows=2, n_cols=2)
    found = Dfc2018Release(tmp_path).tiles
    assert found == sorted(tiles, key=lambda t: (-t.ymin, t.xmin))
    assert len(found) == 4


def test_tile_rgb_has_exact_bounds_and_pixel_size(release: tuple[Path, list[TileId]]) -> None:
    root, tiles = release
    tile = tiles[1]
    out = Dfc2018Release(root).read_tile(tile, gsd=0.5)
    rgb = out["rgb"]
    assert rgb.data.dtype == np.uint8 and rgb.data.shape == (3, 40, 40)
    assert rgb.transform.almost_equals(Affine(0.5, 0, tile.xmin, 0, -0.5, tile.ymin + 20.0))
    assert rgb.bounds == pytest.approx((tile.xmin, tile.ymin, tile.xmin + 20.0, tile.ymin + 20.0))
    assert rgb.crs == UTM15


def test_decimation_averages_2x2_blocks(release: tuple[Path, list[TileId]]) -> None:
    root, tiles = release
    rgb = Dfc2018Release(root).read_tile(tiles[0], gsd=0.5)["rgb"].data
    # band 1 at 0.25 m is (r + c) % 256; the 2x2 block at (2i, 2j) averages to 2i + 2j + 1
    i, j = np.mgrid[0:40, 0:40]
    expected = (2 * i + 2 * j + 1) % 256
    interior = (
        2 * i + 2 * j + 2
    ) < 256  # away from the 255 -> 0 wrap, where the mean is not simple
    assert np.array_equal(rgb[0][interior], expected[interior])
    assert (rgb[1] == 100).all() and (rgb[2] == 200).all()


def test_elevation_window_is_native_mosaic_grid(release: tuple[Path, list[TileId]]) -> None:
    root, tiles = release
    out = Dfc2018Release(root).read_tile(tiles[0], gsd=1.0)
    assert set(out) == {"rgb", *dfc2018.DEFAULT_CHANNELS}
    dsm = out["DSM_C12"]
    assert dsm.data.dtype == np.float32 and dsm.gsd == 0.5
    assert dsm.bounds == pytest.approx(out["rgb"].bounds)
    assert out["rgb"].gsd == 1.0


def test_nodata_placeholder_and_huge_values_become_nan(release: tuple[Path, list[TileId]]) -> None:
    root, tiles = release
    path = root / dfc2018.ELEVATION_PRODUCTS["DSM_C12"]
    import rasterio

    with rasterio.open(path) as src:
        data, transform = src.read(), src.transform
    data[0, 10, 10] = dfc2018.NODATA
    data[0, 10, 11] = 5e4
    data[0, 10, 12] = -2e4
    write_raster(path, data, UTM15, transform, dfc2018.NODATA)
    dsm = Dfc2018Release(root).read_tile(tiles[0], gsd=0.5)["DSM_C12"].data[0]
    # the mosaic has a 2 m (4 px) rim left of and above the first tile
    assert np.isnan(dsm[6, 6:9]).all()
    assert np.isfinite(dsm).sum() == dsm.size - 3


def test_missing_files_listed_in_one_error(release: tuple[Path, list[TileId]]) -> None:
    root, tiles = release
    (root / dfc2018.ELEVATION_PRODUCTS["DSM_C12"]).unlink()
    (root / dfc2018.ELEVATION_PRODUCTS["DEM+B_C123"]).unlink()
    with pytest.raises(CrocoInputError) as err:
        Dfc2018Release(root)
    msg = str(err.value)
    assert dfc2018.ELEVATION_PRODUCTS["DSM_C12"] in msg
    assert dfc2018.ELEVATION_PRODUCTS["DEM+B_C123"] in msg
    assert "expected layout" in msg


def test_empty_folder_lists_every_expected_file(tmp_path: Path) -> None:
    with pytest.raises(CrocoInputError) as err:
        Dfc2018Release(tmp_path)
    msg = str(err.value)
    for rel in dfc2018.missing_files(tmp_path):
        assert rel in msg


def test_rgb_without_crs_names_file(release: tuple[Path, list[TileId]]) -> None:
    root, tiles = release
    path = root / tiles[0].rgb_relpath
    write_raster(path, np.zeros((3, 80, 80), np.uint8), None, Affine(0.25, 0, 0, 0, -0.25, 20))
    with pytest.raises(CrocoInputError, match=r"UH_NAD83_.*has no CRS"):
        Dfc2018Release(root).read_tile(tiles[0], gsd=0.5)


def test_four_band_rgb_names_file_and_count(release: tuple[Path, list[TileId]]) -> None:
    root, tiles = release
    path = root / tiles[0].rgb_relpath
    tf = Affine(0.25, 0, tiles[0].xmin, 0, -0.25, tiles[0].ymin + 20)
    write_raster(path, np.zeros((4, 80, 80), np.uint8), UTM15, tf)
    with pytest.raises(CrocoInputError, match=rf"{path.name} has 4 bands"):
        Dfc2018Release(root).read_tile(tiles[0], gsd=0.5)


def test_corrupt_mosaic_names_file(release: tuple[Path, list[TileId]]) -> None:
    root, tiles = release
    path = root / dfc2018.ELEVATION_PRODUCTS["DEM_C123_TLI"]
    path.write_bytes(b"II*\x00 this is not really a tiff" * 10)
    with pytest.raises(CrocoInputError, match=path.name):
        Dfc2018Release(root).read_tile(tiles[0], gsd=0.5)


def test_tile_outside_mosaics(release: tuple[Path, list[TileId]]) -> None:
    root, _ = release
    far = TileId(300000, 3200000)
    tf = Affine(0.25, 0, far.xmin, 0, -0.25, far.ymin + 20)
    write_raster(root / far.rgb_relpath, np.zeros((3, 80, 80), np.uint8), UTM15, tf)
    with pytest.raises(CrocoInputError, match="does not overlap"):
        Dfc2018Release(root).read_tile(far, gsd=0.5)


def test_pair_keeps_own_crs_and_decimates(tmp_path: Path) -> None:
    pair = write_square_pair(tmp_path, rgb_ft=0.5)
    out = read_raster_pair(pair.rgb, {"DSM": pair.dsm}, gsd=1.0)
    assert out["rgb"].crs.to_epsg() == 2278 and out["DSM"].crs == UTM15
    # 0.5 ft = 0.1524 m: a whole factor of 6 keeps it at or below 1 m
    assert out["rgb"].gsd == pytest.approx(3.0, rel=0.02)
    assert out["DSM"].gsd == 0.5


def test_pair_nan_and_file_nodata_masked(tmp_path: Path) -> None:
    pair = write_square_pair(tmp_path)
    dem = np.zeros((20, 20), np.float32)
    dem[0, 0], dem[0, 1], dem[0, 2] = -9999.0, np.nan, 2e4
    tf = Affine(5.0, 0, 500000, 0, -5.0, 3300100)
    write_raster(tmp_path / "holes.tif", dem, UTM15, tf, -9999.0)
    out = read_raster_pair(pair.rgb, {"DSM": tmp_path / "holes.tif"}, gsd=1.0)
    d = out["DSM"].data[0]
    assert np.isnan(d[0, :3]).all() and np.isfinite(d).sum() == d.size - 3


def test_pair_without_overlap_names_both_files(tmp_path: Path) -> None:
    pair = write_square_pair(tmp_path)
    far = write_raster(
        tmp_path / "far_dsm.tif",
        np.zeros((10, 10), np.float32),
        UTM15,
        Affine(1, 0, 600000, 0, -1, 3400000),
    )
    with pytest.raises(CrocoInputError, match=r"rgb_ft\.tif.*far_dsm\.tif"):
        read_raster_pair(pair.rgb, {"DSM": far}, gsd=1.0)


def test_pair_corrupt_and_no_crs(tmp_path: Path) -> None:
    pair = write_square_pair(tmp_path)
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(CrocoInputError, match="garbage.tif"):
        read_raster_pair(pair.rgb, {"DSM": bad}, gsd=1.0)
    nocrs = write_raster(
        tmp_path / "nocrs.tif", np.zeros((5, 5), np.float32), None, Affine(1, 0, 0, 0, -1, 5)
    )
    with pytest.raises(CrocoInputError, match="nocrs.tif.*no CRS"):
        read_raster_pair(pair.rgb, {"DSM": nocrs}, gsd=1.0)
