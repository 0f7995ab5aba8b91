"""Preprocessing as domain steps: ingested rasters -> aligned tile stacks with splits,
normalisation statistics and patch indexes (the preprocess pipeline's nodes and the ablation
runner both call these)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from croco_pipeline.data.align import align_scene
from croco_pipeline.data.coverage import coverage_report, drop_sparse, require_split_patches
from croco_pipeline.data.dfc2018 import TileId, default_split
from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.masks import ExclusionMask, apply_exclusion
from croco_pipeline.data.params import PreprocessConfig
from croco_pipeline.data.patches import compute_normalisation, patch_index
from croco_pipeline.data.splits import assign_splits, split_into_blocks
from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.errors import bad_param

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedScene:
    """Everything training and evaluation read: split stacks, statistics and both patch indexes."""

    stacks: dict[str, TileStack]
    stats: NormalisationStats
    train_index: pd.DataFrame
    eval_index: pd.DataFrame


def align_tiles(
    rasters: Mapping[str, GeoRaster],
    tiles: list[str],
    config: PreprocessConfig,
    exclusion: ExclusionMask | None = None,
) -> dict[str, TileStack]:
    """Put each tile's RGB and elevation channels (``"<tile>/<key>"`` rasters) on one grid.

    Pixels an ``exclusion`` mask rules out (water, a land-cover class) are marked invalid.
    """
    stacks = {}
    for i, tile in enumerate(tiles, start=1):
        log.info("preprocess: aligning %s (%d/%d)", tile, i, len(tiles))
        prefix = f"{tile}/"
        mine = {k[len(prefix) :]: v for k, v in rasters.items() if k.startswith(prefix)}
        stack = align_scene(tile, mine, tuple(config.channels), config.gsd)
        stacks[tile] = apply_exclusion(stack, exclusion)
    return stacks


def split_tiles(
    stacks: Mapping[str, TileStack], kind: str, config: PreprocessConfig
) -> tuple[dict[str, TileStack], dict[str, Any]]:
    """Assign train/val/test: DFC tiles by the documented (or configured) split, a user scene by
    geographic blocks. Tiles or blocks with too few usable patches are dropped (blocks before
    assignment); every split must keep enough patches to train or evaluate.

    Returns:
        (the kept stacks by name, the coverage report: kept and dropped tiles, patches per split).
    """
    size, max_nodata = config.patch_size_m, config.max_nodata_fraction
    dropped: list[dict[str, Any]] = []

    def keep(candidates: list[TileStack], assigned: bool) -> list[TileStack]:
        kept, gone = drop_sparse(
            candidates, size, max_nodata, config.coverage.min_patches_per_tile, assigned
        )
        dropped.extend(gone)
        return kept

    if kind == "dfc2018":
        mapping = config.split or default_split([TileId.parse(t) for t in stacks])
        split = keep(assign_splits(list(stacks.values()), dict(mapping)), True)
    else:
        blocks = config.blocks
        if blocks is None:
            raise bad_param("preprocess.blocks", None, "block_size_m, buffer_m, fractions, seed")
        if blocks.buffer_m < config.patch_size_m:
            raise bad_param(
                "preprocess.blocks.buffer_m",
                blocks.buffer_m,
                f">= patch_size_m ({config.patch_size_m})",
            )
        fractions = {str(k): v for k, v in blocks.fractions.items()}
        split = []
        for stack in stacks.values():
            split += split_into_blocks(
                stack, blocks.block_size_m, blocks.buffer_m, fractions, blocks.seed,
                keep=lambda b: keep(b, False),
            )  # fmt: skip
    report = coverage_report(split, dropped, size, max_nodata)
    minimums = {str(k): v for k, v in config.coverage.min_patches_per_split.items()}
    require_split_patches(report["usable_patches"], minimums, len(dropped), kind != "dfc2018")
    return {s.name: s for s in split}, report


def normalisation_stats(
    stacks: Mapping[str, TileStack], config: PreprocessConfig
) -> NormalisationStats:
    """Elevation scaling statistics from the training split only."""
    train = [s for s in stacks.values() if s.split == "train"]
    return compute_normalisation(
        train, config.normalisation, height_range=config.relative_height_range_m
    )


def patch_indexes(
    stacks: Mapping[str, TileStack], config: PreprocessConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training index (``train_stride_m``) and the non-overlapping evaluation index."""
    size, max_nodata = config.patch_size_m, config.max_nodata_fraction
    train = patch_index(list(stacks.values()), size, config.train_stride_m, max_nodata)
    eval_stride = config.eval_stride_m or size
    evaluation = patch_index(list(stacks.values()), size, eval_stride, max_nodata)
    log.info("preprocess: %d training windows, %d evaluation patches", len(train), len(evaluation))
    return train, evaluation


def prepare_scene(
    rasters: Mapping[str, GeoRaster], manifest: Mapping[str, Any], config: PreprocessConfig
) -> PreparedScene:
    """align -> split -> statistics -> patch indexes, as the preprocess pipeline runs them."""
    aligned = align_tiles(rasters, list(manifest["tiles"]), config)
    stacks, _ = split_tiles(aligned, str(manifest["kind"]), config)
    train_index, eval_index = patch_indexes(stacks, config)
    return PreparedScene(stacks, normalisation_stats(stacks, config), train_index, eval_index)
