"""``kedro run --pipelines=ingest``: DFC2018 tiles or a user's raster pair -> ``ingested_rasters``.

``scene_source`` is the ``synthesize`` node's output; the registry runs that node before this one.
"""

from kedro.pipeline import Pipeline, node

from .nodes import ingest_source


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                ingest_source,
                inputs=["scene_source", "params:preprocess"],
                outputs=["ingested_rasters", "ingest_manifest"],
                name="ingest_source",
            )
        ]
    )
