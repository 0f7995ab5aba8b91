"""The contrastive training loop: sampling, mixed precision, DDP, early stopping, atomic checkpoints.

Kedro-free: callers pass tile stacks, the patch index and callbacks for validation and logging.
``train`` is a short loop over two objects: ``TrainingRun`` (what one run trains with: model,
sampler, optimiser, schedule; it runs an epoch, restores and writes checkpoints) and
``TrainingState`` (what carries over between epochs: history, best weights, patience).
"""

from __future__ import annotations

import copy
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader
from tqdm import tqdm

from croco_pipeline.data.atomic import atomic_path
from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.errors import bad_param
from croco_pipeline.model import distributed as ddp
from croco_pipeline.model.config import TrainConfig
from croco_pipeline.model.ema import WeightAverage
from croco_pipeline.model.losses import LOSSES
from croco_pipeline.model.optim import build_optimizer, warmup_cosine
from croco_pipeline.model.queue import EmbeddingQueue
from croco_pipeline.model.runtime import cpu_state, resolve_device
from croco_pipeline.model.sampling import PairSampler

__all__ = ["TrainConfig", "TrainResult", "TrainingRun", "TrainingState", "train"]

log = logging.getLogger(__name__)

Validate = Callable[[nn.Module, int], dict[str, float]]


@dataclass
class TrainResult:
    """Best (by validation top1, else training loss) and last weights, and per-epoch history
    (with ``train.ema_decay`` > 0: the weight average's)."""

    best_state: dict[str, Tensor]
    last_state: dict[str, Tensor]
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool


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
    """``torch.save`` through ``data.atomic.atomic_path``: never a torn or half-written file."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


@dataclass
class TrainingState:
    """What carries over from one epoch to the next, and what a checkpoint restores of it.

    The best epoch is the one with the highest validation ``top1`` (without validation: the lowest
    training loss); ``stale_epochs`` counts epochs since, for early stopping.
    """

    best_state: dict[str, Tensor]
    next_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float = float("-inf")
    best_epoch: int = -1
    stale_epochs: int = 0

    def end_epoch(self, epoch: int, record: dict[str, float], model: nn.Module) -> bool:
        """Record ``epoch``'s figures; keep ``model``'s weights if it is the best so far (returned)."""
        metric = record.get("top1", -record["loss"])
        improved = metric > self.best_metric
        if improved:
            self.best_metric, self.best_epoch, self.stale_epochs = metric, epoch, 0
            self.best_state = cpu_state(model)
        else:
            self.stale_epochs += 1
        self.history.append(record)
        self.next_epoch = epoch + 1
        return improved

    def should_stop(self, patience: int | None) -> bool:
        """True after ``patience`` epochs without a better metric (never when ``patience`` is None)."""
        return patience is not None and self.stale_epochs >= patience

    def to_checkpoint(self) -> dict[str, Any]:
        """The checkpoint entries of this state (``epoch`` is the last finished one)."""
        return {
            "epoch": self.next_epoch - 1,
            "history": self.history,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "stale_epochs": self.stale_epochs,
            "best_state": self.best_state,
        }

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> TrainingState:
        """The state saved by ``to_checkpoint``: training continues after ``ckpt["epoch"]``."""
        return cls(
            best_state=ckpt["best_state"],
            next_epoch=int(ckpt["epoch"]) + 1,
            history=list(ckpt["history"]),
            best_metric=float(ckpt["best_metric"]),
            best_epoch=int(ckpt["best_epoch"]),
            stale_epochs=int(ckpt["stale_epochs"]),
        )


def log_epoch(epoch: int, epochs: int, record: dict[str, float], best: bool) -> None:
    """The per-epoch log line (readable in a redirected log, unlike a progress bar)."""
    scores = ", ".join(f"val {k} {v:.3f}" for k, v in record.items() if k in ("top1", "top5"))
    log.info(
        "epoch %d/%d: loss %.4f, %.0f pairs/s%s%s",
        epoch + 1,
        epochs,
        record["loss"],
        record["pairs_per_s"],
        f", {scores}" if scores else "",
        " (best so far)" if best else "",
    )


def progress_bar(batches: Iterable[Any], total: int, desc: str, enabled: bool) -> tqdm:
    """A tqdm bar on stderr only when ``enabled`` and stderr is a terminal (``disable=None``):
    carriage-return refreshes never reach a redirected log."""
    return tqdm(
        batches, total=total, file=sys.stderr, disable=None if enabled else True, desc=desc,
        leave=False,
    )  # fmt: skip


@dataclass
class TrainingRun:
    """What one run trains with, built once: the model (and its DDP wrapper), the pair sampler,
    optimiser, schedule and gradient scaler, on one device."""

    model: nn.Module
    sampler: PairSampler
    optimizer: Optimizer
    scheduler: LRScheduler
    scaler: torch.amp.GradScaler
    config: TrainConfig
    device: torch.device
    rank: int = 0
    world: int = 1
    net: nn.Module | None = None  # the module the steps call: ``model``, or DDP around it
    queue: EmbeddingQueue = field(default_factory=lambda: EmbeddingQueue(0))  # extra negatives
    average: WeightAverage | None = None  # train.ema_decay > 0: what is validated and kept

    @property
    def kept(self) -> nn.Module:
        """The weights validated, kept as the best and returned: the average when there is one."""
        return self.average.module if self.average is not None else self.model

    @classmethod
    def build(
        cls,
        model: nn.Module,
        train_stacks: list[TileStack],
        patch_index: pd.DataFrame,
        stats: NormalisationStats,
        config: TrainConfig,
    ) -> TrainingRun:
        """Seed, place ``model`` on its device and build the sampler, optimiser and schedule."""
        device = resolve_device(config.device)
        if config.precision == "fp16" and device.type != "cuda":
            raise bad_param("train.precision", "fp16", "fp32 or bf16 on CPU (fp16 needs CUDA)")
        rank, world = ddp.rank(), ddp.world_size()
        _seed_everything(config.seed)
        loaded = load_initial_weights(model, config.init_from) if config.init_from else set()
        model.to(device)
        model.to(memory_format=_memory_format(config))
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
            hard_negatives=config.hard_negatives,
        )
        lr_scale = {id(p): config.init_lr_scale for n, p in model.named_parameters() if n in loaded}
        optimizer = build_optimizer(
            model, config.optimizer, config.lr, config.weight_decay, config.batch_size,
            config.base_batch_size, config.scale_lr, lr_scale,
        )  # fmt: skip
        queue = EmbeddingQueue(config.queue_size)
        steps = sampler.n_batches
        scheduler = warmup_cosine(
            optimizer, int(config.warmup_epochs * steps), config.epochs * steps, config.min_lr_ratio
        )
        scaler = torch.amp.GradScaler("cuda", enabled=config.precision == "fp16")
        average = WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
        return cls(
            model, sampler, optimizer, scheduler, scaler, config, device, rank, world, queue=queue,
            average=average,
        )  # fmt: skip

    def restore(self, ckpt: dict[str, Any]) -> TrainingState:
        """Load a ``checkpoint_payload`` (weights, optimiser, schedule, sampler, RNG): the run
        continues exactly where it stopped."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.sampler.load_state_dict(ckpt["sampler"])
        if "queue" in ckpt:  # checkpoints from before the queue existed hold none
            self.queue.load_state_dict(ckpt["queue"], self.device)
        if (self.average is None) != ("average" not in ckpt):  # on in one, off in the other
            raise bad_param("train.ema_decay", self.config.ema_decay,
                            "the value of the interrupted run (its checkpoint "
                            f"{'holds no' if self.average else 'holds an'} average)")  # fmt: skip
        if self.average is not None:
            self.average.load_state_dict(ckpt["average"])
        _set_rng_state(ckpt["rng"])
        return TrainingState.from_checkpoint(ckpt)

    def wrap(self) -> None:
        """Under torch.distributed, steps go through DistributedDataParallel (after any restore)."""
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)

    def step(self, rgb: Tensor, elev: Tensor) -> Tensor:
        """One optimiser step on a batch; returns the (detached) loss."""
        config, fmt = self.config, _memory_format(self.config)
        rgb = rgb.to(self.device, non_blocking=True, memory_format=fmt)
        elev = elev.to(self.device, non_blocking=True, memory_format=fmt)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
        net = self.net or self.model
        with torch.autocast(
            self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            z_rgb, z_elev = net(rgb, elev)
        z_rgb, z_elev = ddp.gather_with_grad(z_rgb), ddp.gather_with_grad(z_elev)
        q_rgb, q_elev = self.queue.negatives()  # earlier batches: extra negatives (none if off)
        loss = LOSSES[config.loss](z_rgb, z_elev, config.temperature, queue_a=q_rgb, queue_b=q_elev)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.average is not None:
            self.average.update(self.model)
        self.queue.enqueue(z_rgb, z_elev)  # the global batch: every rank holds the same queue
        return loss.detach()

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch; returns ``{"epoch", "loss" (mean), "lr" (at the end), "pairs_per_s"}``."""
        config, steps = self.config, self.sampler.n_batches
        self.sampler.set_epoch(epoch)
        loader = DataLoader(
            self.sampler, batch_size=None, num_workers=config.num_workers,
            pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        (self.net or self.model).train()
        total, t0 = torch.zeros((), device=self.device), time.perf_counter()
        desc, shown = f"epoch {epoch + 1}/{config.epochs}", config.progress and self.rank == 0
        bar = progress_bar(loader, steps, desc, shown)
        for i, (rgb, elev) in enumerate(bar):
            total += self.step(rgb, elev)
            if not bar.disable and (i % 10 == 0 or i == steps - 1):
                rate = (i + 1) * config.batch_size / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{total.item() / (i + 1):.4f}", pairs_s=f"{rate:.0f}")
        return {
            "epoch": float(epoch),
            "loss": total.item() / steps,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "pairs_per_s": steps * config.batch_size / (time.perf_counter() - t0),
        }

    def checkpoint_payload(self, state: TrainingState) -> dict[str, Any]:
        """Everything ``restore`` needs (weights_only-safe): components, state, RNG, config."""
        return {
            "model": cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            **state.to_checkpoint(),
            "sampler": self.sampler.state_dict(),
            "queue": self.queue.state_dict(),
            **({"average": self.average.state_dict()} if self.average is not None else {}),
            "rng": _rng_state(),
            "config": self.config.model_dump(),
        }

    def end_epoch(
        self,
        epoch: int,
        record: dict[str, float],
        state: TrainingState,
        validate: Validate | None,
        checkpoint_dir: Path | None,
    ) -> bool:
        """Rank 0's bookkeeping: validate, update the state, log, checkpoint. Returns: stop now."""
        if validate is not None:
            self.kept.eval()
            with torch.no_grad():
                record.update({k: float(v) for k, v in validate(self.kept, epoch).items()})
        best = state.end_epoch(epoch, record, self.kept)
        log_epoch(epoch, self.config.epochs, record, best)
        if checkpoint_dir is not None:
            payload = self.checkpoint_payload(state)
            save_checkpoint_atomic(payload, checkpoint_dir / "last.pt")
            if best:
                save_checkpoint_atomic(payload, checkpoint_dir / "best.pt")
        return state.should_stop(self.config.early_stopping_patience)


def load_initial_weights(model: nn.Module, path: str) -> set[str]:
    """Start from earlier weights (``train.init_from``): a ``croco_model.pt`` bundle (its
    ``state_dict``) or a trainer checkpoint (its ``model``), e.g. trained on another scene.

    Every tensor of the same name and shape is loaded; one whose shape differs (the elevation
    stem of a scene with another channel count) keeps its initialisation and is logged.
    Returns the names of the loaded tensors (``train.init_lr_scale`` slows their learning rate).
    """
    if not Path(path).is_file():
        raise bad_param(
            "train.init_from",
            path,
            "the path of an existing croco_model.pt or checkpoint file (train that model first: "
            "the autzen env starts from data/synthetic_dsm/06_models/croco_model.pt, which `make "
            "autzen` or `kedro run --env synthetic_dsm --pipelines=synthesize,ingest,preprocess,"
            "train` writes; or set train.init_from: null)",
        )
    saved = torch.load(path, map_location="cpu", weights_only=True)
    weights = saved.get("state_dict", saved.get("model")) if isinstance(saved, dict) else None
    if not isinstance(weights, dict):
        raise bad_param("train.init_from", path, "a file holding 'state_dict' or 'model' weights")
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    if missing:
        raise bad_param(
            "train.init_from", path, f"weights of the same architecture (train.model): no {missing}"
        )
    skipped = [k for k, v in own.items() if weights[k].shape != v.shape]
    if skipped:
        log.warning("train.init_from: %s keep their initialisation (other shapes)", skipped)
    model.load_state_dict({k: weights[k] if k not in skipped else v for k, v in own.items()})
    log.info(
        "train.init_from: %d of %d tensors loaded from %s", len(own) - len(skipped), len(own), path
    )
    return set(own) - set(skipped)


def _memory_format(config: TrainConfig) -> torch.memory_format:
    return torch.channels_last if config.channels_last else torch.contiguous_format


def train(
    model: nn.Module,
    train_stacks: list[TileStack],
    patch_index: pd.DataFrame,
    stats: NormalisationStats,
    config: TrainConfig,
    validate: Validate | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``model`` (a ``CrocoModel`` or any module mapping (rgb, elevation) to two (N, D) tensors).

    Under torch.distributed each rank must call this with the same arguments; only rank 0 validates,
    checkpoints and calls ``on_epoch_end``. ``validate(model, epoch)`` gets the unwrapped model (or
    its weight average, ``train.ema_decay``) in eval mode and returns metrics such as
    ``{"top1": .., "top5": ..}``; early stopping watches ``top1``.
    """
    run = TrainingRun.build(model, train_stacks, patch_index, stats, config)
    state = TrainingState(best_state=cpu_state(run.kept))
    ckpt_dir = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    if config.resume and ckpt_dir is not None and (ckpt_dir / "last.pt").exists():
        state = run.restore(torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=True))
    run.wrap()
    stopped_early = False
    for epoch in range(state.next_epoch, config.epochs):
        record = run.run_epoch(epoch)
        stop = torch.zeros((), dtype=torch.int64, device=run.device)
        if run.rank == 0:
            stop.fill_(int(run.end_epoch(epoch, record, state, validate, ckpt_dir)))
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
        if run.world > 1:
            # Every rank must leave the loop together, so rank 0's decision is broadcast.
            torch.distributed.broadcast(stop, src=0)
        if stop.item():
            stopped_early = True
            break
    return TrainResult(
        best_state=copy.deepcopy(state.best_state),
        last_state=cpu_state(run.kept),
        history=state.history,
        best_epoch=state.best_epoch,
        stopped_early=stopped_early,
    )
