"""train -> evaluate, run for real through ``kedro run`` on the tiny synthetic release."""

import json

import mlflow
import numpy as np
import pandas as pd
import torch

from croco_pipeline.data.datasets import GeoTiffDataset, TileStackDataset
from croco_pipeline.model.runtime import load_model

PAPER_KEYS = {"top1", "top5", "chance_top1", "chance_top5", "n_queries"}


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


def test_metrics_json_shape(tiny_run):
    metrics = json.loads((tiny_run / "data/08_reporting/metrics.json").read_text())
    for method in ("model", "baseline"):
        for direction in ("elevation_to_rgb", "rgb_to_elevation"):
            paper = metrics[method]["paper"][direction]
            assert PAPER_KEYS <= set(paper)
            assert 0 <= paper["chance_top1"] <= paper["chance_top5"] <= 1
            loc = metrics[method]["localisation"]["stride_8m"][direction]
            assert {"top1_within_8m", "top10_within_16m", "median_error_m", "p90_error_m"} <= set(
                loc
            )
    report = (tiny_run / "data/08_reporting/report.md").read_text()
    assert "baseline" in report.lower() or "classical" in report.lower()


def test_figures_and_georeferenced_heatmaps(tiny_run):
    reporting = tiny_run / "data/08_reporting"
    for name in ("heatmaps.png", "retrieval_map.png", "failure_gallery.png"):
        assert (reporting / name).stat().st_size > 5000
    heatmaps = sorted((reporting / "heatmaps").glob("*.tif"))
    assert len(heatmaps) == 3
    raster = GeoTiffDataset(str(heatmaps[0])).load()
    tile = heatmaps[0].stem.split("_patch")[0]
    stack = TileStackDataset(str(tiny_run / f"data/03_primary/aligned_stacks/{tile}.tif")).load()
    assert raster.crs == stack.crs
    assert raster.transform.a == 16.0 and raster.transform.e == -16.0  # one pixel per 16 m patch
    assert raster.bounds[0] >= stack.transform.c and raster.bounds[3] <= stack.transform.f
    assert np.nanmax(np.abs(raster.data)) <= 1.0 + 1e-5


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
