"""Model selection and early stopping watch the validation figure only: the weights returned are
those of the best validation epoch (not the last one, nor the best training loss)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from croco_pipeline.data.stack import NormalisationStats
from croco_pipeline.model.trainer import TrainConfig, train
from fixtures_train import fresh_tiny_pair, tiny_scene

STATS = NormalisationStats("global_minmax", 0.0, 255.0, 50.0)


def _config(tmp: Path, **kw) -> TrainConfig:
    params = {"epochs": 5, "batch_size": 8, "steps_per_epoch": 2, "optimizer": "adam", "lr": 1e-2,
              "device": "cpu", "progress": False, "seed": 1, "loss": "info_nce",
              "sampling": "random", "checkpoint_dir": str(tmp), **kw}  # fmt: skip
    return TrainConfig.from_params(params)


def test_the_best_validation_epoch_is_kept_not_the_last(tmp_path: Path) -> None:
    stacks, index = tiny_scene()
    scores = [0.2, 0.6, 0.4, 0.5, 0.3]  # the best is epoch 1; training loss keeps falling
    weights: list[dict[str, torch.Tensor]] = []

    def validate(model: nn.Module, epoch: int) -> dict[str, float]:
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"top1": scores[epoch], "top5": 1.0}

    result = train(fresh_tiny_pair(), stacks, index, STATS, _config(tmp_path), validate=validate)
    assert result.best_epoch == 1 and not result.stopped_early
    for key, value in result.best_state.items():
        assert torch.equal(value, weights[1][key]), key
    assert any(not torch.equal(v, result.last_state[k]) for k, v in result.best_state.items())
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == 1 and best["best_metric"] == 0.6


def test_early_stopping_counts_epochs_without_a_better_validation_score(tmp_path: Path) -> None:
    stacks, index = tiny_scene()
    scores = [0.2, 0.6, 0.4, 0.5, 0.9]

    def validate(model: nn.Module, epoch: int) -> dict[str, float]:
        return {"top1": scores[epoch], "top5": 1.0}

    result = train(fresh_tiny_pair(), stacks, index, STATS,
                   _config(tmp_path, early_stopping_patience=2), validate=validate)  # fmt: skip
    # epochs 2 and 3 do not beat 0.6: stop after epoch 3, before the late 0.9
    assert result.stopped_early and len(result.history) == 4 and result.best_epoch == 1
