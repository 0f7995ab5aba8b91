"""``kedro run --pipelines=evaluate``: trained model -> metrics, report and figures."""

from kedro.pipeline import Pipeline, node

from .nodes import evaluate_model, make_figures


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                evaluate_model,
                inputs=[
                    "croco_model",
                    "aligned_stacks",
                    "eval_patch_index",
                    "normalisation_stats",
                    "preprocess_report",
                    "params:evaluate",
                ],
                outputs=["metrics", "evaluation_metrics", "evaluation_report", "retrieval_records"],
                name="evaluate_model",
            ),
            node(
                make_figures,
                inputs=[
                    "croco_model",
                    "aligned_stacks",
                    "eval_patch_index",
                    "normalisation_stats",
                    "retrieval_records",
                    "params:evaluate",
                ],
                outputs=["heatmap_figure", "heatmap_geotiffs", "retrieval_map", "failure_gallery"],
                name="make_figures",
            ),
        ]
    )
