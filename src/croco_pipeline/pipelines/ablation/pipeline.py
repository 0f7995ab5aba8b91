"""``kedro run --pipelines=ablation``: every configuration (one nested MLflow run each), then the
study tables and plots.

The configuration and study names live only in the parameters (``params:ablation``), read at run
time: building the pipeline reads no configuration, so ``--params`` and ``--env`` apply to the
grid itself.
"""

from kedro.pipeline import Pipeline, node

from .nodes import run_ablation, summarise_ablation


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                run_ablation,
                inputs=[
                    "ingested_rasters",
                    "ingest_manifest",
                    "params:preprocess",
                    "params:train",
                    "params:evaluate",
                    "params:ablation",
                ],
                outputs="ablation_runs",
                name="run_ablation",
                namespace="ablation",
            ),
            node(
                summarise_ablation,
                inputs=["params:ablation", "ablation_runs"],
                outputs=[
                    "ablation_results",
                    "ablation_tables",
                    "ablation_report",
                    "ablation_plots",
                ],
                name="summarise_ablation",
                namespace="ablation",
            ),
        ]
    )
