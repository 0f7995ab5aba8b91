"""``kedro run --pipelines=localize --params localize.queries=<folder>``: scans -> locations, figures."""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import localisation_figures, localize_queries

LOCALIZE_INPUTS = (
    "croco_model localisation_map aligned_stacks map_ortho normalisation_stats"
    " localisation_queries params:preprocess params:localize"
)
LOCALIZE_OUTPUTS = "localisations localisation_heatmaps"
FIGURE_INPUTS = "localisations localisation_map aligned_stacks map_ortho"
FIGURE_OUTPUTS = "localisation_footprints localisation_overview"


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            wire(localize_queries, LOCALIZE_INPUTS, LOCALIZE_OUTPUTS),
            wire(localisation_figures, FIGURE_INPUTS, FIGURE_OUTPUTS),
        ]
    )
