"""The contrastive training loop: sampling, mixed precision, DDP, early stopping, atomic checkpoints.

Kedro-free: callers pass tile stacks, the patch index and callbacks for validation and logging.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.errors import bad_param
from croco_pipeline.model import distributed as ddp
from croco_pipeline.model.losses import LOSSES
from croco_pipeline.model.optim import LR_SCALINGS, OPTIMIZERS, build_optimizer, warmup_cosine
from croco_pipeline.model.sampling import SAMPLING_MODES, Augmentation, PairSampler

log = logging.getLogger(__name__)

_CHOICES = {
    "loss": tuple(LOSSES),
    "optimizer": OPTIMIZERS,
    "scale_lr": LR_SCALINGS,
    "device": ("auto", "cpu", "cuda"),
    "precision": ("fp32", "bf16", "fp16"),
    "sampling": SAMPLING_MODES,
}
_POSITIVE_INTS = ("epochs", "batch_size", "base_batch_size")
_OPTIONAL_POSITIVE_INTS = ("steps_per_epoch", "early_stopping_patience")
_NON_NEGATIVE_NUMBERS = ("weight_decay", "warmup_epochs", "num_workers", "seed", "min_lr_ratio")


@dataclass(frozen=True)
class TrainConfig:
    """Training parameters (``train.*``); see ``from_params``. Defaults follow the original code."""

    epochs: int = 10
    batch_size: int = 128
    steps_per_epoch: int | None = None
    loss: str = "nt_xent"
    temperature: float = 0.1
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_epochs: int = 0
    min_lr_ratio: float = 0.0
    base_batch_size: int = 256
    scale_lr: str = "none"
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    num_workers: int = 0
    seed: int = 0
    early_stopping_patience: int | None = None
    sampling: str = "grid"
    min_valid_fraction: float = 0.5
    augmentation: Augmentation = field(default_factory=Augmentation)
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for key, choices in _CHOICES.items():
            if getattr(self, key) not in choices:
                raise bad_param(f"train.{key}", getattr(self, key), f"one of {choices}")
        for key in _POSITIVE_INTS + _OPTIONAL_POSITIVE_INTS:
            v = getattr(self, key)
            if not (v is None and key in _OPTIONAL_POSITIVE_INTS) and (
                isinstance(v, bool) or not isinstance(v, int) or v < 1
            ):
                raise bad_param(
                    f"train.{key}", v, "a positive integer" + (" or null" * (v is None))
                )
        for key in _NON_NEGATIVE_NUMBERS:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise bad_param(f"train.{key}", v, "a non-negative number")
        for key in ("temperature", "lr"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise bad_param(f"train.{key}", v, "a positive number")
        for key in ("channels_last", "resume", "progress"):
            if not isinstance(getattr(self, key), bool):
                raise bad_param(f"train.{key}", getattr(self, key), "true or false")
        if not 0.0 <= self.min_valid_fraction <= 1.0:
            raise bad_param(
                "train.min_valid_fraction", self.min_valid_fraction, "a number in [0, 1]"
            )
        if self.warmup_epochs > self.epochs:
            raise bad_param(
                "train.warmup_epochs", self.warmup_epochs, f"at most epochs={self.epochs}"
            )

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainConfig:
        """Build from the ``train`` parameters; a nested ``model`` entry is left to ``ModelConfig``."""
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            if key == "model":
                continue
            if key not in known:
                raise bad_param(f"train.{key}", value, f"a known key, one of {sorted(known)}")
            kwargs[key] = value
        if isinstance(kwargs.get("augmentation"), dict):
            kwargs["augmentation"] = Augmentation.from_params(kwargs["augmentation"])
        return cls(**kwargs)


@dataclass
class TrainResult:
    """Best (by validation top1, else training loss) and last weights, and per-epoch history."""

    best_state: dict[str, Tensor]
    last_state: dict[str, Tensor]
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise bad_param("train.device", name, "cpu or auto: CUDA is not available here")
    return torch.device(name)


def _rng_state() -> dict[str, Any]:
    # numpy's state holds an ndarray, which weights_only loading rejects: store a tensor instead.
    np_state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    # Other code (user callbacks, libraries) may draw from the legacy global state: seed it too.
    np.random.seed(seed)  # noqa: NPY002
    torch.manual_seed(seed)


def save_checkpoint_atomic(payload: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temp file in the target folder, then ``os.replace``: never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train(
    model: nn.Module,
    train_stacks: list[TileStack],
    patch_index: pd.DataFrame,
    stats: NormalisationStats,
    config: TrainConfig,
    validate: Callable[[nn.Module, int], dict[str, float]] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``model`` (a ``CrocoModel`` or any module mapping (rgb, elevation) to two (N, D) tensors).

    Under torch.distributed each rank must call this with the same arguments; only rank 0 validates,
    checkpoints and calls ``on_epoch_end``. ``validate(model, epoch)`` gets the unwrapped model in eval
    mode and returns metrics such as ``{"top1": .., "top5": ..}``; early stopping watches ``top1``.
    """
    device = resolve_device(config.device)
    if config.precision == "fp16" and device.type != "cuda":
        raise bad_param("train.precision", "fp16", "fp32 or bf16 on CPU (fp16 needs CUDA)")
    rank, world = ddp.rank(), ddp.world_size()
    _seed_everything(config.seed)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device)
    model.to(memory_format=memory_format)
    sampler = PairSampler(
        train_stacks,
        patch_index[patch_index["split"] == "train"],
        stats,
        config.batch_size,
        mode=config.sampling,
        seed=config.seed,
        augmentation=config.augmentation,
        steps_per_epoch=config.steps_per_epoch,
        min_valid_fraction=config.min_valid_fraction,
        rank=rank,
        world_size=world,
    )
    steps = sampler.n_batches
    optimizer = build_optimizer(
        model,
        config.optimizer,
        config.lr,
        config.weight_decay,
        config.batch_size,
        config.base_batch_size,
        config.scale_lr,
    )
    scheduler = warmup_cosine(
        optimizer, int(config.warmup_epochs * steps), config.epochs * steps, config.min_lr_ratio
    )
    scaler = torch.amp.GradScaler("cuda", enabled=config.precision == "fp16")
    loss_fn = LOSSES[config.loss]

    start_epoch, history = 0, []
    best_metric, best_epoch, stale = float("-inf"), -1, 0
    best_state = _cpu_state(model)
    ckpt_dir = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    if config.resume and ckpt_dir is not None and (ckpt_dir / "last.pt").exists():
        ckpt = torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, history = int(ckpt["epoch"]) + 1, list(ckpt["history"])
        best_metric, best_epoch = float(ckpt["best_metric"]), int(ckpt["best_epoch"])
        stale, best_state = int(ckpt["stale_epochs"]), ckpt["best_state"]
        sampler.load_state_dict(ckpt["sampler"])
        _set_rng_state(ckpt["rng"])

    net: nn.Module = model
    if world > 1:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    on_cuda = device.type == "cuda"
    stopped_early = False
    for epoch in range(start_epoch, config.epochs):
        sampler.set_epoch(epoch)
        loader = DataLoader(
            sampler, batch_size=None, num_workers=config.num_workers, pin_memory=on_cuda
        )
        net.train()
        total, t0 = torch.zeros((), device=device), time.perf_counter()
        bar = tqdm(
            loader, total=steps, file=sys.stderr, disable=not config.progress or rank != 0,
            desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
        )  # fmt: skip
        for step, (rgb, elev) in enumerate(bar):
            rgb = rgb.to(device, non_blocking=True, memory_format=memory_format)
            elev = elev.to(device, non_blocking=True, memory_format=memory_format)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                enabled=autocast_dtype is not None):  # fmt: skip
                z_rgb, z_elev = net(rgb, elev)
            loss = loss_fn(
                ddp.gather_with_grad(z_rgb), ddp.gather_with_grad(z_elev), config.temperature
            )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += loss.detach()
            if config.progress and rank == 0 and (step % 10 == 0 or step == steps - 1):
                rate = (step + 1) * config.batch_size / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{total.item() / (step + 1):.4f}", pairs_s=f"{rate:.0f}")
        elapsed = time.perf_counter() - t0
        record: dict[str, float] = {
            "epoch": float(epoch),
            "loss": total.item() / steps,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "pairs_per_s": steps * config.batch_size / elapsed,
        }
        stop = torch.zeros((), dtype=torch.int64, device=device)
        if rank == 0:
            if validate is not None:
                model.eval()
                with torch.no_grad():
                    record.update({k: float(v) for k, v in validate(model, epoch).items()})
            metric = record.get("top1", -record["loss"])
            if metric > best_metric:
                best_metric, best_epoch, stale = metric, epoch, 0
                best_state = _cpu_state(model)
            else:
                stale += 1
            history.append(record)
            scores = ", ".join(
                f"val {k} {v:.3f}" for k, v in record.items() if k in ("top1", "top5")
            )
            log.info(
                "epoch %d/%d: loss %.4f, %.0f pairs/s%s%s",
                epoch + 1,
                config.epochs,
                record["loss"],
                record["pairs_per_s"],
                f", {scores}" if scores else "",
                " (best so far)" if best_epoch == epoch else "",
            )
            patience = config.early_stopping_patience
            stop.fill_(int(patience is not None and stale >= patience))
            if ckpt_dir is not None:
                payload = {
                    "model": _cpu_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "history": history,
                    "best_metric": best_metric,
                    "best_epoch": best_epoch,
                    "stale_epochs": stale,
                    "best_state": best_state,
                    "sampler": sampler.state_dict(),
                    "rng": _rng_state(),
                    "config": asdict(config),
                }
                save_checkpoint_atomic(payload, ckpt_dir / "last.pt")
                if best_epoch == epoch:
                    save_checkpoint_atomic(payload, ckpt_dir / "best.pt")
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
        if world > 1:
            # Every rank must leave the loop together, so rank 0's decision is broadcast.
            torch.distributed.broadcast(stop, src=0)
        if stop.item():
            stopped_early = True
            break
    return TrainResult(
        best_state=copy.deepcopy(best_state),
        last_state=_cpu_state(model),
        history=history,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
    )
