"""``kedro run --pipelines=train``: aligned stacks + patch index -> trained dual encoder."""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import train_model

INPUTS = "aligned_stacks train_patch_index eval_patch_index normalisation_stats params:train"
OUTPUTS = "croco_model training_metrics training_history"


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline([wire(train_model, INPUTS, OUTPUTS)])
