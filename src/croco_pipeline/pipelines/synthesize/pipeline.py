"""``kedro run --pipelines=synthesize``: write the synthetic DFC2018 release into ``raw_source``.

The pipeline registry puts this node in front of ``ingest`` too: ingest reads ``scene_source``, the
handle this node passes on once the release is in place.
"""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import synthesize_release


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline([wire(synthesize_release, "params:synthetic raw_source", "scene_source")])
