"""``kedro run --pipelines=build_map``: trained model + ortho -> ``localisation_map`` (FAISS + centres)."""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import build_localisation_map

INPUTS = (
    "croco_model aligned_stacks map_ortho normalisation_stats params:preprocess params:build_map"
)


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline([wire(build_localisation_map, INPUTS, "localisation_map")])
