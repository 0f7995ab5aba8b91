"""``kedro run --pipelines=ingest``: DFC2018 tiles or a user's raster pair -> ``ingested_rasters``.

``scene_source`` is the ``synthesize`` node's output; the registry runs that node before this one.
"""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import ingest_source


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [wire(ingest_source, "scene_source params:preprocess", "ingested_rasters ingest_manifest")]
    )
