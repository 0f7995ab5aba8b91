"""Running one ablation configuration resumably: skip it when finished, reuse an identical twin's
result, resume an unfinished run from its checkpoints, or start afresh.

Each configuration keeps ``<work_dir>/<name>/`` with its training checkpoints, ``params.json`` and
``result.json`` (written atomically): a documented side channel that makes reruns cheap.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from croco_pipeline.data.atomic import atomic_write_json
from croco_pipeline.experiments.ablation_config import AblationConfig, effective_params, params_hash
from croco_pipeline.experiments.ablation_report import summarise_metrics
from croco_pipeline.experiments.runner import ExperimentConfig, TrainedModel

log = logging.getLogger(__name__)

#: runs one experiment from its effective parameters: ``run_experiment`` with the scene bound
Experiment = Callable[[ExperimentConfig], tuple[TrainedModel, dict[str, Any]]]


def _write_json(payload: dict[str, Any], path: Path) -> None:
    atomic_write_json(path, payload, indent=2, sort_keys=True, default=str)


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


def _train_and_evaluate(
    name: str, digest: str, params: dict[str, Any], work: Path, experiment: Experiment
) -> dict[str, Any]:
    """Start afresh (other parameters) or resume (same ones) in ``work``, then store the result."""
    started = _read_json(work / "params.json")
    if started is None or started.get("hash") != digest:
        shutil.rmtree(work, ignore_errors=True)  # other parameters: start afresh
        work.mkdir(parents=True)
        _write_json({"name": name, "hash": digest, "params": params}, work / "params.json")
        log.info("ablation %s: starting (%s)", name, digest)
    else:
        log.info("ablation %s: resuming an unfinished run (%s)", name, digest)
    trained, metrics = experiment(ExperimentConfig.from_params(params))
    result = {
        "name": name,
        "hash": digest,
        "status": "trained",
        "params": params,
        "metrics": summarise_metrics(metrics),
        "train_time_s": trained.train_time_s,
        "best_val_top1": float(trained.bundle["val_top1"]),
    }
    _write_json(result, work / "result.json")
    return result


def run_configuration(
    name: str,
    base: Mapping[str, Mapping[str, Any]],
    ablation: AblationConfig,
    scene: Mapping[str, Any],
    experiment: Experiment,
) -> dict[str, Any]:
    """Configuration ``name`` (base <- ``ablation.profile`` <- its overrides), unless finished.

    ``scene`` (the ingest manifest) enters the hash: results on different scenes never mix.

    Returns:
        ``{"name", "hash", "status", "params", "metrics", "train_time_s", "best_val_top1"}``;
        status is trained, skipped, reused or excluded; ``metrics`` as ``summarise_metrics``.
    """
    params: dict[str, Any] = effective_params(base, ablation, name)
    digest = params_hash(dict(params, source=scene))
    work_root = Path(ablation.work_dir)
    work = work_root / name
    params["train"].update(checkpoint_dir=str(work / "checkpoints"), resume=True)
    if name in ablation.excluded():
        log.info("ablation %s: left out by profile %s", name, ablation.profile)
        return {"name": name, "hash": digest, "status": "excluded", "params": params, "metrics": {}}
    stored = _read_json(work / "result.json")
    if stored is not None and stored.get("hash") == digest:
        log.info("ablation %s: skipped: finished with identical parameters (%s)", name, digest)
        return dict(stored, status="skipped")
    twin = _finished_twin(work_root, digest)
    if twin is not None:
        log.info(
            "ablation %s: skipped: identical parameters to %s (%s)", name, twin["name"], digest
        )
        result = dict(twin, name=name, status="reused", reused_from=twin["name"])
        work.mkdir(parents=True, exist_ok=True)
        _write_json(result, work / "result.json")
        return result
    return _train_and_evaluate(name, digest, params, work, experiment)
