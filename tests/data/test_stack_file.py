"""The tile stack file: ``load_stack`` (xarray) equals what rasterio reads, geometry included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from croco_pipeline.data.geo import GeoRaster, write_geotiff
from croco_pipeline.data.stack_file import load_stack, raster_to_dataarray, read_stack, write_stack
from croco_pipeline.errors import CrocoInputError
from fixtures_geo import random_stack

UTM15 = CRS.from_epsg(26915)


@pytest.fixture
def stack_path(tmp_path: Path) -> Path:
    stack = random_stack(
        "272652_3290290",
        (30, 45),
        2.0,
        (272652.0, 3290891.0),
        ("DSM_C12", "DEM_C123_TLI"),
        "test",
        3,
        0.2,
    )
    write_stack(stack, tmp_path / "stack.tif")
    return tmp_path / "stack.tif"


def test_load_stack_equals_what_rasterio_reads(stack_path: Path) -> None:
    da = load_stack(stack_path)
    with rasterio.open(stack_path) as src:
        data, transform, crs, names = src.read(), src.transform, src.crs, src.descriptions
        # pixel centres, straight from rasterio
        xs = [src.xy(0, c)[0] for c in range(src.width)]
        ys = [src.xy(r, 0)[1] for r in range(src.height)]
    assert da.dims == ("band", "y", "x") and da.dtype == np.float32
    np.testing.assert_array_equal(da.values, data)
    assert list(da["band"].values) == list(names)
    assert list(da["band"].values) == ["red", "green", "blue", "DSM_C12", "DEM_C123_TLI", "valid"]
    np.testing.assert_allclose(da["x"].values, xs)
    np.testing.assert_allclose(da["y"].values, ys)
    assert da.rio.crs == crs
    assert da.rio.transform() == transform
    assert da.rio.transform(recalc=True).almost_equals(transform)  # from the coordinates alone
    assert (da.attrs["tile"], da.attrs["split"], da.name) == (
        "272652_3290290",
        "test",
        "272652_3290290",
    )
    dsm = da.sel(band="DSM_C12")
    np.testing.assert_array_equal(dsm.values, data[3])
    # a pixel picked by map coordinates is the one rasterio's index() finds
    x, y = 272652.0 + 2.0 * 7 + 1.0, 3290891.0 - 2.0 * 11 - 1.0
    with rasterio.open(stack_path) as src:
        r, c = src.index(x, y)
    assert dsm.sel(x=x, y=y).item() == data[3, r, c]


def test_read_stack_and_load_stack_agree(stack_path: Path) -> None:
    stack, da = read_stack(stack_path), load_stack(stack_path)
    np.testing.assert_array_equal(da.sel(band=["red", "green", "blue"]).values, stack.rgb)
    np.testing.assert_array_equal(da.sel(band=list(stack.channels)).values, stack.elevation)
    np.testing.assert_array_equal(da.sel(band="valid").values > 0.5, stack.valid)


def test_untagged_or_foreign_file_raises_naming_it(tmp_path: Path) -> None:
    data = np.zeros((4, 5, 5), np.float32)
    plain = GeoRaster(data, UTM15, Affine(1, 0, 500000, 0, -1, 10), None, ("a", "b", "c", "d"))
    write_geotiff(plain, tmp_path / "plain.tif")
    with pytest.raises(CrocoInputError, match=r"plain.tif is not a tile stack"):
        load_stack(tmp_path / "plain.tif")
    names = ("red", "green", "blue", "valid")
    write_geotiff(GeoRaster(data, UTM15, plain.transform, None, names), tmp_path / "untagged.tif")
    with pytest.raises(CrocoInputError, match=r"untagged.tif has no tile or split tag"):
        load_stack(tmp_path / "untagged.tif")


def test_rotated_grid_is_refused() -> None:
    raster = GeoRaster(np.zeros((1, 2, 2)), UTM15, Affine(1, 0.5, 0, 0.5, -1, 0))
    with pytest.raises(ValueError, match="rotated"):
        raster_to_dataarray(raster)
