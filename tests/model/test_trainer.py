"""The training loop: it learns, resumes exactly, stops early and writes safe atomic checkpoints."""

import contextlib
import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from affine import Affine
from rasterio.crs import CRS
from torch import nn

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.model.models import ModelConfig, build_model
from croco_pipeline.model.trainer import (
    TrainConfig,
    TrainingRun,
    TrainingState,
    cpu_state,
    progress_bar,
    save_checkpoint_atomic,
    train,
)

SIZE, PATCH = 32, 8
STATS = NormalisationStats("global_minmax", 0.0, 255.0, 50.0)


class TinyPair(nn.Module):
    """Two small conv branches with batch norm, standing in for ResNet18 to keep tests fast."""

    def __init__(self) -> None:
        super().__init__()
        self.rgb = self._branch(3)
        self.elev = self._branch(2)

    @staticmethod
    def _branch(c: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 16),
        )  # fmt: skip

    def forward(self, rgb: torch.Tensor, elev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(self.rgb(rgb), dim=1), F.normalize(self.elev(elev), dim=1)


def _data() -> tuple[list[TileStack], pd.DataFrame]:
    stacks = []
    for i in range(2):
        pattern = np.random.default_rng(i).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
        stacks.append(
            TileStack(
                f"t{i}",
                np.stack([pattern] * 3),
                np.stack([pattern, 255 - pattern]).astype(np.float32),
                np.ones((SIZE, SIZE), bool),
                CRS.from_epsg(26915),
                Affine(0.5, 0, 0, 0, -0.5, 0),
                ("dsm", "inv"),
            )  # fmt: skip
        )
    index = pd.DataFrame.from_records(
        [{"tile": s.name, "split": "train", "row": r, "col": c, "size_px": PATCH, "x": 0.0, "y": 0.0,
          "valid_fraction": 1.0}
         for s in stacks for r in range(0, SIZE - PATCH + 1, 4) for c in range(0, SIZE - PATCH + 1, 4)]
    )  # fmt: skip
    return stacks, index


def _config(tmp_path: Path | None = None, **kw) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 16, "steps_per_epoch": 3, "optimizer": "adam", "lr": 1e-2,
            "device": "cpu", "progress": False, "seed": 7,
            "checkpoint_dir": str(tmp_path) if tmp_path else None}  # fmt: skip
    return TrainConfig.from_params({**base, **kw})


def _fresh_model() -> TinyPair:
    torch.manual_seed(0)
    return TinyPair()


def test_tiny_run_learns() -> None:
    stacks, index = _data()
    config = _config(epochs=8, steps_per_epoch=None, loss="info_nce", temperature=0.2)
    result = train(_fresh_model(), stacks, index, STATS, config)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0]
    assert {"epoch", "loss", "lr", "pairs_per_s"} <= set(result.history[0])


class _Interrupted(Exception):
    pass


def _interrupt_after_first_epoch(epoch: int, metrics: dict[str, float]) -> None:
    if epoch == 0:
        raise _Interrupted


@pytest.mark.parametrize("how", ["crash_mid_run", "one_epoch_then_extend"])
def test_resume_gives_identical_weights(tmp_path: Path, how: str) -> None:
    stacks, index = _data()
    aug = {"rotate_flip": True, "colour_jitter": 0.2, "height_offset": 0.05}
    kw = {"augmentation": aug, "sampling": "random", "warmup_epochs": 1, "min_lr_ratio": 0.1}
    if how == "one_epoch_then_extend":
        # A constant lr keeps the schedule independent of ``epochs`` when a finished run is extended.
        kw = {**kw, "warmup_epochs": 0, "min_lr_ratio": 1.0}
    straight = train(_fresh_model(), stacks, index, STATS, _config(tmp_path / "a", **kw))
    if how == "crash_mid_run":
        with pytest.raises(_Interrupted):
            train(_fresh_model(), stacks, index, STATS, _config(tmp_path / "b", **kw),
                  on_epoch_end=_interrupt_after_first_epoch)  # fmt: skip
    else:
        train(_fresh_model(), stacks, index, STATS, _config(tmp_path / "b", epochs=1, **kw))
    torch.manual_seed(123)  # a different init and RNG state: everything must come from last.pt
    resumed = train(TinyPair(), stacks, index, STATS, _config(tmp_path / "b", resume=True, **kw))
    assert straight.last_state.keys() == resumed.last_state.keys()
    for key, value in straight.last_state.items():
        assert torch.equal(value, resumed.last_state[key]), key
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]


def test_early_stopping_on_validation_top1(tmp_path: Path) -> None:
    stacks, index = _data()
    seen: list[int] = []

    def validate(model: nn.Module, epoch: int) -> dict[str, float]:
        assert not model.training
        return {"top1": 0.5 - 0.1 * epoch, "top5": 0.9}

    result = train(_fresh_model(), stacks, index, STATS,
                   _config(tmp_path, epochs=10, early_stopping_patience=2),
                   validate=validate, on_epoch_end=lambda e, m: seen.append(e))  # fmt: skip
    assert result.stopped_early and len(result.history) == 3 and seen == [0, 1, 2]
    assert result.best_epoch == 0 and result.history[0]["top1"] == 0.5
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == 0
    for key, value in best["model"].items():
        assert torch.equal(value, result.best_state[key])


def test_checkpoint_is_atomic_and_weights_only_safe(tmp_path: Path) -> None:
    stacks, index = _data()
    train(_fresh_model(), stacks, index, STATS, _config(tmp_path, optimizer="lars"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    expected = {"model", "optimizer", "scheduler", "scaler", "epoch", "history", "best_metric",
                "best_state", "rng", "sampler", "config"}  # fmt: skip
    assert expected <= set(ckpt) and ckpt["epoch"] == 1 and len(ckpt["history"]) == 2
    with pytest.raises((pickle.PicklingError, AttributeError), match="pickle"):  # a lambda
        save_checkpoint_atomic({"bad": lambda: 0}, tmp_path / "last.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


def test_croco_model_bf16_channels_last() -> None:
    stacks, index = _data()
    model = build_model(ModelConfig(stem="fast", n_elevation_channels=2, embedding_dim=16))
    config = _config(epochs=1, steps_per_epoch=1, precision="bf16", channels_last=True)
    result = train(model, stacks, index, STATS, config)
    assert np.isfinite(result.history[0]["loss"])


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"epochs": 0}, "train.epochs"),
        ({"loss": "triplet"}, "train.loss"),
        ({"temperature": -1}, "train.temperature"),
        ({"precision": "int8"}, "train.precision"),
        ({"learning_rate": 0.1}, "train.learning_rate"),
        ({"augmentation": {"blur": 1}}, "train.augmentation.blur"),
        ({"steps_per_epoch": 1.5}, "train.steps_per_epoch"),
    ],
)
def test_bad_params_name_the_key(params: dict, key: str) -> None:
    with pytest.raises(CrocoConfigError, match=key):
        TrainConfig.from_params(params)


def test_fp16_on_cpu_is_refused() -> None:
    stacks, index = _data()
    with pytest.raises(CrocoConfigError, match="train.precision"):
        train(_fresh_model(), stacks, index, STATS, _config(precision="fp16"))


def test_model_key_is_left_to_model_config() -> None:
    assert TrainConfig.from_params({"model": {"stem": "fast"}, "epochs": 3}).epochs == 3


# --- the pieces of the loop, one at a time ---------------------------------------------------


def test_training_state_tracks_best_by_top1_else_loss_and_counts_stale_epochs() -> None:
    model = _fresh_model()
    state = TrainingState(best_state=cpu_state(model))
    assert state.end_epoch(0, {"loss": 2.0}, model)  # no validation: -loss is the metric
    assert not state.end_epoch(1, {"loss": 2.5}, model)
    assert (state.best_epoch, state.stale_epochs, state.next_epoch) == (0, 1, 2)
    assert not state.should_stop(2) and state.should_stop(1) and not state.should_stop(None)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert state.end_epoch(2, {"loss": 1.0}, model)
    assert (state.best_epoch, state.stale_epochs, state.best_metric) == (2, 0, -1.0)
    saved = dict(state.best_state)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # later changes must not leak into the kept copy
    assert all(torch.equal(saved[k], v) for k, v in state.best_state.items())
    assert not torch.equal(saved["rgb.0.weight"], cpu_state(model)["rgb.0.weight"])
    # with validation, top1 decides even when the loss got worse
    validated = TrainingState(best_state=cpu_state(model))
    validated.end_epoch(0, {"loss": 1.0, "top1": 0.2}, model)
    assert validated.end_epoch(1, {"loss": 3.0, "top1": 0.3}, model)
    assert [h["loss"] for h in validated.history] == [1.0, 3.0]


def test_training_state_checkpoint_round_trip() -> None:
    model = _fresh_model()
    state = TrainingState(best_state=cpu_state(model))
    for epoch, loss in enumerate([2.0, 1.5, 1.7]):
        state.end_epoch(epoch, {"loss": loss}, model)
    entries = state.to_checkpoint()
    assert entries["epoch"] == 2  # the last finished epoch
    back = TrainingState.from_checkpoint(entries)
    assert back == state and back.next_epoch == 3


def test_training_run_epoch_checkpoint_and_restore(tmp_path: Path) -> None:
    stacks, index = _data()
    config = _config(tmp_path, epochs=3, sampling="random")
    run = TrainingRun.build(_fresh_model(), stacks, index, STATS, config)
    run.wrap()
    before = cpu_state(run.model)
    record = run.run_epoch(0)
    assert set(record) == {"epoch", "loss", "lr", "pairs_per_s"} and record["epoch"] == 0.0
    assert np.isfinite(record["loss"]) and record["lr"] == run.optimizer.param_groups[0]["lr"]
    assert any(not torch.equal(before[k], v) for k, v in cpu_state(run.model).items())
    state = TrainingState(best_state=before)
    state.end_epoch(0, record, run.model)
    # through the file, as train() does: the optimiser's state_dict holds live tensors
    save_checkpoint_atomic(run.checkpoint_payload(state), tmp_path / "last.pt")
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    assert payload["config"]["sampling"] == "random" and payload["epoch"] == 0
    expected_next = run.run_epoch(1)  # what the original run does next

    torch.manual_seed(99)  # another init: everything must come from the payload
    other = TrainingRun.build(TinyPair(), stacks, index, STATS, config)
    restored = other.restore(payload)
    other.wrap()
    assert restored.next_epoch == 1 and restored.history == state.history
    assert all(torch.equal(payload["model"][k], v) for k, v in cpu_state(other.model).items())
    assert other.run_epoch(1)["loss"] == expected_next["loss"]


def test_progress_bar_only_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """Redirected stderr (CI, ``kedro run > log``) gets no carriage-return refreshes; a terminal does."""
    stacks, index = _data()
    train(_fresh_model(), stacks, index, STATS, _config(epochs=1, progress=True))
    assert "\r" not in capsys.readouterr().err

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    bar = progress_bar(range(3), 3, "epoch 1/1", enabled=True)
    bar.close()  # the bar above went to the captured (non-tty) stderr: disabled
    assert bar.disable
    with contextlib.redirect_stderr(terminal):
        list(progress_bar(range(3), 3, "epoch 1/1", enabled=True))
        list(progress_bar(range(3), 3, "epoch 1/1", enabled=False))
    assert terminal.getvalue().count("epoch 1/1") >= 1 and "\r" in terminal.getvalue()


def test_per_epoch_log_line_stays(caplog: pytest.LogCaptureFixture) -> None:
    stacks, index = _data()
    with caplog.at_level("INFO", logger="croco_pipeline.model.trainer"):
        train(_fresh_model(), stacks, index, STATS, _config(epochs=2))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2: loss ")
