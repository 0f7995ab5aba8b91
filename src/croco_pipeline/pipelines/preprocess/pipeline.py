"""``kedro run --pipelines=preprocess``: ingested rasters -> aligned stacks, splits, stats, patch indexes."""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import align_tiles, normalisation_stats, patch_indexes, split_tiles

ALIGN_INPUTS = "ingested_rasters ingest_manifest exclusion_mask params:preprocess"
SPLIT_INPUTS = "aligned_tiles ingest_manifest params:preprocess"
STACK_INPUTS = "aligned_stacks params:preprocess"


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            wire(align_tiles, ALIGN_INPUTS, "aligned_tiles"),
            wire(split_tiles, SPLIT_INPUTS, "aligned_stacks tile_splits preprocess_report"),
            wire(normalisation_stats, STACK_INPUTS, "normalisation_stats"),
            wire(patch_indexes, STACK_INPUTS, "train_patch_index eval_patch_index"),
        ]
    )
