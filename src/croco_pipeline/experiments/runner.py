"""One experiment, end to end: checked parameters and rasters in, trained model and metrics out.

The train and evaluate pipeline nodes, the ablation pipeline and ``benchmarks/recipe.py`` all run
training through ``train_from_params`` and evaluation through ``evaluate_from_params``;
``run_experiment`` chains preprocessing, both and returns what an ablation row needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import pandas as pd
import torch

from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.params import PreprocessConfig
from croco_pipeline.data.prepare import prepare_scene
from croco_pipeline.data.stack import NormalisationStats, TileStack, crop_stack
from croco_pipeline.evaluation.baseline import BaselineModel
from croco_pipeline.evaluation.generalisation import generalisation_metrics
from croco_pipeline.evaluation.params import EvaluateConfig
from croco_pipeline.evaluation.protocols import evaluate_all, paper_protocol
from croco_pipeline.model.config import TrainConfig
from croco_pipeline.model.models import build_model
from croco_pipeline.model.runtime import load_model, resolve_device
from croco_pipeline.model.trainer import train
from croco_pipeline.params import StrictParams

log = logging.getLogger(__name__)


class ExperimentConfig(StrictParams):
    """The three parameter groups one experiment reads, checked together."""

    section: ClassVar[str] = ""

    preprocess: PreprocessConfig
    train: TrainConfig
    evaluate: EvaluateConfig


@dataclass(frozen=True)
class TrainedModel:
    """A trained model as the ``croco_model`` dataset stores it, with its training history.

    ``bundle``: ``{"config", "state_dict", "epoch", "val_top1", "channels", "normalisation"}``
    (weights_only-safe). ``history``: one row per epoch, counted from 1, validation figures as
    ``val_top1``/``val_top5``.
    """

    bundle: dict[str, Any]
    history: pd.DataFrame
    train_time_s: float


def _split(stacks: Mapping[str, TileStack], name: str) -> list[TileStack]:
    return [s for s in stacks.values() if s.split == name]


def train_from_params(
    stacks: Mapping[str, TileStack],
    train_index: pd.DataFrame,
    eval_index: pd.DataFrame,
    stats: NormalisationStats,
    config: TrainConfig,
) -> TrainedModel:
    """Train on the train split; validate each epoch on the val split with the paper's Top-1/Top-5.

    The model's elevation channel count comes from the stacks; the best epoch's weights are kept.
    """
    t0 = time.perf_counter()
    train_stacks, val_stacks = _split(stacks, "train"), _split(stacks, "val")
    channels = list(train_stacks[0].channels)
    model_config = config.model.model_copy(update={"n_elevation_channels": len(channels)})
    device = resolve_device(config.device)
    val_index = eval_index[eval_index["split"] == "val"]

    def validate(model: torch.nn.Module, epoch: int) -> dict[str, float]:
        result = paper_protocol(model, val_stacks, val_index, stats, device)
        e2r = result["elevation_to_rgb"]
        return {"top1": e2r["top1"], "top5": e2r["top5"]}

    torch.manual_seed(config.seed)
    model = build_model(model_config)
    index = train_index[train_index["split"] == "train"]
    result = train(model, train_stacks, index, stats, config, validate=validate)
    # epochs counted from 1 for people; validation figures named as such
    history = pd.DataFrame(result.history).rename(columns={"top1": "val_top1", "top5": "val_top5"})
    history["epoch"] = history["epoch"].astype(int) + 1
    best = history[history["epoch"] == result.best_epoch + 1].iloc[0]
    bundle = {
        "config": model_config.model_dump(),
        "state_dict": result.best_state,
        "epoch": int(best["epoch"]),
        "val_top1": float(best.get("val_top1", float("nan"))),
        "channels": channels,
        "normalisation": stats.to_dict(),
    }
    return TrainedModel(bundle, history, time.perf_counter() - t0)


def evaluate_from_params(
    bundle: dict[str, Any],
    stacks: Mapping[str, TileStack],
    eval_index: pd.DataFrame,
    stats: NormalisationStats,
    config: EvaluateConfig,
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Paper and localisation protocols on the test split, the learned model beside the baseline.

    Returns:
        The metrics (``evaluate_all``'s shape) and the paper-protocol records of every query,
        ``{"model"|"baseline": DataFrame}``.
    """
    test = _split(stacks, "test")
    index = eval_index[eval_index["split"] == "test"]
    device = resolve_device(config.device, "evaluate.device")
    baseline = BaselineModel(**config.baseline.model_dump())
    area = config.localisation_area_m
    # localisation galleries over a centred window of each test tile (None: whole tiles)
    loc_stacks = None if area is None else [crop_stack(s, area) for s in test]
    log.info("evaluate: %d test tiles, %d grid patches", len(test), len(index))
    model = load_model(bundle).to(device)
    with torch.inference_mode():
        result = evaluate_all(
            model,
            baseline,
            test,
            index,
            stats,
            config,
            device=device,
            return_records=True,
            localisation_stacks=loc_stacks,
        )
        metrics, records = cast(tuple[dict[str, Any], dict[str, pd.DataFrame]], result)
        # generalisation: every split's paper protocol, the train-test gap, the baseline at its
        # own best validation setting (new keys only; the test-split keys above are unchanged)
        extra, _ = generalisation_metrics(
            model, baseline, list(stacks.values()), eval_index, stats, config.baseline_sweep,
            config.baseline.elevation_channel, device, config.batch_size,
        )  # fmt: skip
    return {**metrics, **extra}, records


def run_experiment(
    rasters: Mapping[str, GeoRaster], manifest: Mapping[str, Any], config: ExperimentConfig
) -> tuple[TrainedModel, dict[str, Any]]:
    """Preprocess the ingested rasters, train, evaluate on the test split.

    Training resumes from ``config.train.checkpoint_dir`` when ``config.train.resume`` is set.
    """
    scene = prepare_scene(rasters, manifest, config.preprocess)
    trained = train_from_params(
        scene.stacks, scene.train_index, scene.eval_index, scene.stats, config.train
    )
    metrics, _ = evaluate_from_params(
        trained.bundle, scene.stacks, scene.eval_index, scene.stats, config.evaluate
    )
    return trained, metrics
