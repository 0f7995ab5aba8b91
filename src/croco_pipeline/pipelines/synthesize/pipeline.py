"""``kedro run --pipelines=synthesize``: write the synthetic DFC2018 release into ``raw_source``.

The pipeline registry puts this node in front of ``ingest`` too: ingest reads ``scene_source``, the
handle this node passes on once the release is in place.
"""

from kedro.pipeline import Pipeline, node

from .nodes import synthesize_release


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                synthesize_release,
                inputs=["params:synthetic", "raw_source"],
                outputs="scene_source",
                name="synthesize_release",
            )
        ]
    )
