"""The ``train`` parameters as one checked object: the training recipe, its model and augmentation."""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator

from croco_pipeline.model.hard_negatives import HardNegatives
from croco_pipeline.model.losses import LOSSES
from croco_pipeline.model.models import ModelConfig
from croco_pipeline.model.optim import LR_SCALINGS, OPTIMIZERS
from croco_pipeline.model.sampling import SAMPLING_MODES, Augmentation
from croco_pipeline.params import StrictParams

Loss = Literal["nt_xent", "info_nce"]
Optimizer = Literal["lars", "adam", "adamw"]
LrScaling = Literal["linear", "sqrt", "none"]
Sampling = Literal["grid", "random", "hard_geo"]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "bf16", "fp16"]
# the choices are spelled out for the type checker: keep them equal to the modules' registries
assert set(get_args(Loss)) == set(LOSSES) and get_args(Optimizer) == OPTIMIZERS
assert get_args(LrScaling) == LR_SCALINGS and get_args(Sampling) == SAMPLING_MODES


class TrainConfig(StrictParams):
    """Training parameters (``train.*``); defaults follow the original code.

    ``model`` is the architecture (``ModelConfig``; the node sets its channel count from the data).
    ``checkpoint_dir``, ``resume``, ``progress`` and ``num_workers`` say where and how verbosely a
    run works, not what it computes.
    """

    section: ClassVar[str] = "train"

    model: ModelConfig = ModelConfig()
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=128, ge=1)
    steps_per_epoch: int | None = Field(default=None, ge=1)
    loss: Loss = "nt_xent"
    temperature: float = Field(default=0.1, gt=0)
    optimizer: Optimizer = "adam"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-6, ge=0)
    warmup_epochs: float = Field(default=0, ge=0)  # fractions allowed: 0.5 = half an epoch
    min_lr_ratio: float = Field(default=0.0, ge=0)
    base_batch_size: int = Field(default=256, ge=1)
    scale_lr: LrScaling = "none"
    device: Device = "auto"
    precision: Precision = "fp32"
    channels_last: bool = False
    num_workers: int = Field(default=0, ge=0)
    seed: int = Field(default=0, ge=0)
    early_stopping_patience: int | None = Field(default=None, ge=1)
    sampling: Sampling = "grid"
    min_valid_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    augmentation: Augmentation = Augmentation()
    hard_negatives: HardNegatives = HardNegatives()  # used by sampling: hard_geo
    queue_size: int = Field(default=0, ge=0)  # extra negatives from earlier batches; 0: off
    # > 0: validate and keep an exponential moving average of the weights (model.ema); 0: off
    ema_decay: float = Field(default=0.0, ge=0.0, lt=1.0)
    init_from: str | None = None  # start from these weights (croco_model.pt or a checkpoint)
    # learning-rate factor for the weights init_from loaded (1: as fast as the rest)
    init_lr_scale: float = Field(default=1.0, gt=0, le=1)
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup_within_training(cls, value: float, info: ValidationInfo) -> float:
        epochs = info.data.get("epochs")
        if epochs is not None and value > epochs:
            raise ValueError(f"at most epochs={epochs}")
        return value
