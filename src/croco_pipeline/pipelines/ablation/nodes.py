"""Nodes of the ``ablation`` pipeline: one configuration end to end, then the study tables.

Side channel (documented): each configuration keeps ``<ablation.work_dir>/<name>/`` with its
training checkpoints, ``params.json`` and ``result.json``, so a rerun skips finished configurations
and resumes unfinished ones. Everything else goes through the catalog.
"""

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import mlflow
import pandas as pd

from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.experiments.ablation import (
    effective_params,
    excluded,
    markdown_table,
    params_hash,
    results_table,
    study_figure,
    study_table,
    summarise_metrics,
)
from croco_pipeline.nesting import flatten
from croco_pipeline.pipelines.evaluate.nodes import evaluate_model
from croco_pipeline.pipelines.preprocess.nodes import (
    align_tiles,
    normalisation_stats,
    patch_indexes,
    split_tiles,
)
from croco_pipeline.pipelines.train.nodes import train_model

log = logging.getLogger(__name__)


def _write_json_atomic(payload: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _finished_twin(work_root: Path, digest: str) -> dict[str, Any] | None:
    """A finished result of ANY configuration with these exact effective parameters."""
    for path in sorted(work_root.glob("*/result.json")):
        found = _read_json(path)
        if found is not None and found.get("hash") == digest:
            return found
    return None


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


def _run_from_scratch_or_resume(
    ingested_rasters: dict[str, Callable[[], GeoRaster]],
    ingest_manifest: dict[str, Any],
    params: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], float, float]:
    """preprocess -> train (resuming from ``checkpoint_dir``) -> evaluate, through the project's nodes."""
    pre = params["preprocess"]
    split, _ = split_tiles(
        align_tiles(ingested_rasters, ingest_manifest, pre), ingest_manifest, pre
    )
    stacks = cast(Any, split)  # the nodes take loaded stacks as well as partition loaders
    stats = normalisation_stats(stacks, pre)
    train_index, eval_index = patch_indexes(stacks, pre)
    t0 = time.perf_counter()
    bundle, _, _ = train_model(stacks, train_index, eval_index, stats, params["train"])
    train_time = time.perf_counter() - t0
    metrics, _, _, _ = evaluate_model(bundle, stacks, eval_index, stats, params["evaluate"])
    return metrics, train_time, float(bundle["val_top1"])


def run_configuration(
    name: str,
    ingested_rasters: dict[str, Callable[[], GeoRaster]],
    ingest_manifest: dict[str, Any],
    preprocess: dict[str, Any],
    train: dict[str, Any],
    evaluate: dict[str, Any],
    ablation: dict[str, Any],
) -> dict[str, Any]:
    """Run configuration ``name`` (base <- ``ablation.profile`` <- its overrides) unless finished.

    Returns:
        ``{"name", "hash", "status", "params", "metrics", "train_time_s", "best_val_top1"}``;
        ``metrics`` as ``croco_pipeline.experiments.ablation.summarise_metrics`` shapes them.
    """
    base = {"preprocess": preprocess, "train": train, "evaluate": evaluate}
    params = effective_params(base, ablation, name)
    # the scene is part of what a result depends on: Autzen and the synthetic default never share one
    digest = params_hash(dict(params, source=ingest_manifest))
    work_root = Path(str(ablation["work_dir"]))
    work = work_root / name
    params["train"].update(checkpoint_dir=str(work / "checkpoints"), resume=True)
    stored = _read_json(work / "result.json")
    if name in excluded(ablation):
        log.info("ablation %s: left out by profile %s", name, ablation["profile"])
        return {"name": name, "hash": digest, "status": "excluded", "params": params, "metrics": {}}
    if stored is not None and stored.get("hash") == digest:
        log.info("ablation %s: skipped: finished with identical parameters (%s)", name, digest)
        result = dict(stored, status="skipped")
    elif (twin := _finished_twin(work_root, digest)) is not None:
        log.info(
            "ablation %s: skipped: identical parameters to %s (%s)", name, twin["name"], digest
        )
        result = dict(twin, name=name, status="reused", reused_from=twin["name"])
        work.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(result, work / "result.json")
    else:
        started = _read_json(work / "params.json")
        if started is None or started.get("hash") != digest:
            shutil.rmtree(work, ignore_errors=True)  # other parameters: start afresh
            work.mkdir(parents=True)
            _write_json_atomic(
                {"name": name, "hash": digest, "params": params}, work / "params.json"
            )
            log.info("ablation %s: starting (%s)", name, digest)
        else:
            log.info("ablation %s: resuming an unfinished run (%s)", name, digest)
        metrics, train_time, best_val = _run_from_scratch_or_resume(
            ingested_rasters, ingest_manifest, params
        )
        result = {
            "name": name,
            "hash": digest,
            "status": "trained",
            "params": params,
            "metrics": summarise_metrics(metrics),
            "train_time_s": train_time,
            "best_val_top1": best_val,
        }
        _write_json_atomic(result, work / "result.json")
    _log_nested_run(name, result)
    return result


def summarise_ablation(ablation: dict[str, Any], *results: dict[str, Any]) -> dict[str, Any]:
    """All configurations' results -> a results CSV, one paper-shaped table and plot per study.

    Returns:
        ``{"results": DataFrame, "tables": DataFrame (every study, stacked), "markdown": str,
        "plot_<study>": Figure}``.
    """
    by_name = {r["name"]: r for r in results}
    tables, sections, plots = [], [f"# Ablation (profile `{ablation['profile']}`)\n"], {}
    for study, spec in sorted(ablation["studies"].items()):
        table = study_table(spec, by_name)
        sections.append(markdown_table(spec["title"], table))
        plots[f"plot_{study}"] = study_figure(spec["title"], table)
        tables.append(
            table.rename(columns={spec["axis"]: "setting"}).assign(study=study, axis=spec["axis"])
        )
    left_out = [r["name"] for r in results if r.get("status") == "excluded"]
    if left_out:
        sections.append(
            f"Left out by profile `{ablation['profile']}` (empty cells): {', '.join(left_out)}\n"
        )
    combined = pd.concat(tables, ignore_index=True)
    combined["setting"] = combined["setting"].astype(str)
    markdown = "\n".join(sections)
    log.info("ablation:\n%s", markdown)
    out: dict[str, Any] = {
        "results": results_table(results),
        "tables": combined,
        "markdown": markdown,
    }
    out.update(plots)
    return out
