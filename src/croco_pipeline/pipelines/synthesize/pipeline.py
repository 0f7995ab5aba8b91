"""``kedro run --pipelines=synthesize``: write the synthetic DFC2018 release into ``raw_source``."""

from kedro.pipeline import Pipeline, node

from .nodes import plan_synthetic_release


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                plan_synthetic_release,
                inputs="params:synthetic",
                outputs="raw_source",
                name="synthesize_release",
            )
        ]
    )
