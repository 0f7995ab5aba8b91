"""Train / val / test splits: geographic blocks for one user scene, or a name map for DFC2018 tiles.

Blocks are separated by discarded buffer strips at least one patch wide, so no patch of one split can
overlap a patch of another.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
from affine import Affine

from croco_pipeline.data.stack import TileStack
from croco_pipeline.errors import CrocoConfigError, CrocoInputError, bad_param

SPLITS = ("train", "val", "test")


def metres_to_pixels(value_m: float, gsd: float, param: str) -> int:
    """``value_m`` as a whole number of pixels of ``gsd`` metres, or a ``CrocoConfigError`` naming ``param``."""
    px = value_m / gsd
    if not value_m > 0 or abs(px - round(px)) > 1e-6:
        raise bad_param(param, value_m, f"a positive whole multiple of the pixel size {gsd} m")
    return round(px)


def _block_edges(n_px: int, block_px: int, buffer_px: int) -> list[tuple[int, int]]:
    """[start, stop) pixel ranges of the blocks along one axis, ``buffer_px`` apart.

    The count is how many blocks of at least ``block_px`` fit; they are then stretched equally so the
    scene is used to its edges instead of dropping a remainder strip.
    """
    n = (n_px + buffer_px) // (block_px + buffer_px)
    if n < 1:
        return []
    usable = n_px - (n - 1) * buffer_px
    cuts = [round(i * usable / n) for i in range(n + 1)]
    return [(cuts[i] + i * buffer_px, cuts[i + 1] + i * buffer_px) for i in range(n)]


def _split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Largest-remainder counts summing to ``n``, at least one per split with a positive fraction."""
    wanted = [s for s in SPLITS if fractions.get(s, 0.0) > 0]
    counts = {s: max(1, math.floor(fractions[s] * n)) for s in wanted}
    while sum(counts.values()) < n:
        # give the next block to the split furthest below its share
        s = max(wanted, key=lambda k: fractions[k] * n - counts[k])
        counts[s] += 1
    while sum(counts.values()) > n:
        s = max((k for k in wanted if counts[k] > 1), key=lambda k: counts[k] - fractions[k] * n)
        counts[s] -= 1
    return counts


def _cut_blocks(stack: TileStack, block_px: int, buffer_px: int) -> list[TileStack]:
    """Every block of the grid, row-major, as views of ``stack`` named ``block_r<row>_c<col>``."""
    blocks = []
    for r, (r0, r1) in enumerate(_block_edges(stack.shape[0], block_px, buffer_px)):
        for c, (c0, c1) in enumerate(_block_edges(stack.shape[1], block_px, buffer_px)):
            blocks.append(
                dataclasses.replace(
                    stack,
                    name=f"block_r{r}_c{c}",
                    rgb=stack.rgb[:, r0:r1, c0:c1],
                    elevation=stack.elevation[:, r0:r1, c0:c1],
                    valid=stack.valid[r0:r1, c0:c1],
                    transform=stack.transform * Affine.translation(c0, r0),
                )
            )
    return blocks


def split_into_blocks(
    stack: TileStack,
    block_size_m: float,
    buffer_m: float,
    fractions: dict[str, float],
    seed: int = 0,
    keep: Callable[[list[TileStack]], list[TileStack]] | None = None,
) -> list[TileStack]:
    """Cut one scene into square-ish blocks separated by buffer strips and assign them to splits.

    Args:
        stack: the aligned scene.
        block_size_m: minimum block side (``preprocess.block_size_m``).
        buffer_m: width of the strips dropped between blocks; use at least the patch size.
        fractions: share of blocks per split, e.g. {"train": 0.6, "val": 0.2, "test": 0.2}.
        seed: the shuffle seed; the same inputs always give the same assignment.
        keep: filters the blocks before assignment (e.g. ``coverage.drop_sparse``), so the
            fractions apply to the blocks that are used; without it, blocks with no valid pixel
            are left out silently.

    Returns:
        Blocks named ``block_r<row>_c<col>``, in row-major order; blocks with no valid pixel are dropped.

    Raises:
        CrocoConfigError: bad sizes or fractions, or too few blocks for every split to get one.
    """
    if set(fractions) - set(SPLITS) or any(v < 0 for v in fractions.values()):
        raise bad_param(
            "preprocess.split_fractions", fractions, f"non-negative shares for {SPLITS}"
        )
    if not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-6):
        raise bad_param("preprocess.split_fractions", fractions, "shares summing to 1")
    block_px = metres_to_pixels(block_size_m, stack.gsd, "preprocess.block_size_m")
    buffer_px = 0 if buffer_m == 0 else metres_to_pixels(buffer_m, stack.gsd, "preprocess.buffer_m")
    blocks = _cut_blocks(stack, block_px, buffer_px)
    # without a filter, blocks outside the data footprint (a rotated scene's corner) go silently
    blocks = keep(blocks) if keep is not None else [b for b in blocks if b.valid.any()]
    n_needed = sum(1 for v in fractions.values() if v > 0)
    if len(blocks) < n_needed:
        raise CrocoConfigError(
            f"parameter 'preprocess.block_size_m' = {block_size_m!r} is too large: scene {stack.name} "
            f"({stack.shape[0] * stack.gsd:g} m x {stack.shape[1] * stack.gsd:g} m) gives "
            f"{len(blocks)} block(s) with data, but {n_needed} splits need at least one each"
        )
    counts = _split_counts(len(blocks), fractions)
    labels = [s for s in SPLITS for _ in range(counts.get(s, 0))]
    order = np.random.default_rng(seed).permutation(len(blocks))
    for label, i in zip(labels, order, strict=True):
        blocks[i].split = label
    return blocks


def assign_splits(
    stacks: list[TileStack], mapping: dict[str, str], param: str = "preprocess.splits"
) -> list[TileStack]:
    """Copies of ``stacks`` with ``split`` set from ``mapping`` (tile name -> split name).

    Raises:
        CrocoConfigError: a tile missing from the map, or a split name not in ``SPLITS``.
    """
    unknown = {k: v for k, v in mapping.items() if v not in SPLITS}
    if unknown:
        raise bad_param(param, unknown, f"split names from {SPLITS}")
    missing = [s.name for s in stacks if s.name not in mapping]
    if missing:
        raise bad_param(param, sorted(mapping), f"an entry for every tile; missing {missing}")
    return [dataclasses.replace(s, split=mapping[s.name]) for s in stacks]


def require_nonempty(
    stacks: list[TileStack], split: str, param: str = "preprocess.splits"
) -> list[TileStack]:
    """The stacks of ``split``; raises when there are none (a model cannot train or validate on nothing).

    Raises:
        CrocoInputError: empty split, naming the split and the parameter that assigns splits.
    """
    chosen = [s for s in stacks if s.split == split]
    if not chosen:
        raise CrocoInputError(
            f"empty split '{split}': no tile or block is assigned to it; check parameter '{param}' "
            f"(tiles: {[s.name for s in stacks]})"
        )
    return chosen
