"""Nodes of the ``ablation`` pipeline: every configuration end to end, then the study tables.

Side channel (documented): each configuration keeps ``<ablation.work_dir>/<name>/`` with its
training checkpoints, ``params.json`` and ``result.json``, so a rerun skips finished configurations
and resumes unfinished ones (``experiments.ablation_runs``). Everything else goes through the
catalog; each configuration is also one MLflow run nested under the ``kedro run``'s.
"""

import functools
import logging
from collections.abc import Callable
from typing import Any

import mlflow
import pandas as pd
from matplotlib.figure import Figure

from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.provenance import check_ingested
from croco_pipeline.experiments.ablation_config import AblationConfig
from croco_pipeline.experiments.ablation_report import ablation_report
from croco_pipeline.experiments.ablation_runs import run_configuration
from croco_pipeline.experiments.runner import ExperimentConfig, TrainedModel, run_experiment
from croco_pipeline.nesting import flatten
from croco_pipeline.pipelines.utils import materialise

log = logging.getLogger(__name__)


def _log_nested_run(name: str, result: dict[str, Any]) -> None:
    """One MLflow run per configuration, nested under the ablation's (kedro-mlflow's) parent run."""
    with mlflow.start_run(run_name=name, nested=True):
        mlflow.set_tags({"ablation_config": name, "ablation_status": result["status"]})
        params = {k: str(v) for k, v in flatten(result["params"]).items()}
        params["params_hash"] = result["hash"]
        mlflow.log_params(params)
        metrics = {k: v for k, v in flatten(result["metrics"], "").items() if v == v}
        metrics = {k.replace(".", "/"): float(v) for k, v in metrics.items()}
        metrics["train_time_s"] = float(result["train_time_s"])
        metrics["best_val_top1"] = float(result["best_val_top1"])
        mlflow.log_metrics(metrics)


def run_ablation(
    ingested_rasters: dict[str, Callable[[], GeoRaster]],
    ingest_manifest: dict[str, Any],
    preprocess: dict[str, Any],
    train: dict[str, Any],
    evaluate: dict[str, Any],
    ablation: dict[str, Any],
) -> list[dict[str, Any]]:
    """Run every configuration of ``ablation.configurations`` (base <- profile <- its overrides)
    unless finished; the ingested rasters are loaded only when one has to train.

    Returns:
        One result per configuration, as ``experiments.ablation_runs.run_configuration`` returns it.
    """
    config = AblationConfig.from_params(ablation)
    base = {"preprocess": preprocess, "train": train, "evaluate": evaluate}
    rasters = functools.cache(lambda: materialise(ingested_rasters))

    def experiment(params: ExperimentConfig) -> tuple[TrainedModel, dict[str, Any]]:
        check_ingested(ingest_manifest, ingested_rasters, params.preprocess.channels)
        return run_experiment(rasters(), ingest_manifest, params)

    results = []
    for name in config.configurations:
        result = run_configuration(name, base, config, ingest_manifest, experiment)
        if result["status"] != "excluded":
            _log_nested_run(name, result)
        results.append(result)
    return results


def summarise_ablation(
    ablation: dict[str, Any], ablation_runs: list[dict[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame, str, dict[str, Figure]]:
    """All configurations' results -> a results CSV, the paper-shaped study tables (stacked and
    as Markdown) and one plot per study (``<study>.png``)."""
    report = ablation_report(AblationConfig.from_params(ablation), ablation_runs)
    log.info("ablation:\n%s", report["markdown"])
    return report["results"], report["tables"], report["markdown"], report["plots"]
