"""Environments do not mix: each one reads and writes under its own ``globals.data_root``.

The issue's failure: ``kedro run --env autzen`` then ``kedro run --pipelines=...`` in the default env
picked up Autzen's ingested scene. Here both environments run in one project, in turn, and then each
one's later pipelines run alone and must find their own data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from croco_pipeline.config_loader import RuntimeParamsLastLoader
from croco_pipeline.data.datasets import TileStackDataset
from croco_pipeline.data.geo import GeoRaster, write_geotiff
from croco_pipeline.data.provenance import REBUILD_INGEST

from .conftest import ROOT, KedroRunError, kedro_run, make_project

DSM_CRS, RGB_CRS = CRS.from_epsg(26910), CRS.from_epsg(32610)
ORIGIN = (493000.0, 4878000.0)  # top-left of the DSM, metres in EPSG:26910
SIDE_M, GSD = 160.0, 0.5
#: the autzen env's parameters for a 160 m scene: 1 m pixels, 2 x 2 blocks of 72 m, and the DSM
#: alone (the tiny pair has no point cloud for the autzen env's intensity channel)
PAIR_PARAMS = {"preprocess": {"channels": ["dsm"], "blocks": {"block_size_m": 48, "buffer_m": 16}}}


def _heights(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ground with 6 m houses on an irregular 8 m lattice, as a function of EPSG:26910 metres."""
    cell = (np.floor(x / 8) * 7 + np.floor(y / 8) * 13) % 5
    return (100.0 + 6.0 * (cell == 0) + 0.01 * (x - ORIGIN[0])).astype(np.float32)


def _centres(tf: Affine, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    cc, rr = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    return tf.c + tf.a * cc, tf.f + tf.e * rr


def write_tiny_pair(
    folder: Path, side_m: float = SIDE_M, nodata_left_m: float = 0.0
) -> tuple[Path, Path]:
    """A DSM in EPSG:26910 and an RGB in EPSG:32610 (reprojected on ingest), both 0.5 m.

    The DSM is nodata west of ``ORIGIN[0] + nodata_left_m`` (no LiDAR returns there).
    """
    n = round(side_m / GSD)
    dsm_tf = Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1])
    dsm = folder / "dsm.tif"
    x, y = _centres(dsm_tf, n, n)
    heights = np.where(x < ORIGIN[0] + nodata_left_m, -9999.0, _heights(x, y)).astype(np.float32)
    write_geotiff(GeoRaster(heights, DSM_CRS, dsm_tf, -9999.0), dsm)
    # the RGB's own grid: the DSM footprint plus 10 m, colours from the heights at its pixel centres
    xs, ys = warp_transform(DSM_CRS, RGB_CRS, [ORIGIN[0] - 10], [ORIGIN[1] + 10])
    m = n + round(20 / GSD)
    rgb_tf = Affine(GSD, 0, round(xs[0]), 0, -GSD, round(ys[0]))
    px, py = _centres(rgb_tf, m, m)
    ux, uy = warp_transform(RGB_CRS, DSM_CRS, px.ravel(), py.ravel())
    h = _heights(np.asarray(ux), np.asarray(uy)).reshape(m, m)
    grey = np.where(h > 103, 230, 60).astype(np.uint8)
    rgb = folder / "rgb.tif"
    write_geotiff(GeoRaster(np.stack([grey, grey, 255 - grey]), RGB_CRS, rgb_tf), rgb)
    return rgb, dsm


def _stacks(folder: Path) -> dict[str, object]:
    return {p.stem: TileStackDataset(str(p)).load() for p in sorted(folder.glob("*.tif"))}


@pytest.mark.slow
def test_two_environments_in_turn_then_later_pipelines_alone(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    rgb, dsm = write_tiny_pair(tmp_path)
    catalog = project / "conf" / "autzen" / "catalog.yml"
    conf = yaml.safe_load(catalog.read_text())
    conf["raw_source"]["raster_pair"] = {"rgb": str(rgb), "elevation": {"dsm": str(dsm)}}
    catalog.write_text(yaml.safe_dump(conf))

    kedro_run(project, ["synthesize", "ingest", "preprocess"])  # default env: data/
    kedro_run(project, ["ingest", "preprocess"], PAIR_PARAMS, env="autzen")  # data/autzen/
    # each environment's later pipelines alone, after the other one ran
    kedro_run(project, ["preprocess", "train", "evaluate"])
    with pytest.raises(KedroRunError, match="train.init_from.*env synthetic_dsm"):
        kedro_run(project, ["train"], PAIR_PARAMS, env="autzen")  # its starting model is missing
    kedro_run(project, ["synthesize", "ingest", "preprocess", "train"], env="synthetic_dsm")
    out = kedro_run(project, ["preprocess", "train", "evaluate"], PAIR_PARAMS, env="autzen")
    # the autzen env starts from the synthetic scene trained on its DSM alone (train.init_from):
    # one elevation channel there as here, so every tensor carries over, the stem included
    loaded = re.search(r"train.init_from: (\d+) of (\d+) tensors loaded from (\S+)", out)
    assert loaded and loaded[1] == loaded[2] and "keep their initialisation" not in out
    assert loaded[3] == "data/synthetic_dsm/06_models/croco_model.pt"

    default, autzen = project / "data", project / "data" / "autzen"
    assert sorted(p.name for p in autzen.iterdir()) == [
        "02_intermediate", "03_primary", "04_feature", "06_models", "07_model_output",
        "08_reporting",
    ]  # fmt: skip
    manifests = [json.loads((root / "02_intermediate/ingest_manifest.json").read_text())
                 for root in (default, autzen)]  # fmt: skip
    assert manifests[0]["source"]["kind"] == "dfc2018" and manifests[0]["source"]["synthetic"]
    assert manifests[1]["source"] == {
        "kind": "raster_pair", "rgb": str(rgb), "elevation": {"dsm": str(dsm)}
    }  # fmt: skip

    dfc = _stacks(default / "03_primary/aligned_stacks")
    assert len(dfc) == 6 and all(name.count("_") == 1 for name in dfc)  # DFC tile names only
    for stack in dfc.values():
        assert stack.channels == ("DSM_C12", "DEM_C123_TLI", "DEM+B_C123")  # type: ignore[attr-defined]
        assert stack.crs.to_epsg() == 26915  # type: ignore[attr-defined]
    blocks = _stacks(autzen / "03_primary/aligned_stacks")
    assert sorted(blocks) == ["block_r0_c0", "block_r0_c1", "block_r1_c0", "block_r1_c1"]
    for stack in blocks.values():
        # the pair's grid: EPSG:26910 at 1 m inside the DSM, one channel
        assert stack.channels == ("dsm",) and stack.crs.to_epsg() == 26910  # type: ignore[attr-defined]
        t = stack.transform  # type: ignore[attr-defined]
        assert t.a == 1.0 and ORIGIN[0] <= t.c < ORIGIN[0] + SIDE_M and t.f <= ORIGIN[1]

    for root, n_channels in ((default, 3), (default / "synthetic_dsm", 1), (autzen, 1)):
        bundle = torch.load(root / "06_models/croco_model.pt", weights_only=True)
        assert bundle["config"]["n_elevation_channels"] == n_channels
        assert {p.name for p in (root / "06_models/checkpoints").iterdir()} == {
            "best.pt",
            "last.pt",
        }
        if root.name != "synthetic_dsm":  # trained only, not evaluated
            metrics = json.loads((root / "08_reporting/metrics.json").read_text())
            assert metrics["model"]["paper"]["elevation_to_rgb"]["n_queries"] > 0


@pytest.mark.slow
def test_stale_ingest_names_the_dataset_and_the_command(tmp_path: Path) -> None:
    """Data from another source in this env's root (here: an ingest with other channels)."""
    project = make_project(tmp_path / "project")
    kedro_run(project, ["synthesize", "ingest"], {"preprocess": {"channels": ["DSM_C12"]}})
    with pytest.raises(KedroRunError) as err:
        kedro_run(project, ["preprocess"])
    message = str(err.value)
    assert "dataset 'ingested_rasters' is stale" in message and REBUILD_INGEST in message
    assert "asks for ['DEM_C123_TLI', 'DEM+B_C123']" in message


def _parameters(env: str, runtime: dict | None = None) -> dict:
    loader = RuntimeParamsLastLoader(
        conf_source=str(ROOT / "conf"), env=env, base_env="base", default_run_env="local",
        runtime_params=runtime,
    )  # fmt: skip
    return loader["parameters"]


def test_runtime_params_change_only_the_keys_they_name_in_an_environment() -> None:
    # autzen does not restate `localize`: Kedro's own loader merges `--params` into the autzen folder
    # first, and the destructive env merge then replaced the whole section with {queries: ...}
    plain = _parameters("autzen")
    got = _parameters("autzen", {"localize": {"queries": "q"}, "make_queries": {"seed": 5}})
    assert got["localize"] == {**plain["localize"], "queries": "q"}
    assert got["localize"]["rerank"]["weight"] > 0 and got["make_queries"]["seed"] == 5
    # the environment still replaces base's sections whole: no base track lengths leak in
    assert got["make_queries"] == {**plain["make_queries"], "seed": 5}
    assert (
        got["make_queries"]["tracks"] == {4: 50} != _parameters("local")["make_queries"]["tracks"]
    )
