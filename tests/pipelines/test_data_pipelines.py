"""synthesize -> ingest -> preprocess, run for real through ``kedro run`` on a tiny synthetic release."""

import json

import pandas as pd
import pytest

from croco_pipeline.data.datasets import TileStackDataset

from .conftest import KedroRunError, kedro_run

pytestmark = pytest.mark.slow  # every test here starts ``kedro run`` or reads its outputs


def test_release_and_aligned_stacks(tiny_run):
    release = tiny_run / "data/01_raw/dfc2018_synthetic"
    assert (release / "SYNTHETIC.json").exists()
    assert len(list((release / "Final RGB HR Imagery").glob("UH_NAD83_*.tif"))) == 6

    splits = json.loads((tiny_run / "data/03_primary/tile_splits.json").read_text())
    assert len(splits) == 6 and set(splits.values()) == {"train", "val", "test"}
    folder = tiny_run / "data/03_primary/aligned_stacks"
    stacks = {p.stem: TileStackDataset(str(p)).load() for p in folder.glob("*.tif")}
    assert set(stacks) == set(splits)
    for name, stack in stacks.items():
        xmin, ymin = (int(v) for v in name.split("_"))
        assert stack.crs.to_epsg() == 26915
        # geometry, not only shape: 1 m pixels at the tile's own corner, 64 x 64 m
        assert stack.transform.a == 1.0 and stack.transform.e == -1.0
        assert (stack.transform.c, stack.transform.f) == (xmin, ymin + 64)
        assert stack.shape == (64, 64)
        assert stack.channels == ("DSM_C12", "DEM_C123_TLI", "DEM+B_C123")
        assert stack.split == splits[name]


def test_statistics_and_patch_indexes(tiny_run):
    stats = json.loads((tiny_run / "data/04_feature/normalisation_stats.json").read_text())
    assert stats["mode"] == "relative" and -40 < stats["minimum"] < stats["maximum"] < 100
    train_index = pd.read_parquet(tiny_run / "data/04_feature/train_patch_index.parquet")
    eval_index = pd.read_parquet(tiny_run / "data/04_feature/eval_patch_index.parquet")
    assert set(train_index["size_px"]) == {16} and len(train_index) > len(eval_index) > 0
    # the evaluation grid does not overlap: at most 4 x 4 patches of 16 px per 64 px tile
    assert eval_index.groupby("tile").size().max() <= 16
    assert set(eval_index["col"] % 16) == {0} and set(train_index["col"] % 8) == {0}
    # centres in map coordinates: inside the named tile
    xmin = eval_index["tile"].str.split("_").str[0].astype(float)
    assert ((eval_index["x"] - xmin) % 16 == 8).all()


def test_rerun_reuses_the_release(tiny_run):
    marker = tiny_run / "data/01_raw/dfc2018_synthetic/SYNTHETIC.json"
    first = marker.stat().st_mtime_ns
    output = kedro_run(tiny_run, ["synthesize"])
    assert marker.stat().st_mtime_ns == first
    assert "already matches the config" in output


def test_bad_parameter_fails_cleanly_and_writes_nothing(run_kedro, kedro_project):
    expected = r"CrocoConfigError: preprocess\.gsd: Input should be greater than 0"
    with pytest.raises(KedroRunError, match=expected):
        run_kedro(["ingest", "preprocess"], {"preprocess": {"gsd": -1.0}})
    assert not (kedro_project / "data/02_intermediate/ingested").exists()
    assert not (kedro_project / "data/03_primary/aligned_stacks").exists()
