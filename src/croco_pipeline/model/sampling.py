"""Training pairs cut on the fly from in-memory tile stacks, as whole batches, with joint augmentation.

No patch is materialised ahead of time: each batch is gathered from strided window views of the tiles.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch.utils.data import IterableDataset, get_worker_info

from croco_pipeline.data.stack import (
    NormalisationStats,
    TileStack,
    normalise_elevation,
    normalise_rgb,
)
from croco_pipeline.data.windows import summed_area_table, window_fraction, window_view
from croco_pipeline.errors import bad_param
from croco_pipeline.model.hard_negatives import HardNegatives, hard_geo_windows
from croco_pipeline.params import StrictParams

SAMPLING_MODES = ("grid", "random", "hard_geo")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class Augmentation(StrictParams):
    """Augmentation switches (``train.augmentation``); all off by default (the original code used none).

    Attributes:
        rotate_flip: the SAME random multiple-of-90-degree rotation and horizontal flip on both modalities.
        colour_jitter: RGB brightness, contrast and saturation factors drawn in [1 - a, 1 + a] per sample.
        height_offset: elevation offset drawn in [-o, o] (normalised units) per sample.
        height_scale: elevation scale drawn in [1 - s, 1 + s] per sample.
        channel_dropout: per sample, with this probability every elevation channel after the first
            is flattened to its patch mean, so the model cannot lean on them alone (e.g. intensity).
    """

    section: ClassVar[str] = "train.augmentation"

    rotate_flip: bool = False
    colour_jitter: float = Field(default=0.0, ge=0.0, lt=1.0)
    height_offset: float = Field(default=0.0, ge=0.0)
    height_scale: float = Field(default=0.0, ge=0.0, lt=1.0)
    channel_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class PairSampler(IterableDataset):
    """Yields ``n_batches`` batches per epoch: rgb float32 (B, 3, s, s), elevation float32 (B, C, s, s).

    Batch k of epoch e is a pure function of (seed, e, k): a ``torch.Generator`` seeded with
    ``seed + e`` draws the epoch's patch order and one seed per batch. So batches do not depend on the
    number of DataLoader workers (worker w makes batches w, w + W, ...; the DataLoader returns them in
    order) and a resumed run sees exactly the batches an uninterrupted one would. Use it with
    ``DataLoader(sampler, batch_size=None)``. Under DDP each rank yields its disjoint slice
    ``[rank * B / world, (rank + 1) * B / world)`` of every global batch of ``batch_size``.

    ``grid`` mode visits the index's patch positions in a shuffled order (one pass = ``len(index) // B``
    batches); ``random`` mode draws uniform windows inside the tiles and rejects those whose valid
    fraction (from an integral image of ``TileStack.valid``) is below ``min_valid_fraction``.
    """

    def __init__(
        self,
        stacks: list[TileStack],
        patch_index: pd.DataFrame,
        stats: NormalisationStats,
        batch_size: int,
        mode: str = "grid",
        seed: int = 0,
        augmentation: Augmentation | None = None,
        steps_per_epoch: int | None = None,
        min_valid_fraction: float = 0.5,
        rank: int = 0,
        world_size: int = 1,
        hard_negatives: HardNegatives | None = None,
    ) -> None:
        super().__init__()
        if mode not in SAMPLING_MODES:
            raise bad_param("train.sampling", mode, f"one of {SAMPLING_MODES}")
        if batch_size < 1 or batch_size % world_size:
            raise bad_param(
                "train.batch_size", batch_size, f"a positive multiple of {world_size} ranks"
            )
        self.stacks = stacks
        self.stats = stats
        self.batch_size = batch_size
        self.mode = mode
        self.seed = seed
        self.augmentation = augmentation or Augmentation()
        self.min_valid_fraction = min_valid_fraction
        self.hard_negatives = hard_negatives or HardNegatives()
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        names = [s.name for s in stacks]
        rows = patch_index[
            patch_index["tile"].isin(names) & (patch_index["valid_fraction"] >= min_valid_fraction)
        ]
        if rows.empty:
            raise ValueError(
                "no patch of the index lies in the given tiles with enough valid pixels"
            )
        sizes = rows["size_px"].unique()
        if len(sizes) != 1:
            raise ValueError(f"patch index mixes patch sizes {sorted(sizes)}; expected one")
        self.patch_size = int(sizes[0])
        self.grid_tile = rows["tile"].map({n: i for i, n in enumerate(names)}).to_numpy(np.int64)
        self.grid_row = rows["row"].to_numpy(np.int64)
        self.grid_col = rows["col"].to_numpy(np.int64)
        if mode == "grid" and steps_per_epoch is None and len(rows) < batch_size:
            raise bad_param(
                "train.batch_size", batch_size, f"at most the {len(rows)} training patches"
            )
        self.n_batches = steps_per_epoch or len(rows) // batch_size
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a window view would copy every window (spawned workers): rebuild lazily instead.
        return {**self.__dict__, "_cache": {}}

    def __len__(self) -> int:
        return self.n_batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def __iter__(self):  # type: ignore[no-untyped-def]
        info = get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        order, batch_seeds = self._epoch_plan(self.epoch)
        for k in range(worker, self.n_batches, n_workers):
            yield self.make_batch(order, k, int(batch_seeds[k]))

    def _epoch_plan(self, epoch: int) -> tuple[np.ndarray | None, np.ndarray]:
        g = torch.Generator().manual_seed(self.seed + epoch)
        order = None
        if self.mode == "grid":
            n = len(self.grid_row)
            repeats = -(-self.n_batches * self.batch_size // n)
            order = torch.cat([torch.randperm(n, generator=g) for _ in range(repeats)]).numpy()
        batch_seeds = torch.randint(0, 2**62, (self.n_batches,), generator=g).numpy()
        return order, batch_seeds

    def make_batch(
        self, order: np.ndarray | None, k: int, batch_seed: int
    ) -> tuple[torch.Tensor, ...]:
        """Global batch k (this rank's slice): positions, then extraction, normalisation, augmentation."""
        rng = np.random.default_rng(batch_seed)
        b = self.batch_size
        if order is not None:
            picked = order[k * b : (k + 1) * b]
            tiles, rows, cols = self.grid_tile[picked], self.grid_row[picked], self.grid_col[picked]
        elif self.mode == "hard_geo":
            tiles, rows, cols = self._hard_geo_windows(rng, b)
        else:
            tiles, rows, cols = self._random_windows(rng, b)
        # Draw augmentation parameters for the whole global batch so ranks stay disjoint slices of it.
        params = self._draw_augmentation(rng, b)
        part = slice(self.rank * b // self.world_size, (self.rank + 1) * b // self.world_size)
        params = {key: value[part] for key, value in params.items()}
        rgb, elev = self._extract(tiles[part], rows[part], cols[part], params["pose"])
        rgb_f, elev_f = self._jitter(
            normalise_rgb(rgb), normalise_elevation(elev, self.stats), params
        )
        return torch.from_numpy(rgb_f), torch.from_numpy(np.ascontiguousarray(elev_f))

    def _tile_cache(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Window views (3 or C, H-s+1, W-s+1, s, s) of the tile and the summed-area table of its
        valid mask (H+1, W+1), built once per process; the views copy nothing."""
        if t not in self._cache:
            s, stack = self.patch_size, self.stacks[t]
            self._cache[t] = (
                window_view(stack.rgb, s),
                window_view(stack.elevation, s),
                summed_area_table(stack.valid),
            )
        return self._cache[t]

    def _extract(
        self, tiles: np.ndarray, rows: np.ndarray, cols: np.ndarray, pose: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Gather (n, 3, s, s) uint8 and (n, C, s, s) float32 windows, already rotated and flipped.

        The rotation/flip is applied to the window VIEW (a free stride change) before one gather per
        (tile, pose) group, so both modalities get the same one at no extra copy.
        """
        n, s = len(tiles), self.patch_size
        c = self.stacks[0].elevation.shape[0]
        rgb = np.empty((n, 3, s, s), dtype=np.uint8)
        elev = np.empty((n, c, s, s), dtype=np.float32)
        for t in np.unique(tiles):
            rgb_view, elev_view, _ = self._tile_cache(int(t))
            for p in np.unique(pose[tiles == t]):
                sel = np.flatnonzero((tiles == t) & (pose == p))
                r, cc = rows[sel], cols[sel]
                rgb[sel] = _posed(rgb_view, int(p))[:, r, cc].swapaxes(0, 1)
                elev[sel] = _posed(elev_view, int(p))[:, r, cc].swapaxes(0, 1)
        return rgb, elev

    def _hard_geo_windows(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        hard = self.hard_negatives
        tables = [self._tile_cache(t)[2] for t in range(len(self.stacks))]
        radius_px = hard.radius_m / self.stacks[0].gsd
        size, frac = self.patch_size, self.min_valid_fraction
        tiles, rows, cols, _ = hard_geo_windows(
            rng, tables, size, n, radius_px, hard.group_size, frac
        )
        return tiles, rows, cols

    def _random_windows(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        s = self.patch_size
        spans = np.array([(st.shape[0] - s + 1, st.shape[1] - s + 1) for st in self.stacks])
        weights = np.clip(spans, 0, None).prod(axis=1).astype(np.float64)
        if weights.sum() == 0:
            raise ValueError(f"every tile is smaller than the {s} px patch")
        found: list[np.ndarray] = []
        for _ in range(50):
            t = rng.choice(len(self.stacks), size=2 * n, p=weights / weights.sum())
            r = (rng.random(2 * n) * spans[t, 0]).astype(np.int64)
            c = (rng.random(2 * n) * spans[t, 1]).astype(np.int64)
            frac = np.empty(2 * n)
            for tile in np.unique(t):
                sel = t == tile
                frac[sel] = window_fraction(self._tile_cache(int(tile))[2], r[sel], c[sel], s)
            ok = frac >= self.min_valid_fraction
            found.append(np.stack([t[ok], r[ok], c[ok]]))
            if sum(f.shape[1] for f in found) >= n:
                picked = np.concatenate(found, axis=1)[:, :n]
                return picked[0], picked[1], picked[2]
        raise RuntimeError(
            f"could not find {n} windows with valid fraction >= {self.min_valid_fraction} in 50 tries"
        )

    def _draw_augmentation(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        aug = self.augmentation
        a, o, h = aug.colour_jitter, aug.height_offset, aug.height_scale
        drawn: dict[str, np.ndarray] = {
            # pose = 2 * quarter turns + flip, see _posed.
            "pose": rng.integers(0, 8, n) if aug.rotate_flip else np.zeros(n, np.int64),
            "colour": rng.uniform(1 - a, 1 + a, (n, 3)).astype(np.float32),
            "offset": rng.uniform(-o, o, n).astype(np.float32),
            "scale": rng.uniform(1 - h, 1 + h, n).astype(np.float32),
        }
        # drawn last and only when on: batches without it stay those of earlier runs
        p = aug.channel_dropout
        drawn["drop"] = rng.random(n) < p if p > 0 else np.zeros(n, dtype=bool)
        return drawn

    def _jitter(
        self, rgb: np.ndarray, elev: np.ndarray, p: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample colour jitter on (n, 3, s, s), affine height jitter and channel dropout on
        (n, C, s, s)."""
        aug = self.augmentation
        if aug.colour_jitter > 0:
            bright, contrast, sat = (p["colour"][:, i, None, None, None] for i in range(3))
            # Brightness then contrast about the patch mean is one affine map per sample.
            mean = rgb.mean(axis=(1, 2, 3), keepdims=True)
            rgb *= bright * contrast
            rgb += bright * mean * (1 - contrast)
            grey = np.einsum("nchw,c->nhw", rgb, _LUMA)[:, None]
            rgb *= sat
            rgb += grey * (1 - sat)
            np.clip(rgb, 0.0, 1.0, out=rgb)
        if aug.height_offset > 0 or aug.height_scale > 0:
            elev = elev * p["scale"][:, None, None, None] + p["offset"][:, None, None, None]
        drop = p["drop"]
        if drop.any() and elev.shape[1] > 1:
            rest = elev[drop, 1:]
            elev[drop, 1:] = rest.mean(axis=(-2, -1), keepdims=True)
        return rgb, elev


def _posed(windows: np.ndarray, pose: int) -> np.ndarray:
    """View of windows (..., s, s) after pose // 2 quarter turns (np.rot90) and, if pose is odd, a
    left-right flip."""
    out = np.rot90(windows, pose // 2, axes=(-2, -1))
    return out[..., ::-1] if pose % 2 else out
