"""Nodes of the ``train`` pipeline: build the dual encoder and train it contrastively."""

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.evaluation.protocols import paper_protocol
from croco_pipeline.model.models import ModelConfig, build_model
from croco_pipeline.model.runtime import resolve_device
from croco_pipeline.model.trainer import TrainConfig, train
from croco_pipeline.pipelines.utils import materialise

log = logging.getLogger(__name__)


def train_model(
    aligned_stacks: dict[str, Callable[[], TileStack]],
    train_patch_index: pd.DataFrame,
    eval_patch_index: pd.DataFrame,
    normalisation_stats: dict[str, Any],
    train_params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Train on the train split, validate each epoch on the val split with the paper's Top-1/Top-5.

    Returns:
        The best model as ``{"config", "state_dict", "epoch", "val_top1"}`` (weights_only-safe), the
        per-epoch metric history for MLflow, and the same history as a table.
    """
    stacks = materialise(aligned_stacks)
    train_stacks = [s for s in stacks.values() if s.split == "train"]
    val_stacks = [s for s in stacks.values() if s.split == "val"]
    stats = NormalisationStats.from_dict(normalisation_stats)
    params = dict(train_params)
    model_params = dict(params.pop("model", {}))
    model_params["n_elevation_channels"] = len(train_stacks[0].channels)
    model_config = ModelConfig.from_params(model_params)
    config = TrainConfig.from_params(params)
    device = resolve_device(config.device)
    val_index = eval_patch_index[eval_patch_index["split"] == "val"]

    def validate(model: torch.nn.Module, epoch: int) -> dict[str, float]:
        result = paper_protocol(model, val_stacks, val_index, stats, device)
        e2r = result["elevation_to_rgb"]
        return {"top1": e2r["top1"], "top5": e2r["top5"]}

    torch.manual_seed(config.seed)
    model = build_model(model_config)
    index = train_patch_index[train_patch_index["split"] == "train"]
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
        "channels": list(train_stacks[0].channels),
        "normalisation": stats.to_dict(),
    }
    metric_history = {
        f"train/{col}": [
            {"step": int(row["epoch"]), "value": float(row[col])} for _, row in history.iterrows()
        ]
        for col in history.columns
        if col != "epoch"
    }
    return bundle, metric_history, history
