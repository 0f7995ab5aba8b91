"""``kedro run --env autzen`` ingests and preprocesses the real Autzen rasters (two CRSs) through Kedro."""

import json
from pathlib import Path

import pytest
import yaml

from croco_pipeline.data.datasets import TileStackDataset

from .conftest import ROOT, kedro_run

AUTZEN = (ROOT / ".." / "shared" / "data" / "autzen").resolve()


@pytest.mark.slow  # a ``kedro run`` of ingest + preprocess on the real rasters
@pytest.mark.skipif(
    not AUTZEN.exists(), reason=f"Autzen data not found at {AUTZEN} (../shared absent)"
)
def test_autzen_environment_aligns_the_real_pair(kedro_project: Path) -> None:
    catalog = kedro_project / "conf" / "autzen" / "catalog.yml"
    conf = yaml.safe_load(catalog.read_text())
    pair = conf["raw_source"]["raster_pair"]  # absolute paths: the copy lives outside the repo
    pair["rgb"] = str(AUTZEN / "ortho" / "autzen.jpg")
    pair["elevation"] = {
        "dsm": str(AUTZEN / "dsm" / "autzen_dsm_0.5m.tif"),
        "intensity": str(AUTZEN / "lidar" / "autzen_full.laz"),
    }
    catalog.write_text(yaml.safe_dump(conf))
    # the DSM and an intensity channel rasterised from the whole cloud (10.5 M points)
    params = {"preprocess": {"gsd": 2.0, "channels": ["dsm", "intensity"]}}
    kedro_run(kedro_project, ["ingest", "preprocess"], params, env="autzen")

    splits = json.loads((kedro_project / "data/autzen/03_primary/tile_splits.json").read_text())
    assert set(splits.values()) == {"train", "val", "test"} and len(splits) >= 6
    folder = kedro_project / "data/autzen/03_primary/aligned_stacks"  # the env's data_root
    assert len(list(folder.glob("*.tif"))) == len(splits)
    for path in folder.glob("*.tif"):
        stack = TileStackDataset(str(path)).load()
        # one grid for RGB and heights, in the DSM's CRS (EPSG:26910), at 2 m, inside the DSM
        assert stack.crs.to_epsg() == 26910 and stack.transform.a == 2.0
        assert 493990.5 <= stack.transform.c and stack.transform.f <= 4878794.0
        assert stack.rgb.shape[1:] == stack.elevation.shape[1:] == stack.valid.shape
        assert stack.channels == ("dsm", "intensity") and stack.valid.mean() > 0.5
        # the intensity channel, rasterised from the whole cloud, holds the sensor's 0-255 returns
        brightness = stack.elevation[1][stack.valid]
        assert 0 <= brightness.min() and brightness.max() <= 255 and brightness.std() > 20
