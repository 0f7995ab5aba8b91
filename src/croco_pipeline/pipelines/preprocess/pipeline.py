"""``kedro run --pipelines=preprocess``: ingested rasters -> aligned stacks, splits, stats, patch indexes."""

from kedro.pipeline import Pipeline, node

from .nodes import align_tiles, normalisation_stats, patch_indexes, split_tiles


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                align_tiles,
                inputs=[
                    "ingested_rasters",
                    "ingest_manifest",
                    "exclusion_mask",
                    "params:preprocess",
                ],
                outputs="aligned_tiles",
                name="align_tiles",
            ),
            node(
                split_tiles,
                inputs=["aligned_tiles", "ingest_manifest", "params:preprocess"],
                outputs=["aligned_stacks", "tile_splits", "preprocess_report"],
                name="split_tiles",
            ),
            node(
                normalisation_stats,
                inputs=["aligned_stacks", "params:preprocess"],
                outputs="normalisation_stats",
                name="normalisation_stats",
            ),
            node(
                patch_indexes,
                inputs=["aligned_stacks", "params:preprocess"],
                outputs=["train_patch_index", "eval_patch_index"],
                name="patch_indexes",
            ),
        ]
    )
