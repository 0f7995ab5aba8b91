"""``kedro run --pipelines=build_map``: trained model + ortho -> ``localisation_map`` (FAISS + centres)."""

from kedro.pipeline import Pipeline, node

from .nodes import build_localisation_map


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                build_localisation_map,
                inputs=[
                    "croco_model",
                    "aligned_stacks",
                    "map_ortho",
                    "normalisation_stats",
                    "params:preprocess",
                    "params:build_map",
                ],
                outputs="localisation_map",
                name="build_localisation_map",
            )
        ]
    )
