"""``kedro run --pipelines=train``: aligned stacks + patch index -> trained dual encoder."""

from kedro.pipeline import Pipeline, node

from .nodes import train_model


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                train_model,
                inputs=[
                    "aligned_stacks",
                    "train_patch_index",
                    "eval_patch_index",
                    "normalisation_stats",
                    "params:train",
                ],
                outputs=["croco_model", "training_metrics", "training_history"],
                name="train_model",
            )
        ]
    )
