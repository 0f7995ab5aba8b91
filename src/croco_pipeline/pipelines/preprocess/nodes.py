"""Nodes of the ``preprocess`` pipeline: align, split, normalise and index patches."""

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from croco_pipeline.data.align import align_scene
from croco_pipeline.data.dfc2018 import TileId, default_split
from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.patches import compute_normalisation, patch_index
from croco_pipeline.data.provenance import check_ingested
from croco_pipeline.data.splits import assign_splits, require_nonempty, split_into_blocks
from croco_pipeline.data.stack import TileStack
from croco_pipeline.errors import bad_param
from croco_pipeline.pipelines.utils import materialise

log = logging.getLogger(__name__)


def align_tiles(
    ingested_rasters: dict[str, Callable[[], GeoRaster]],
    ingest_manifest: dict[str, Any],
    preprocess: dict[str, Any],
) -> dict[str, TileStack]:
    """Put each tile's RGB and elevation channels on one grid at ``preprocess.gsd``."""
    check_ingested(ingest_manifest, ingested_rasters, preprocess["channels"])
    rasters = materialise(ingested_rasters)
    stacks = {}
    tiles = ingest_manifest["tiles"]
    for i, tile in enumerate(tiles, start=1):
        log.info("preprocess: aligning %s (%d/%d)", tile, i, len(tiles))
        prefix = f"{tile}/"
        mine = {k[len(prefix) :]: v for k, v in rasters.items() if k.startswith(prefix)}
        stacks[tile] = align_scene(
            tile, mine, tuple(preprocess["channels"]), float(preprocess["gsd"])
        )
    return stacks


def split_tiles(
    stacks: dict[str, TileStack], ingest_manifest: dict[str, Any], preprocess: dict[str, Any]
) -> tuple[dict[str, TileStack], dict[str, str]]:
    """Assign train/val/test: DFC tiles by the documented (or configured) split, a user scene by blocks."""
    if ingest_manifest["kind"] == "dfc2018":
        mapping = preprocess.get("split") or default_split([TileId.parse(t) for t in stacks])
        split = assign_splits(list(stacks.values()), dict(mapping))
    else:
        blocks = preprocess["blocks"]
        patch_m = float(preprocess["patch_size_m"])
        if float(blocks["buffer_m"]) < patch_m:
            raise bad_param(
                "preprocess.blocks.buffer_m", blocks["buffer_m"], f">= patch_size_m ({patch_m})"
            )
        split = []
        for stack in stacks.values():
            split += split_into_blocks(
                stack,
                float(blocks["block_size_m"]),
                float(blocks["buffer_m"]),
                dict(blocks["fractions"]),
                int(blocks["seed"]),
            )
    for name in ("train", "val", "test"):
        require_nonempty(split, name)
    return {s.name: s for s in split}, {s.name: s.split for s in split}


def normalisation_stats(
    aligned_stacks: dict[str, Callable[[], TileStack]], preprocess: dict[str, Any]
) -> dict[str, Any]:
    """Elevation scaling statistics from the training split only."""
    train = [s for s in materialise(aligned_stacks).values() if s.split == "train"]
    stats = compute_normalisation(
        train,
        preprocess["normalisation"],
        height_range=float(preprocess["relative_height_range_m"]),
    )
    return stats.to_dict()


def patch_indexes(
    aligned_stacks: dict[str, Callable[[], TileStack]], preprocess: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training index (``train_stride_m``) and the non-overlapping evaluation index."""
    stacks = list(materialise(aligned_stacks).values())
    size = float(preprocess["patch_size_m"])
    max_nodata = float(preprocess["max_nodata_fraction"])
    train = patch_index(stacks, size, float(preprocess["train_stride_m"]), max_nodata)
    eval_stride = preprocess.get("eval_stride_m") or size
    evaluation = patch_index(stacks, size, float(eval_stride), max_nodata)
    log.info("preprocess: %d training windows, %d evaluation patches", len(train), len(evaluation))
    return train, evaluation
