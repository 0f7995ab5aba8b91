"""``kedro run --pipelines=localize_eval``: localisations + truth -> metrics, table, figures."""

from kedro.pipeline import Pipeline, node

from .nodes import baseline_localisations, localisation_evaluation


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                baseline_localisations,
                inputs=[
                    "localisation_queries",
                    "localisation_map",
                    "aligned_stacks",
                    "map_ortho",
                    "normalisation_stats",
                    "params:localize",
                    "params:localize_eval",
                ],
                outputs="baseline_localisations",
                name="baseline_localisations",
            ),
            node(
                localisation_evaluation,
                inputs=[
                    "localisations",
                    "baseline_localisations",
                    "tile_splits",
                    "aligned_stacks",
                    "localisation_map",
                    "map_ortho",
                    "params:localize_eval",
                ],
                outputs=[
                    "localisation_metrics",
                    "localisation_eval_metrics",
                    "localisation_report",
                    "localisation_error_map",
                    "localisation_error_cdf",
                ],
                name="localisation_evaluation",
            ),
        ]
    )
