"""``kedro run --pipelines=evaluate``: trained model -> metrics, report and figures."""

from kedro.pipeline import Pipeline

from croco_pipeline.pipelines.utils import wire

from .nodes import evaluate_model, make_figures

#: what both nodes read first: the model, the tiles, their evaluation grid and statistics
MODEL_AND_TILES = "croco_model aligned_stacks eval_patch_index normalisation_stats"
METRICS = "metrics evaluation_metrics evaluation_report retrieval_records"
FIGURES = "heatmap_figure heatmap_geotiffs retrieval_map failure_gallery"


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            wire(evaluate_model, f"{MODEL_AND_TILES} preprocess_report params:evaluate", METRICS),
            wire(make_figures, f"{MODEL_AND_TILES} retrieval_records params:evaluate", FIGURES),
        ]
    )
