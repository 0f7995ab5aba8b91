"""Sparse coverage: tiles or blocks without enough usable patches are dropped, splits are checked.

A coastal scene has blocks that are mostly water or without LiDAR returns. Such a block is dropped
with one warning line and counted in the preprocess report; the run stops only when a whole split
is left with too few patches to train or evaluate.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from croco_pipeline.data.splits import SPLITS, metres_to_pixels
from croco_pipeline.data.stack import TileStack
from croco_pipeline.data.windows import summed_area_table, window_fraction, window_grid
from croco_pipeline.errors import CrocoInputError

log = logging.getLogger(__name__)


def usable_patches(stack: TileStack, patch_size_m: float, max_nodata_fraction: float) -> int:
    """Patches of the non-overlapping grid with at most ``max_nodata_fraction`` nodata."""
    size = metres_to_pixels(patch_size_m, stack.gsd, "preprocess.patch_size_m")
    if size > min(stack.shape):
        return 0
    rows, cols = window_grid(stack.shape, size, size)
    frac = window_fraction(summed_area_table(stack.valid), rows, cols, size)
    return int(np.count_nonzero(frac >= 1.0 - max_nodata_fraction - 1e-9))


def drop_sparse(
    stacks: list[TileStack],
    patch_size_m: float,
    max_nodata_fraction: float,
    min_patches: int,
    assigned: bool = True,
) -> tuple[list[TileStack], list[dict[str, Any]]]:
    """Keep the stacks with at least ``min_patches`` usable patches; warn once per dropped one.

    Args:
        assigned: whether splits are assigned yet (DFC tiles) or not (blocks, dropped before
            assignment so the split fractions apply to the blocks with data).

    Returns:
        (kept stacks in their order, one record per dropped stack: name, split (None when not
        assigned yet), usable patches, valid share of its pixels).
    """
    kept, dropped = [], []
    for stack in stacks:
        n = usable_patches(stack, patch_size_m, max_nodata_fraction)
        if n >= min_patches:
            kept.append(stack)
            continue
        share = float(stack.valid.mean()) if stack.valid.size else 0.0
        log.warning(
            "preprocess: dropped %s: %d usable %g m patch(es) (%.0f %% valid pixels), fewer than "
            "preprocess.coverage.min_patches_per_tile = %d",
            stack.name, n, patch_size_m, 100 * share, min_patches,
        )  # fmt: skip
        split = stack.split if assigned else None
        dropped.append(
            {
                "name": stack.name,
                "split": split,
                "usable_patches": n,
                "valid_share": round(share, 4),
            }
        )
    return kept, dropped


def split_patch_counts(
    stacks: list[TileStack], patch_size_m: float, max_nodata_fraction: float
) -> dict[str, int]:
    """Usable non-overlapping patches per split."""
    counts = dict.fromkeys(SPLITS, 0)
    for stack in stacks:
        counts[stack.split] += usable_patches(stack, patch_size_m, max_nodata_fraction)
    return counts


def require_split_patches(
    counts: dict[str, int], minimums: dict[str, int], n_dropped: int, block_scene: bool
) -> None:
    """Raise when a split has fewer usable patches than it needs to train or evaluate.

    Raises:
        CrocoInputError: names the split, its patch count, the minimum and what would help.
    """
    for split in SPLITS:
        n, needed = counts.get(split, 0), minimums.get(split, 1)
        if n >= needed:
            continue
        helps = (
            [f"a larger share for it (preprocess.blocks.fractions.{split})",
             "smaller blocks (preprocess.blocks.block_size_m)"]
            if block_scene
            else ["more tiles assigned to it (preprocess.split)"]
        )  # fmt: skip
        helps += [
            "a smaller patch (preprocess.patch_size_m)",
            "a scene with more valid elevation data, or a smaller exclusion mask",
        ]
        raise CrocoInputError(
            f"split '{split}' has {n} usable patch(es), fewer than the {needed} it needs "
            f"(preprocess.coverage.min_patches_per_split.{split}); {n_dropped} tile(s)/block(s) "
            f"were dropped for sparse coverage. What would help: {'; '.join(helps)}. Raising "
            "preprocess.max_nodata_fraction would admit mostly-empty patches everywhere."
        )


def coverage_report(
    kept: list[TileStack],
    dropped: list[dict[str, Any]],
    patch_size_m: float,
    max_nodata_fraction: float,
) -> dict[str, Any]:
    """The preprocess report: kept and dropped tiles/blocks and usable patches per split."""
    return {
        "patch_size_m": patch_size_m,
        "max_nodata_fraction": max_nodata_fraction,
        "kept_tiles": {s: sum(1 for k in kept if k.split == s) for s in SPLITS},
        "usable_patches": split_patch_counts(kept, patch_size_m, max_nodata_fraction),
        "dropped_tiles": len(dropped),
        "dropped": dropped,
    }
