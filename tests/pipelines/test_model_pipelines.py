"""train -> evaluate, run for real through ``kedro run`` on the tiny synthetic release; the outputs
are checked against what they must equal (the patch index, the stored retrieval records)."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from croco_pipeline.data.datasets import GeoTiffDataset, TileStackDataset
from croco_pipeline.model.runtime import load_model

pytestmark = pytest.mark.slow  # every test here reads the outputs of a real ``kedro run``


def test_model_is_saved_weights_only_and_reloads(tiny_run):
    bundle = torch.load(tiny_run / "data/06_models/croco_model.pt", weights_only=True)
    assert bundle["config"]["embedding_dim"] == 32 and bundle["config"]["stem"] == "fast"
    model = load_model(bundle)
    z = model.embed_elevation(torch.rand(2, 3, 16, 16))
    assert z.shape == (2, 32) and torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    history = pd.read_csv(tiny_run / "data/07_model_output/training_history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"loss", "lr", "pairs_per_s", "val_top1", "val_top5"} <= set(history.columns)
    checkpoints = tiny_run / "data/06_models/checkpoints"
    assert {p.name for p in checkpoints.iterdir()} == {"best.pt", "last.pt"}


def _test_grid(run: Path) -> pd.DataFrame:
    index = pd.read_parquet(run / "data/04_feature/eval_patch_index.parquet")
    return index[index["split"] == "test"]


def test_metrics_chance_levels_follow_the_patch_index(tiny_run):
    metrics = json.loads((tiny_run / "data/08_reporting/metrics.json").read_text())
    per_tile = _test_grid(tiny_run).groupby("tile").size().to_numpy()  # each tile's gallery size
    n = per_tile.sum()
    # the paper protocol: every test patch queries its own tile's gallery
    chance_top1 = float(np.sum(per_tile * (1.0 / per_tile)) / n)
    chance_top5 = float(np.sum(per_tile * (np.minimum(5, per_tile) / per_tile)) / n)
    report = (tiny_run / "data/08_reporting/report.md").read_text()
    for method in ("model", "baseline"):
        for direction in ("elevation_to_rgb", "rgb_to_elevation"):
            paper = metrics[method]["paper"][direction]
            assert paper["n_queries"] == n
            assert paper["chance_top1"] == pytest.approx(chance_top1)
            assert paper["chance_top5"] == pytest.approx(chance_top5)
            assert 0 <= paper["top1"] <= paper["top5"] <= 1
            loc = metrics[method]["localisation"]["stride_8m"][direction]
            assert loc["top1_within_8m"] <= loc["top5_within_8m"] <= loc["top10_within_8m"]
            assert loc["top1_within_8m"] <= loc["top1_within_16m"]
            assert 0 <= loc["median_error_m"] <= loc["p90_error_m"]
            assert loc["n_queries"] == 20  # evaluate.n_queries of the tiny run
    model, base = metrics["model"]["paper"], metrics["baseline"]["paper"]
    for direction in ("elevation_to_rgb", "rgb_to_elevation"):
        learned, classical = model[direction], base[direction]
        row = (
            f"| paper | {direction} | top1 | {learned['top1']:.3f} | {chance_top1:.3f} | "
            f"{classical['top1']:.3f} | {chance_top1:.3f} |"
        )
        assert row in report.splitlines()


def test_figures_and_georeferenced_heatmaps(tiny_run):
    reporting = tiny_run / "data/08_reporting"
    for name in ("heatmaps.png", "retrieval_map.png", "failure_gallery.png"):
        with Image.open(reporting / name) as png:
            png.verify()  # a whole, decodable PNG (what it draws: tests/evaluation/test_figures.py)
    heatmaps = sorted((reporting / "heatmaps").glob("*.tif"))
    assert len(heatmaps) == 3
    records = pd.read_parquet(tiny_run / "data/07_model_output/retrieval_records.parquet")
    records = records[(records["method"] == "model") & (records["direction"] == "elevation_to_rgb")]
    for path in heatmaps:
        tile, query = path.stem.split("_patch")
        raster = GeoTiffDataset(str(path)).load()
        stack = TileStackDataset(
            str(tiny_run / f"data/03_primary/aligned_stacks/{tile}.tif")
        ).load()
        assert raster.crs == stack.crs
        assert raster.transform.a == 16.0 and raster.transform.e == -16.0  # a pixel per 16 m patch
        assert raster.bounds[0] >= stack.transform.c and raster.bounds[3] <= stack.transform.f
        # the best gallery patch the evaluation found: the heatmap holds its score at its centre
        (rec,) = records[
            (records["tile"] == tile) & (records["query_index"] == int(query))
        ].itertuples()
        grid = _test_grid(tiny_run)
        best = grid[grid["tile"] == tile].iloc[int(rec.top5_indices[0])]
        col, row = ~raster.transform * (best["x"], best["y"])
        assert (col % 1, row % 1) == pytest.approx((0.5, 0.5))  # patch centre = pixel centre
        value = raster.data[0, int(row), int(col)]
        assert value == pytest.approx(rec.top5_scores[0], abs=1e-4)
        assert np.nanmax(raster.data) == pytest.approx(rec.top5_scores[0], abs=1e-4)


def test_mlflow_run_has_params_metrics_and_artifacts(tiny_run):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tiny_run / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "croco_pipeline"]
    (run,) = client.search_runs(
        [experiment.experiment_id], max_results=1, order_by=["start_time ASC"]
    )
    assert run.data.params["train.batch_size"] == "16"
    assert run.data.params["preprocess.patch_size_m"] == "16"
    for key in ("paper/top1", "paper/top5", "model/paper/elevation_to_rgb/top1", "train/loss"):
        assert key in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"croco_model.pt", "report.md", "heatmaps.png"} <= artifacts
