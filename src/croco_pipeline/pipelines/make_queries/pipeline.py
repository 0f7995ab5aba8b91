"""``kedro run --pipelines=make_queries``: a LAS/LAZ source -> a query folder with ``index.json``."""

from kedro.pipeline import Pipeline, node

from .nodes import make_queries


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                make_queries,
                inputs=[
                    "query_lidar_source",
                    "tile_splits",
                    "aligned_stacks",
                    "params:make_queries",
                ],
                outputs="localisation_queries",
                name="make_queries",
            )
        ]
    )
