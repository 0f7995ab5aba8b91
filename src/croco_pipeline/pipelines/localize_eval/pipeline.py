"""``kedro run --pipelines=localize_eval``: localisations + truth -> metrics, table, figures."""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import baseline_localisations, localisation_evaluation

BASELINE_INPUTS = (
    "localisation_queries localisation_map aligned_stacks map_ortho normalisation_stats"
    " params:localize params:localize_eval"
)
EVALUATION_INPUTS = (
    "localisations baseline_localisations tile_splits aligned_stacks localisation_map map_ortho"
    " params:localize_eval"
)
EVALUATION_OUTPUTS = (
    "localisation_metrics localisation_eval_metrics localisation_report localisation_error_map"
    " localisation_error_cdf"
)


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            wire(baseline_localisations, BASELINE_INPUTS, "baseline_localisations"),
            wire(localisation_evaluation, EVALUATION_INPUTS, EVALUATION_OUTPUTS),
        ]
    )
