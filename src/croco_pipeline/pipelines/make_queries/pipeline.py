"""``kedro run --pipelines=make_queries``: a LAS/LAZ source -> a query folder with ``index.json``."""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import make_queries

INPUTS = "query_lidar_source tile_splits aligned_stacks params:make_queries"


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline([wire(make_queries, INPUTS, "localisation_queries")])
