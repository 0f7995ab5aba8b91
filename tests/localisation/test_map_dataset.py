"""The map folder: round trip through the Kedro dataset, atomic writes, metadata checks."""

from pathlib import Path

import numpy as np
import pytest
from conftest import PATCH, SPEC, STRIDE
from kedro.io import DatasetError
from rasterio.crs import CRS

from croco_pipeline.errors import CrocoInputError
from croco_pipeline.localisation.datasets import LocalisationMapDataset, read_map
from croco_pipeline.localisation.mapping import check_map, make_index
from croco_pipeline.localisation.ortho import GeoTiffOrtho, InMemoryOrtho, StackMosaic, open_ortho


def test_round_trip_keeps_vectors_centres_and_metadata(tmp_path: Path, oracle_map) -> None:
    lmap, _ = oracle_map
    dataset = LocalisationMapDataset(str(tmp_path / "map"))
    dataset.save(lmap)
    back = dataset.load()
    assert back.metadata == lmap.metadata and back.source == str(tmp_path / "map")
    assert back.centres.equals(lmap.centres)
    probe = np.random.default_rng(0).normal(size=(5, lmap.metadata["embedding_dim"]))
    np.testing.assert_array_equal(back.index.search(probe, 3)[1], lmap.index.search(probe, 3)[1])
    # geometry: the first centre is half a patch inside the ortho's top-left corner
    g = lmap.metadata["grid_transform"]
    first = back.centres.iloc[0]
    assert (first["lattice_row"], first["lattice_col"]) == (0, 0)
    assert (first["x"], first["y"]) == (g[2] + PATCH / 2 * g[0], g[5] + PATCH / 2 * g[4])
    assert lmap.metadata["stride_m"] == STRIDE * g[0]
    assert CRS.from_wkt(lmap.metadata["crs"]).to_epsg() == 26915


def test_failed_save_leaves_the_old_map_whole(tmp_path: Path, oracle_map, monkeypatch) -> None:
    lmap, _ = oracle_map
    dataset = LocalisationMapDataset(str(tmp_path / "map"))
    dataset.save(lmap)
    before = {p.name: p.read_bytes() for p in (tmp_path / "map").iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("pandas.DataFrame.to_parquet", broken)
    with pytest.raises(DatasetError, match="disk full"):
        dataset.save(lmap)
    assert {p.name: p.read_bytes() for p in (tmp_path / "map").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["map"]  # no temporary left behind


def test_missing_map_and_mismatching_metadata_name_the_map(tmp_path: Path, oracle_map) -> None:
    lmap, _ = oracle_map
    with pytest.raises(CrocoInputError, match="nomap.*build_map"):
        read_map(tmp_path / "nomap")
    from dataclasses import replace

    for change in ({"model_checksum": "other"}, {"gsd": 2.0}, {"patch_px": 32},
                   {"channels": ("DSM_C12", "DEM_C123_TLI")}, {"normalisation": {"mode": "global_minmax"}}):  # fmt: skip
        key = next(iter(change))
        with pytest.raises(CrocoInputError, match=f"<memory>.*{key}"):
            check_map(lmap, replace(SPEC, **change))
    check_map(lmap, SPEC)  # the map's own spec passes


def test_index_turns_approximate_above_the_threshold() -> None:
    vectors = np.random.default_rng(0).normal(size=(3000, 8)).astype(np.float32)
    assert make_index(vectors, 5000, None, 8).kind == "flat"
    ivf = make_index(vectors, 1000, 16, 16)
    assert ivf.kind == "ivf" and len(ivf) == 3000
    assert (ivf.search(vectors[:20], 1)[1][:, 0] == np.arange(20)).all()  # nprobe = nlist: exact


def test_geotiff_ortho_in_another_crs_is_warped_to_the_stack_grid(tmp_path: Path, stack) -> None:
    from rasterio.warp import calculate_default_transform, reproject

    from croco_pipeline.data.geo import GeoRaster, write_geotiff

    # the scene's RGB written in UTM 16N (another CRS), then read back on a 1 m grid in 26915
    dst = CRS.from_epsg(32616)
    h, w = stack.shape
    left, top = stack.transform.c, stack.transform.f
    transform, cols, rows = calculate_default_transform(
        stack.crs, dst, w, h, left, top - h, left + w, top, resolution=0.5
    )
    out = np.zeros((3, rows, cols), np.uint8)
    reproject(
        stack.rgb,
        out,
        src_transform=stack.transform,
        src_crs=stack.crs,
        dst_transform=transform,
        dst_crs=dst,
    )
    write_geotiff(GeoRaster(out, dst, transform), tmp_path / "ortho.tif")
    ortho = GeoTiffOrtho(tmp_path / "ortho.tif", 1.0, "EPSG:26915")
    assert ortho.grid.transform.a == 1.0 and ortho.grid.crs.to_epsg() == 26915
    mosaic = StackMosaic([stack])
    from croco_pipeline.localisation.ortho import Block

    # a block inside both: the warped ortho agrees with the stack's own RGB
    c0 = round((ortho.grid.transform.c - left) / 1.0)
    r0 = round((top - ortho.grid.transform.f) / 1.0)
    rgb, valid = ortho.read(Block(20, 20, 40, 40))
    ref, _ = mosaic.read(Block(20 + r0, 20 + c0, 40, 40))
    assert valid.all()
    assert np.abs(rgb.astype(int) - ref.astype(int)).mean() < 12
    # read once into memory: the same pixels, also for blocks overhanging the grid
    in_memory = open_ortho(tmp_path / "ortho.tif", list, 1.0, "EPSG:26915", 10**6)
    assert isinstance(in_memory, InMemoryOrtho) and in_memory.grid.shape == ortho.grid.shape
    assert in_memory.grid.transform == ortho.grid.transform
    rows, cols = ortho.grid.shape
    for block in (Block(20, 20, 40, 40), Block(-5, cols - 30, 40, 60), Block(rows + 1, 0, 4, 4)):
        a, b = ortho.read(block), in_memory.read(block)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert isinstance(open_ortho(tmp_path / "ortho.tif", list, 1.0, "EPSG:26915", 10), GeoTiffOrtho)
