"""The classical baseline at its own best setting on a scene, chosen on validation tiles only.

The learned model is compared with the baseline twice: at the model's GSD and patch (``baseline.py``
as configured) and at the setting that suits the baseline best. The sweep is small and documented:
every combination of a coarser GSD (the tiles block-averaged by an integer factor, the same patches
in metres), Gaussian smoothing, pooling of the gradient image and the gradient form, scored by the
paper protocol (elevation -> RGB Top-1, ties to the cheaper setting) on the validation tiles. The
winner is then evaluated once on the test tiles. GSDs finer than the tiles' are out of its reach:
they need the scene preprocessed at that GSD (README, "Evaluation").
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Unpack

import numpy as np
import pandas as pd
from affine import Affine

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.evaluation.baseline import BaselineModel
from croco_pipeline.evaluation.params import BaselineSweepParams
from croco_pipeline.evaluation.protocols import EmbedOptions, paper_protocol


@dataclass(frozen=True)
class BaselineSetting:
    """One point of the sweep; ``model`` builds the baseline it describes."""

    coarsen: int = 1
    sigma_px: float = 0.0
    downsample: int = 1
    gradient: str = "magnitude"
    elevation_channel: int = 0

    def model(self) -> BaselineModel:
        return BaselineModel(self.elevation_channel, self.downsample, self.sigma_px, self.gradient)

    def cost(self) -> tuple[int, float, int, int]:
        """Ordering for ties: coarser, less smoothing, less pooling, magnitude first."""
        return (-self.coarsen, self.sigma_px, self.downsample, int(self.gradient != "magnitude"))


def coarsen_stack(stack: TileStack, factor: int) -> TileStack:
    """The tile at ``factor`` times its GSD: RGB and heights block-averaged, a pixel valid only where
    its whole block is; trailing rows and columns that do not fill a block are dropped."""
    if factor == 1:
        return stack
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    h, w = (n // factor for n in stack.shape)

    def pool(a: np.ndarray) -> np.ndarray:
        a = a[..., : h * factor, : w * factor]
        return a.reshape(*a.shape[:-2], h, factor, w, factor).mean(axis=(-3, -1))

    return replace(
        stack,
        rgb=np.rint(pool(stack.rgb.astype(np.float32))).astype(np.uint8),
        elevation=pool(stack.elevation.astype(np.float32)).astype(np.float32),
        valid=pool(stack.valid.astype(np.float32)) == 1.0,
        transform=stack.transform * Affine.scale(factor),
    )


def coarsen_index(index: pd.DataFrame, factor: int) -> pd.DataFrame | None:
    """The same patches on tiles coarsened by ``factor``, or None where they do not fall on whole
    coarse pixels (the patch side or a top-left corner not divisible by it)."""
    if factor == 1:
        return index
    cols = ("row", "col", "size_px")
    if any((index[c].to_numpy() % factor != 0).any() for c in cols):
        return None
    out = index.copy()
    for c in cols:
        out[c] = out[c] // factor
    return out


def settings_grid(params: BaselineSweepParams, elevation_channel: int = 0) -> list[BaselineSetting]:
    """Every combination of the sweep's values, in a fixed order."""
    return [
        BaselineSetting(k, float(s), d, g, elevation_channel)
        for k, s, d, g in itertools.product(
            params.coarsen, params.sigmas_px, params.downsamples, params.gradients
        )
    ]


def score_setting(
    setting: BaselineSetting,
    stacks: Sequence[TileStack],
    index: pd.DataFrame,
    stats: NormalisationStats,
    **embed: Unpack[EmbedOptions],
) -> dict[str, Any] | None:
    """The paper protocol of the baseline at ``setting`` (both directions, no records), or None when
    the setting does not apply (patch grid not divisible, or fewer than 3 px left after pooling).
    ``embed``: ``paper_protocol``'s ``device`` and ``batch_size``."""
    coarse_index = coarsen_index(index, setting.coarsen)
    if coarse_index is None:
        return None
    size = int(coarse_index["size_px"].iloc[0])
    if (size - 2) // setting.downsample < 1:
        return None
    coarse = [coarsen_stack(s, setting.coarsen) for s in stacks]
    result = paper_protocol(setting.model(), coarse, coarse_index, stats, **embed)
    result.pop("records")
    return result


def sweep_baseline(
    stacks: Sequence[TileStack],
    index: pd.DataFrame,
    stats: NormalisationStats,
    params: BaselineSweepParams,
    elevation_channel: int = 0,
    **embed: Unpack[EmbedOptions],
) -> pd.DataFrame:
    """Score every setting on ``stacks`` (the validation tiles) and ``index`` (their grid);
    ``embed``: ``paper_protocol``'s ``device`` and ``batch_size``.

    Returns:
        One row per applicable setting: its fields, ``gsd_m``, ``patch_px``, and the validation
        elevation -> RGB ``top1``/``top5`` and RGB -> elevation ``rgb_to_elevation_top1``.
    """
    gsd = stacks[0].gsd
    rows = []
    for setting in settings_grid(params, elevation_channel):
        result = score_setting(setting, stacks, index, stats, **embed)
        if result is None:
            continue
        e2r = result["elevation_to_rgb"]
        rows.append(
            {
                **asdict(setting),
                "gsd_m": gsd * setting.coarsen,
                "patch_px": int(index["size_px"].iloc[0]) // setting.coarsen,
                "top1": e2r["top1"],
                "top5": e2r["top5"],
                "rgb_to_elevation_top1": result["rgb_to_elevation"]["top1"],
                "n_queries": e2r["n_queries"],
            }
        )
    if not rows:
        raise ValueError("no baseline setting of evaluate.baseline_sweep applies to these tiles")
    return pd.DataFrame(rows)


def best_setting(table: pd.DataFrame) -> BaselineSetting:
    """The setting with the highest validation Top-1; ties go to the cheaper one (``cost``)."""
    candidates = []
    for row in table.to_dict("records"):
        setting = BaselineSetting(
            int(row["coarsen"]),
            float(row["sigma_px"]),
            int(row["downsample"]),
            str(row["gradient"]),
            int(row["elevation_channel"]),
        )
        candidates.append((-float(row["top1"]), setting.cost(), setting))
    if not candidates:
        raise ValueError("the baseline sweep table is empty")
    return min(candidates, key=lambda c: (c[0], c[1]))[2]
