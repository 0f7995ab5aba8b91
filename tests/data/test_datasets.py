"""Round trips of our Kedro datasets: geometry, nodata, dtype and band names survive."""

import os

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from kedro.io import DatasetError
from rasterio.crs import CRS

from croco_pipeline.data import atomic, geo
from croco_pipeline.data.datasets import (
    GeoTiffDataset,
    SceneSourceDataset,
    TileStackDataset,
    TorchModelDataset,
)
from croco_pipeline.data.geo import GeoRaster, write_geotiff
from croco_pipeline.data.stack import TileStack
from croco_pipeline.errors import CrocoInputError
from fixtures_geo import random_stack

UTM15 = CRS.from_epsg(26915)


@pytest.mark.parametrize("dtype,nodata", [("uint8", None), ("float32", -3.4028234663852886e38)])
def test_geotiff_round_trip_keeps_geometry(tmp_path, dtype, nodata):
    transform = Affine(0.5, 0, 271460.25, 0, -0.5, 3290891.0)
    data = (np.arange(3 * 300 * 260) % 251).reshape(3, 300, 260).astype(dtype)
    raster = GeoRaster(data, UTM15, transform, nodata, ("a", "b", "c"))
    ds = GeoTiffDataset(str(tmp_path / "sub" / "r.tif"))
    ds.save(raster)
    back = ds.load()
    assert back.crs == UTM15
    assert back.transform == transform  # exactly: no half-pixel shift, no pixel-size change
    assert back.data.dtype == np.dtype(dtype)
    assert back.nodata == nodata
    assert back.band_names == ("a", "b", "c")
    np.testing.assert_array_equal(back.data, data)
    # rasterio itself sees the same grid (a real GeoTIFF, not our own format)
    with rasterio.open(tmp_path / "sub" / "r.tif") as src:
        assert src.bounds.left == 271460.25 and src.bounds.top == 3290891.0
        assert src.res == (0.5, 0.5)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["r.tif"]  # no temporary left


def test_geotiff_save_rejects_non_raster(tmp_path):
    with pytest.raises(DatasetError, match="expected a GeoRaster"):
        GeoTiffDataset(str(tmp_path / "x.tif")).save(np.zeros((2, 2)))


def _stack() -> TileStack:
    return random_stack(
        "272056_3290290",
        (40, 50),
        1.0,
        (272056.0, 3290891.0),
        ("DSM_C12", "DEM+B_C123"),
        "val",
        0,
        0.1,
    )


def test_tile_stack_round_trip_with_tags_written_before_the_rename(tmp_path, monkeypatch):
    stack = _stack()
    seen_at_rename = []
    real_replace = os.replace

    def replace_and_look(src, dst):
        with rasterio.open(src) as tmp:
            seen_at_rename.append(tmp.tags())
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_and_look)
    ds = TileStackDataset(str(tmp_path / "t.tif"))
    ds.save(stack)
    assert seen_at_rename[0]["tile"] == stack.name and seen_at_rename[0]["split"] == "val"
    monkeypatch.undo()
    back = ds.load()
    assert (back.name, back.split, back.channels) == (stack.name, "val", stack.channels)
    assert back.crs == UTM15 and back.transform == stack.transform
    np.testing.assert_array_equal(back.rgb, stack.rgb)
    np.testing.assert_array_equal(back.elevation, stack.elevation)
    np.testing.assert_array_equal(back.valid, stack.valid)


def test_untagged_stack_raises_naming_the_file(tmp_path):
    stack = _stack()
    bands = np.concatenate(
        [stack.rgb, stack.elevation, stack.valid[None]], dtype=np.float32, casting="unsafe"
    )
    names = ("red", "green", "blue", *stack.channels, "valid")
    path = tmp_path / "272056_3290290.tif"
    write_geotiff(GeoRaster(bands, UTM15, stack.transform, None, names), path)  # no tags
    with pytest.raises(DatasetError, match="272056_3290290.tif has no tile or split tag") as info:
        TileStackDataset(str(path)).load()
    assert isinstance(info.value.__cause__, CrocoInputError)


def test_failing_geotiff_write_leaves_no_file(tmp_path, monkeypatch):
    real_open = rasterio.open

    def open_then_fail(path, mode="r", **kwargs):
        real_open(path, mode, **kwargs).close()  # a header is on disk
        raise OSError("disk full")

    monkeypatch.setattr(geo.rasterio, "open", open_then_fail)
    with pytest.raises(DatasetError, match="disk full") as info:
        TileStackDataset(str(tmp_path / "t.tif")).save(_stack())
    assert isinstance(info.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == []


def test_model_dataset_loads_with_weights_only(tmp_path):
    ds = TorchModelDataset(str(tmp_path / "m.pt"))
    ds.save({"config": {"stem": "fast"}, "state_dict": {"w": torch.ones(2)}})
    back = ds.load()
    assert back["config"] == {"stem": "fast"} and torch.equal(
        back["state_dict"]["w"], torch.ones(2)
    )
    with pytest.raises(DatasetError, match="not found"):
        TorchModelDataset(str(tmp_path / "none.pt")).load()
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left


def test_scene_source_configuration_errors():
    with pytest.raises(DatasetError, match="source"):
        SceneSourceDataset(source="ftp")
    with pytest.raises(DatasetError, match="raster_pair.rgb"):
        SceneSourceDataset(source="raster_pair", raster_pair={"rgb": "a.tif"}).load()
    src = SceneSourceDataset(
        source="raster_pair", raster_pair={"rgb": "a.tif", "elevation": {"dsm": "d.tif"}}
    )
    assert src.load().elevation == {"dsm": __import__("pathlib").Path("d.tif")}
    with pytest.raises(DatasetError, match="read-only"):
        src.save(src.load())
