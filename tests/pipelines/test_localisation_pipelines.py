"""build_map -> localize through ``kedro run`` on the tiny trained run, queries made from its scene."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import CRS as ProjCRS

from croco_pipeline.data.datasets import GeoTiffDataset, TileStackDataset
from croco_pipeline.localisation.datasets import read_map

from .conftest import KedroRunError, kedro_run

pytestmark = pytest.mark.slow


def _write_scan(path: Path, stack, rows: slice, cols: slice, seed: int) -> tuple[float, float]:
    """A LAZ scan over a window of a tile stack: per point a surface, a building/ground and a
    bare-earth return, so every channel of the stack can be rasterised back. Returns its centre."""
    import laspy

    rng = np.random.default_rng(seed)
    n = (rows.stop - rows.start) * (cols.stop - cols.start) * 6
    fr, fc = rng.uniform(rows.start, rows.stop, n), rng.uniform(cols.start, cols.stop, n)
    t = stack.transform
    x, y = t.c + fc * t.a, t.f + fr * t.e
    dsm, tli, demb = (stack.elevation[i, fr.astype(int), fc.astype(int)] for i in range(3))
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.scales, header.offsets = (
        np.array([0.01] * 3),
        np.array([np.floor(x.min()), np.floor(y.min()), 0]),
    )
    header.add_crs(ProjCRS.from_wkt(stack.crs.to_wkt()))
    las = laspy.LasData(header)
    las.x, las.y = np.tile(x, 3), np.tile(y, 3)
    las.z = np.concatenate([dsm, demb, tli])
    las.classification = np.repeat(np.array([1, 6, 2], np.uint8), n)
    las.write(str(path))
    return float((x.min() + x.max()) / 2), float((y.min() + y.max()) / 2)


@pytest.fixture(scope="module")
def localised(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    project = tmp_path_factory.mktemp("loc") / "project"
    shutil.copytree(
        tiny_run, project
    )  # its own MLflow runs, so the tiny run's tests are unaffected
    stacks = sorted((project / "data/03_primary/aligned_stacks").glob("*.tif"))
    stack = TileStackDataset(str(stacks[0])).load()
    queries = project / "queries"
    (queries / "track_a").mkdir(parents=True)
    index = [{"file": "single.laz", "center_x": 0.0, "center_y": 0.0}]
    index[0]["center_x"], index[0]["center_y"] = _write_scan(
        queries / "single.laz", stack, slice(8, 40), slice(8, 40), 0
    )
    _write_scan(queries / "track_a" / "s0.laz", stack, slice(4, 28), slice(4, 44), 1)
    _write_scan(queries / "track_a" / "s1.laz", stack, slice(20, 44), slice(4, 44), 2)
    (queries / "index.json").write_text(json.dumps(index))
    (queries / "broken.laz").write_bytes(b"LASF not really")
    kedro_run(
        project, ["build_map", "localize"], cli_args=["--params", f"localize.queries={queries}"]
    )
    return project, queries


def test_map_folder_geometry(localised) -> None:
    project, _ = localised
    lmap = read_map(project / "data/06_models/localisation_map")
    meta = lmap.metadata
    assert meta["patch_px"] == 16 and meta["stride_px"] == 4 and meta["index_kind"] == "flat"
    assert len(lmap.index) == len(lmap.centres) == meta["n_patches"] > 0
    stack = TileStackDataset(
        str(sorted((project / "data/03_primary/aligned_stacks").glob("*.tif"))[0])
    ).load()
    assert ProjCRS.from_wkt(meta["crs"]) == ProjCRS.from_wkt(stack.crs.to_wkt())
    # every centre sits on the lattice: origin + stride multiples, half a patch inside the grid
    lx = meta["lattice_origin"][0] + lmap.centres["lattice_col"] * meta["stride_m"]
    np.testing.assert_allclose(lmap.centres["x"], lx)
    # each patch's hubness against the training tiles' elevation windows, centred over the map
    assert meta["hubness"]["k"] == 10 and meta["hubness"]["bank_size"] > 10
    assert lmap.hubness.std() > 0 and abs(float(lmap.hubness.mean())) < 1e-5


def test_localisations_table_geojson_heatmaps_overview(localised) -> None:
    project, _ = localised
    table = pd.read_csv(project / "data/07_model_output/localisations.csv")
    assert list(table.columns[:10]) == ["query", "track", "file", "x", "y", "crs", "score",
                                        "confidence", "status", "reason"]  # fmt: skip
    by_file = table.set_index("file")
    assert by_file.loc["broken.laz", "status"] == "failed"
    assert "broken.laz" in by_file.loc["broken.laz", "reason"]
    ok = table[table["status"] == "ok"]
    assert set(ok["file"]) == {"single.laz", "s0.laz", "s1.laz"}
    assert set(ok.loc[ok["file"] != "single.laz", "track"]) == {"track_a"}
    assert ok["confidence"].between(0, 1).all()
    assert np.isfinite(by_file.loc["single.laz", "error_m"])  # truth from index.json
    geojson = json.loads(
        (project / "data/08_reporting/localisation_footprints.geojson").read_text()
    )
    located = [f for f in geojson["features"] if f["geometry"] is not None]
    assert len(located) == 3
    lon, lat = np.array(located[0]["geometry"]["coordinates"][0]).T
    assert (np.abs(lon) <= 180).all() and (np.abs(lat) <= 90).all()  # RFC 7946: WGS84 lon/lat
    heatmaps = sorted((project / "data/07_model_output/localisation_heatmaps").glob("*.tif"))
    assert {p.stem for p in heatmaps} == {"single", "track_a"}
    heat = GeoTiffDataset(str(heatmaps[0])).load()  # "single"
    meta = json.loads((project / "data/06_models/localisation_map/metadata.json").read_text())
    assert heat.transform.a == meta["stride_m"] and heat.transform.e == -meta["stride_m"]
    assert ProjCRS.from_wkt(heat.crs.to_wkt()) == ProjCRS.from_wkt(meta["crs"])
    extra = np.subtract(heat.shape, meta["lattice_shape"])  # the lattice, maybe with a vote margin
    assert (extra >= 0).all() and extra[0] == extra[1] and extra[0] % 2 == 0
    left, bottom, right, top = heat.bounds  # the fix lies on its own heatmap
    single = by_file.loc["single.laz"]
    assert left <= single["x"] <= right and bottom <= single["y"] <= top
    assert heat.data.max() > 0
    assert heat.band_names == ("support", "votes")  # what the localiser ranked, then the raw votes
    support = json.loads(by_file.loc["single.laz", "top5_support"])
    assert heat.data[0].max() == pytest.approx(max(support), abs=6e-5)  # CSV: 4 decimals
    assert (project / "data/08_reporting/localisation_overview.png").stat().st_size > 5000


def test_a_map_from_other_parameters_is_refused(localised) -> None:
    project, queries = localised
    with pytest.raises(KedroRunError, match="localisation_map.*patch_px"):
        kedro_run(project, ["localize"], params={"preprocess": {"patch_size_m": 8}},
                  cli_args=["--params", f"localize.queries={queries}"])  # fmt: skip
