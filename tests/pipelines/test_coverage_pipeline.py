"""A sparse scene through ``kedro run``: empty blocks are dropped, counted and reported, not fatal.

A 240 m raster pair whose left third has no LiDAR returns, plus an exclusion mask (the catalog's
``exclusion_mask``) over one more block, runs ingest -> evaluate in the autzen environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from affine import Affine

from croco_pipeline.data.geo import GeoRaster, write_geotiff

from .conftest import kedro_run, make_project
from .test_environments import DSM_CRS, ORIGIN, PAIR_PARAMS, write_tiny_pair

SIDE_M, NODATA_LEFT_M = 240.0, 80.0
#: 4 x 4 blocks of 48 m with 16 m buffers: column 0 spans x 0-48 m, row 3 / column 3 192-240 m
LEFT_BLOCKS = [f"block_r{r}_c0" for r in range(4)]
MASKED_BLOCK = "block_r3_c3"


def _write_mask(path: Path) -> Path:
    """Water (1) over the south-east block, in the DSM's CRS at 1 m, dry (0) elsewhere."""
    tf = Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1])
    band = np.zeros((240, 240), np.uint8)
    band[188:240, 188:240] = 1
    write_geotiff(GeoRaster(band, DSM_CRS, tf), path)
    return path


@pytest.mark.slow
def test_sparse_scene_drops_and_counts_blocks(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    rgb, dsm = write_tiny_pair(tmp_path, side_m=SIDE_M, nodata_left_m=NODATA_LEFT_M)
    mask = _write_mask(tmp_path / "water.tif")
    catalog = project / "conf" / "autzen" / "catalog.yml"
    conf = yaml.safe_load(catalog.read_text())
    conf["raw_source"]["raster_pair"] = {"rgb": str(rgb), "elevation": {"dsm": str(dsm)}}
    conf["exclusion_mask"] = {
        "type": "croco_pipeline.data.masks.ExclusionMaskDataset",
        "filepath": str(mask),
    }
    catalog.write_text(yaml.safe_dump(conf))

    # no synthetic model to start from here (the autzen env's train.init_from)
    params = {**PAIR_PARAMS, "train": {"init_from": None}}
    output = kedro_run(project, ["ingest", "preprocess", "train", "evaluate"], params, env="autzen")

    root = project / "data" / "autzen"
    report = json.loads((root / "03_primary/preprocess_report.json").read_text())
    dropped = sorted(d["name"] for d in report["dropped"])
    assert dropped == sorted([*LEFT_BLOCKS, MASKED_BLOCK])
    warnings = [line for line in output.splitlines() if "preprocess: dropped block_" in line]
    assert len(warnings) == 5 and all("WARNING" in line for line in warnings)
    # the split fractions (0.6 / 0.15 / 0.25) apply to the 11 kept blocks
    assert report["kept_tiles"] == {"train": 6, "val": 2, "test": 3}
    stacks = {p.stem for p in (root / "03_primary/aligned_stacks").glob("*.tif")}
    assert len(stacks) == 11 and not stacks & set(dropped)
    metrics = json.loads((root / "08_reporting/metrics.json").read_text())
    assert metrics["coverage"]["dropped_tiles"] == 5
    assert metrics["coverage"]["usable_patches"] == report["usable_patches"]
    assert metrics["model"]["paper"]["elevation_to_rgb"]["n_queries"] > 0
