"""The default run's last stages on tiny data: make_queries -> build_map -> localize -> localize_eval."""

from __future__ import annotations

import json
from pathlib import Path

import laspy
import mlflow
import numpy as np
import pandas as pd
import pytest

from croco_pipeline.localisation.evaluation import KINDS, THRESHOLDS_M

pytestmark = pytest.mark.slow

SUMMARY_KEYS = {"n", "median_error_m"} | {f"within_{t}m" for t in THRESHOLDS_M}


def test_queries_made_from_the_release_las_tiles(tiny_run: Path) -> None:
    folder = tiny_run / "data/01_raw/localisation_queries"
    index = json.loads((folder / "index.json").read_text())
    assert len(index) == 6 + 2 * 2 + 4  # TINY_PARAMS: 6 single scans, tracks {2: 2, 4: 1}
    splits = json.loads((tiny_run / "data/03_primary/tile_splits.json").read_text())
    allowed = [n for n, s in splits.items() if s in ("val", "test")]  # parameters_make_queries
    for row in index:
        las = laspy.read(folder / row["file"])
        assert las.header.parse_crs() is not None and len(las.points) == row["points"] >= 200
        x, y = np.asarray(las.x), np.asarray(las.y)
        assert row["center_x"] == pytest.approx((x.min() + x.max()) / 2, abs=1e-3)
        assert row["center_y"] == pytest.approx((y.min() + y.max()) / 2, abs=1e-3)
        inside = [
            n
            for n in allowed
            if 0 <= x.min() - int(n.split("_")[-2]) and x.max() - int(n.split("_")[-2]) <= 64
            and 0 <= y.min() - int(n.split("_")[-1]) and y.max() - int(n.split("_")[-1]) <= 64
        ]  # fmt: skip
        assert inside, f"{row['file']} is not inside one val/test tile"
    assert (folder / "QUERIES.json").is_file()


def test_metrics_json_table_figures_and_mlflow(tiny_run: Path) -> None:
    metrics = json.loads((tiny_run / "data/08_reporting/localisation_metrics.json").read_text())
    for method in ("model", "baseline"):
        assert set(metrics[method]) >= set(KINDS)
        for kind in KINDS:
            assert set(metrics[method][kind]) == SUMMARY_KEYS
        assert metrics[method]["single"]["n"] == 6 and metrics[method]["track_2"]["n"] == 4
    assert metrics["baseline_method"] in ("baseline_whole_scan", "baseline_tiled")
    assert set(metrics["by_split"]["model"]) <= {"val", "test"}
    # the table agrees with the CSVs it was computed from
    table = pd.read_csv(tiny_run / "data/07_model_output/localisations.csv")
    single = table[table["track"].isna() & (table["status"] == "ok")]
    err = np.hypot(single["x"] - single["truth_x"], single["y"] - single["truth_y"])
    assert metrics["model"]["single"]["within_8m"] == pytest.approx(float(np.mean(err <= 8)))
    baseline = pd.read_csv(tiny_run / "data/07_model_output/baseline_localisations.csv")
    assert set(baseline["method"]) == {"whole_scan", "tiled"}
    # flat ground apart: the two bands share out the model's scans, from the CSV's relief feature
    bands = metrics["by_relief"]["model"]["all"]
    assert bands["flat"]["single"]["n"] + bands["relief"]["single"]["n"] == 6
    spread = -5.0 * np.log1p(-single["relief"].to_numpy(float))
    assert bands["flat"]["single"]["n"] == int(np.sum(spread <= 1.0))
    report = (tiny_run / "data/08_reporting/localisation_report.md").read_text()
    assert "| model | single | 6 |" in report and "Confidence: threshold" in report
    assert "Model, flat ground apart" in report and "| all | single |" in report
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tiny_run / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "croco_pipeline"]
    # the shared tiny project also holds later runs of other tests (e.g. build_map,localize alone):
    # take the newest run that evaluated localisation
    runs = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])
    run = next(r for r in runs if "localize/model/single/within_8m" in r.data.metrics)
    assert run.data.metrics["localize/model/single/within_8m"] == pytest.approx(
        metrics["model"]["single"]["within_8m"]
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "localisation_error_map.png",
        "localisation_error_cdf.png",
        "localisation_report.md",
    } <= artifacts
