"""Nodes of the ``train`` pipeline: build the dual encoder and train it contrastively."""

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.experiments.runner import train_from_params
from croco_pipeline.model.config import TrainConfig
from croco_pipeline.pipelines.utils import materialise

log = logging.getLogger(__name__)


def _metric_history(history: pd.DataFrame) -> dict[str, list[dict[str, float]]]:
    """``{"train/<column>": [{"step": epoch, "value": v}, ...]}`` for MLflow's metric history."""
    return {
        f"train/{col}": [
            {"step": int(row["epoch"]), "value": float(row[col])} for _, row in history.iterrows()
        ]
        for col in history.columns
        if col != "epoch"
    }


def train_model(
    aligned_stacks: dict[str, Callable[[], TileStack]],
    train_patch_index: pd.DataFrame,
    eval_patch_index: pd.DataFrame,
    normalisation_stats: dict[str, Any],
    train_params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Train on the train split, validate each epoch on the val split with the paper's Top-1/Top-5.

    Returns:
        The best model as ``{"config", "state_dict", "epoch", "val_top1", ...}`` (weights_only-safe),
        the per-epoch metric history for MLflow, and the same history as a table.
    """
    config = TrainConfig.from_params(train_params)
    trained = train_from_params(
        materialise(aligned_stacks),
        train_patch_index,
        eval_patch_index,
        NormalisationStats.from_dict(normalisation_stats),
        config,
    )
    return trained.bundle, _metric_history(trained.history), trained.history
