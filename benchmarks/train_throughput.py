"""Pairs/s of the full training step versus forward + backward + step on tensors already in memory.

The full step is ``trainer.train`` itself (PairSampler -> DataLoader -> transfer -> forward -> backward
-> optimiser and scheduler step), timed over its second epoch. Builds its own synthetic tiles, so it
runs anywhere. The last line printed is ``ratio=<full / pure>``.

    python benchmarks/train_throughput.py            # the cpu profile: 16 px, batch 128, fp32, fast stem
    python benchmarks/train_throughput.py --device cuda --batch 512 --patch 64 --precision bf16 \
        --stem cifar --num-workers 8                 # the paper profile on a GPU
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from affine import Affine
from rasterio.crs import CRS
from scipy.ndimage import gaussian_filter

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.model.losses import nt_xent
from croco_pipeline.model.models import ModelConfig, build_model
from croco_pipeline.model.optim import build_optimizer
from croco_pipeline.model.runtime import resolve_device
from croco_pipeline.model.trainer import TrainConfig, train

TILE_PX, N_TILES, GSD = 300, 4, 0.5


def synthetic_tiles(seed: int = 0) -> list[TileStack]:
    """Smooth terrain plus blocky 'buildings'; RGB is a noisy shading of the same scene."""
    rng = np.random.default_rng(seed)
    tiles = []
    for i in range(N_TILES):
        ground = gaussian_filter(rng.normal(size=(TILE_PX, TILE_PX)), 20) * 40 - 22
        buildings = np.zeros((TILE_PX, TILE_PX))
        for _ in range(60):
            r, c, h, w = rng.integers(0, TILE_PX - 20, 2).tolist() + rng.integers(4, 20, 2).tolist()
            buildings[r : r + h, c : c + w] = rng.uniform(3, 30)
        dsm = ground + buildings
        shade = np.clip(
            (np.gradient(dsm, axis=1) * 20 + 128 + rng.normal(0, 15, dsm.shape)), 0, 255
        )
        rgb = np.stack([shade, shade * 0.9 + 10, shade * 0.8 + 20]).clip(0, 255).astype(np.uint8)
        elevation = np.stack([dsm, ground, ground + 0.5 * buildings]).astype(np.float32)
        transform = Affine(GSD, 0, 271460 + i * TILE_PX * GSD, 0, -GSD, 3290891)
        tiles.append(
            TileStack(
                f"synthetic_{i}",
                rgb,
                elevation,
                np.ones((TILE_PX, TILE_PX), bool),
                CRS.from_epsg(26915),
                transform,
                ("dsm", "dem", "dem_b"),
            )  # fmt: skip
        )
    return tiles


def grid_index(tiles: list[TileStack], patch: int) -> pd.DataFrame:
    """The non-overlapping patch grid (stride = patch size) of every tile, all in the train split."""
    records = [
        {"tile": t.name, "split": "train", "row": r, "col": c, "size_px": patch,
         "x": t.transform.c + GSD * c, "y": t.transform.f - GSD * r, "valid_fraction": 1.0}
        for t in tiles
        for r in range(0, TILE_PX - patch + 1, patch)
        for c in range(0, TILE_PX - patch + 1, patch)
    ]  # fmt: skip
    return pd.DataFrame.from_records(records)


def pure_pairs_per_s(
    args: argparse.Namespace, model_config: ModelConfig, device: torch.device
) -> float:
    """Forward + backward + Adam step on one fixed batch already on ``device``."""
    torch.manual_seed(0)
    model = build_model(model_config).to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    optimizer = build_optimizer(model, "adam", 1e-3, 1e-6, args.batch, scale_lr="none")
    rgb = torch.rand(args.batch, 3, args.patch, args.patch, device=device).to(memory_format=fmt)
    elev = torch.rand(args.batch, 3, args.patch, args.patch, device=device).to(memory_format=fmt)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=args.precision == "fp16")

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            z_rgb, z_elev = model(rgb, elev)
        loss = nt_xent(z_rgb, z_elev, 0.1)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(args.steps):  # warm-up: as many steps as the trainer's first epoch
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * args.batch / (time.perf_counter() - t0)


def full_pairs_per_s(args: argparse.Namespace, model_config: ModelConfig) -> float:
    """The trainer's own measurement over its second epoch (the first one warms up)."""
    tiles = synthetic_tiles()
    torch.manual_seed(0)
    augmentation = {} if args.no_augment else {
        "rotate_flip": True, "colour_jitter": 0.3, "height_offset": 0.05, "height_scale": 0.1
    }  # fmt: skip
    config = TrainConfig.from_params({
        "epochs": 2, "batch_size": args.batch, "steps_per_epoch": args.steps, "sampling": args.sampling,
        "device": args.device, "precision": args.precision, "channels_last": args.channels_last,
        "num_workers": args.num_workers, "progress": False, "augmentation": augmentation,
    })  # fmt: skip
    stats = NormalisationStats("relative", 0.0, 0.0, 50.0)
    result = train(build_model(model_config), tiles, grid_index(tiles, args.patch), stats, config)
    return result.history[-1]["pairs_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--stem", default="fast", choices=["cifar", "imagenet", "fast"])
    parser.add_argument("--width", type=int, default=32, help="64 = the standard ResNet18")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps (after as many warm-up steps)"
    )
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--sampling", default="random", choices=["grid", "random"])
    parser.add_argument("--no-augment", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model_config = ModelConfig(stem=args.stem, width=args.width, n_elevation_channels=3)
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch} patch={args.patch} "
          f"precision={args.precision} stem={args.stem} channels_last={args.channels_last}")  # fmt: skip
    # Pure before and after the full run, averaged, to damp drift on a shared machine.
    pure_before = pure_pairs_per_s(args, model_config, device)
    full = full_pairs_per_s(args, model_config)
    pure_after = pure_pairs_per_s(args, model_config, device)
    pure = 0.5 * (pure_before + pure_after)
    print(
        f"pure forward+backward+step: {pure:.1f} pairs/s ({pure_before:.1f} before, {pure_after:.1f} after)"
    )
    print(f"full training step:         {full:.1f} pairs/s")
    print(f"ratio={full / pure:.3f}")


if __name__ == "__main__":
    main()
