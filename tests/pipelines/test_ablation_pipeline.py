"""``kedro run --pipelines=ablation`` with the smoke profile on the tiny synthetic release.

To stay within the test budget on 2 cores, the copied project's grid is cut to the batch-size and
test-set studies plus the GSD study (5 trainings; ``gsd_1m`` and ``batch_128`` equal ``baseline``
and reuse its result). The full smoke grid is the same code path with more configurations.
"""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from PIL import Image

from .conftest import kedro_run, make_project

KEEP_CONFIGS = ("baseline", "gsd_50cm", "gsd_1m", "gsd_2m", "batch_128", "batch_256", "batch_512")
KEEP_STUDIES = ("table1_gsd", "table3_batch", "table4_test_set")
SMOKE = {"ablation": {"profile": "smoke"}}


def _cut_grid(project: Path) -> None:
    path = project / "conf/base/parameters_ablation.yml"
    conf = yaml.safe_load(path.read_text())
    ablation = conf["ablation"]
    ablation["configurations"] = {k: ablation["configurations"][k] for k in KEEP_CONFIGS}
    ablation["studies"] = {k: ablation["studies"][k] for k in KEEP_STUDIES}
    for profile in ablation["profiles"].values():  # exclusions must name kept configurations
        profile["exclude"] = [c for c in profile.get("exclude") or [] if c in KEEP_CONFIGS]
    path.write_text(yaml.safe_dump(conf, sort_keys=False))


@pytest.fixture(scope="module")
def ablation_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, dict]:
    """Two smoke ablation runs of one project: the first trains, the second should skip all."""
    project = make_project(tmp_path_factory.mktemp("ablation") / "project")
    _cut_grid(project)
    first = kedro_run(project, ["synthesize", "ingest", "ablation"], SMOKE)
    work = project / "data/06_models/ablation"
    mtimes = {p.parent.name: p.stat().st_mtime_ns for p in work.glob("*/result.json")}
    second = kedro_run(project, ["ablation"], SMOKE)
    return project, first, second, mtimes


@pytest.mark.slow
def test_one_nested_mlflow_run_per_configuration(ablation_runs):
    project, *_ = ablation_runs
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "croco_pipeline"]
    runs = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2  # one per `kedro run`
    first_parent = parents[0].info.run_id
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == first_parent]
    assert sorted(r.data.tags["ablation_config"] for r in children) == sorted(KEEP_CONFIGS)
    assert sorted(r.info.run_name for r in children) == sorted(KEEP_CONFIGS)
    batch_256 = next(r for r in children if r.info.run_name == "batch_256")
    assert batch_256.data.params["train.batch_size"] == "16"  # 256 scaled by the smoke profile
    assert {"model/paper/top1", "baseline/localisation/8/top1", "train_time_s"} <= set(
        batch_256.data.metrics
    )
    artifacts = {a.path for a in client.list_artifacts(first_parent, "ablation")}
    assert {"ablation/tables.md", "ablation/tables.csv", "ablation/plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(first_parent, "ablation/plots")}
    assert plots == {f"ablation/plots/{study}.png" for study in KEEP_STUDIES}


@pytest.mark.slow
def test_tables_and_plots_hold_ours_beside_published(ablation_runs):
    project, *_ = ablation_runs
    reporting = project / "data/08_reporting/ablation"
    tables = pd.read_csv(reporting / "tables.csv")
    batch = tables[tables["study"] == "table3_batch"]
    assert batch["setting"].astype(float).tolist() == [128, 256, 512]
    assert batch["published_top1"].tolist() == [0.34, 0.40, 0.48]
    assert batch["top1"].between(0, 1).all()
    test_set = tables[tables["study"] == "table4_test_set"]
    assert test_set["loc_stride_m"].tolist() == [2, 4]
    markdown = (reporting / "tables.md").read_text()
    assert "Table 3: batch size" in markdown and "0.480" in markdown
    for study in KEEP_STUDIES:
        # a whole PNG; what the plot draws is checked in tests/experiments/test_ablation.py
        with Image.open(reporting / "plots" / f"{study}.png") as png:
            png.verify()
    results = pd.read_csv(reporting / "results.csv")
    assert sorted(results["configuration"]) == sorted(KEEP_CONFIGS)
    statuses = dict(zip(results["configuration"], results["status"], strict=True))
    assert set(statuses.values()) == {"skipped"}  # results.csv is from the second run


@pytest.mark.slow
def test_rerun_skips_every_finished_configuration(ablation_runs):
    project, first, second, mtimes = ablation_runs
    assert first.count("skipped: finished with identical parameters") == 0
    for name in KEEP_CONFIGS:
        assert f"ablation {name}: skipped: finished with identical parameters" in second
    work = project / "data/06_models/ablation"
    assert {p.parent.name: p.stat().st_mtime_ns for p in work.glob("*/result.json")} == mtimes
    stored = json.loads((work / "batch_512/result.json").read_text())
    assert stored["params"]["train"]["batch_size"] == 32 and len(stored["hash"]) == 16
    assert (work / "batch_512/checkpoints/last.pt").exists()


def test_pipeline_is_built_without_reading_any_configuration(tmp_path, monkeypatch):
    """The grid lives in params:ablation only: building the pipeline from a folder without any
    conf/ gives the same two nodes, fed by the parameters at run time."""
    from croco_pipeline.pipelines.ablation import create_pipeline

    monkeypatch.chdir(tmp_path)
    pipeline = create_pipeline()
    assert [n.name for n in pipeline.nodes] == [
        "ablation.run_ablation",
        "ablation.summarise_ablation",
    ]
    assert "params:ablation" in pipeline.inputs() and "ablation_plots" in pipeline.outputs()
