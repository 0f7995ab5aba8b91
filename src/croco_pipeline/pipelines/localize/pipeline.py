"""``kedro run --pipelines=localize --params localize.queries=<folder>``: scans -> locations, figures."""

from kedro.pipeline import Pipeline, node

from .nodes import localisation_figures, localize_queries


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                localize_queries,
                inputs=[
                    "croco_model",
                    "localisation_map",
                    "aligned_stacks",
                    "map_ortho",
                    "normalisation_stats",
                    "localisation_queries",
                    "params:preprocess",
                    "params:localize",
                ],
                outputs=["localisations", "localisation_heatmaps"],
                name="localize_queries",
            ),
            node(
                localisation_figures,
                inputs=["localisations", "localisation_map", "aligned_stacks", "map_ortho"],
                outputs=["localisation_footprints", "localisation_overview"],
                name="localisation_figures",
            ),
        ]
    )
