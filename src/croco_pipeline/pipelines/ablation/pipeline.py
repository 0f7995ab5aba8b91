"""``kedro run --pipelines=ablation``: every configuration (one nested MLflow run each), then the
study tables and plots.

The configuration and study names live only in the parameters (``params:ablation``), read at run
time: building the pipeline reads no configuration, so ``--params`` and ``--env`` apply to the
grid itself.
"""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import run_ablation, summarise_ablation

#: the ingested rasters and every section a configuration overrides, then the study itself
RUN_INPUTS = (
    "ingested_rasters ingest_manifest params:preprocess params:train params:evaluate"
    " params:ablation"
)
TABLES = "ablation_results ablation_tables ablation_report ablation_plots"


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            wire(run_ablation, RUN_INPUTS, "ablation_runs", namespace="ablation"),
            wire(summarise_ablation, "params:ablation ablation_runs", TABLES, namespace="ablation"),
        ]
    )
