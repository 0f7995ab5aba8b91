"""Nodes of the ``preprocess`` pipeline: align, split, normalise and index patches.

Thin wiring of ``croco_pipeline.data.prepare``; each node checks ``params:preprocess`` once.
"""

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from croco_pipeline.data import prepare
from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.masks import ExclusionMask
from croco_pipeline.data.params import PreprocessConfig
from croco_pipeline.data.provenance import check_ingested
from croco_pipeline.data.stack import TileStack
from croco_pipeline.pipelines.utils import materialise

log = logging.getLogger(__name__)


def align_tiles(
    ingested_rasters: dict[str, Callable[[], GeoRaster]],
    ingest_manifest: dict[str, Any],
    exclusion_mask: ExclusionMask | None,
    preprocess: dict[str, Any],
) -> dict[str, TileStack]:
    """Put each tile's RGB and elevation channels on one grid at ``preprocess.gsd``; pixels the
    optional ``exclusion_mask`` rules out are marked invalid."""
    config = PreprocessConfig.from_params(preprocess)
    check_ingested(ingest_manifest, ingested_rasters, config.channels)
    rasters = materialise(ingested_rasters)
    return prepare.align_tiles(rasters, list(ingest_manifest["tiles"]), config, exclusion_mask)


def split_tiles(
    stacks: dict[str, TileStack], ingest_manifest: dict[str, Any], preprocess: dict[str, Any]
) -> tuple[dict[str, TileStack], dict[str, str], dict[str, Any]]:
    """Assign train/val/test: DFC tiles by the documented (or configured) split, a user scene by
    blocks; sparse tiles/blocks dropped and counted in the preprocess report."""
    config = PreprocessConfig.from_params(preprocess)
    split, report = prepare.split_tiles(stacks, str(ingest_manifest["kind"]), config)
    return split, {name: s.split for name, s in split.items()}, report


def normalisation_stats(
    aligned_stacks: dict[str, Callable[[], TileStack]], preprocess: dict[str, Any]
) -> dict[str, Any]:
    """Elevation scaling statistics from the training split only."""
    config = PreprocessConfig.from_params(preprocess)
    return prepare.normalisation_stats(materialise(aligned_stacks), config).to_dict()


def patch_indexes(
    aligned_stacks: dict[str, Callable[[], TileStack]], preprocess: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training index (``train_stride_m``) and the non-overlapping evaluation index."""
    config = PreprocessConfig.from_params(preprocess)
    return prepare.patch_indexes(materialise(aligned_stacks), config)
