"""Nodes of the ``evaluate`` pipeline: both protocols for the model and the classical baseline."""

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.evaluation.figures import (
    failure_gallery_figure,
    heatmap_figure,
    heatmap_geotiff,
    retrieval_map_figure,
    stack_figures,
)
from croco_pipeline.evaluation.generalisation import generalisation_markdown
from croco_pipeline.evaluation.params import EvaluateConfig
from croco_pipeline.evaluation.protocols import flatten_metrics, markdown_report
from croco_pipeline.evaluation.retrieval import (
    embed_elevation_queries,
    embed_rgb_gallery,
    similarity_to_gallery,
)
from croco_pipeline.experiments.runner import evaluate_from_params
from croco_pipeline.model.runtime import load_model, resolve_device
from croco_pipeline.pipelines.utils import materialise

log = logging.getLogger(__name__)

#: what metrics.json repeats from the preprocess report
COVERAGE_KEYS = ("dropped_tiles", "dropped", "kept_tiles", "usable_patches")


def evaluate_model(
    croco_model: dict[str, Any],
    aligned_stacks: dict[str, Callable[[], TileStack]],
    eval_patch_index: pd.DataFrame,
    normalisation_stats: dict[str, Any],
    preprocess_report: dict[str, Any],
    evaluate: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], str, pd.DataFrame]:
    """Paper and localisation protocols on the test split, learned model beside the baseline.

    Returns:
        metrics.json content, the same numbers flattened for MLflow, a markdown report, and the
        paper-protocol records of every query (model and baseline) for the figures.
    """
    metrics, records = evaluate_from_params(
        croco_model,
        materialise(aligned_stacks),
        eval_patch_index,
        NormalisationStats.from_dict(normalisation_stats),
        EvaluateConfig.from_params(evaluate),
    )
    flat = {k: {"value": v, "step": 0} for k, v in flatten_metrics(metrics).items()}
    # headline names: the model's elevation -> RGB figures under the paper protocol
    for k in ("top1", "top5"):
        flat[f"paper/{k}"] = {"value": metrics["model"]["paper"]["elevation_to_rgb"][k], "step": 0}
    # sparse coverage: the tiles/blocks preprocessing dropped and the patches each split kept
    metrics["coverage"] = {k: preprocess_report.get(k) for k in COVERAGE_KEYS}
    flat["coverage/dropped_tiles"] = {"value": preprocess_report.get("dropped_tiles", 0), "step": 0}
    table = pd.concat([r.assign(method=name) for name, r in records.items()], ignore_index=True)
    report = markdown_report(metrics)
    if "generalisation" in metrics:
        report += "\nGeneralisation (paper protocol per split; baseline sweep on val tiles)\n\n"
        report += generalisation_markdown(metrics)
    log.info("evaluate:\n%s", report)
    return metrics, flat, report, table


def make_figures(
    croco_model: dict[str, Any],
    aligned_stacks: dict[str, Callable[[], TileStack]],
    eval_patch_index: pd.DataFrame,
    normalisation_stats: dict[str, Any],
    retrieval_records: pd.DataFrame,
    evaluate: dict[str, Any],
) -> tuple[Figure, dict[str, GeoRaster], Figure, Figure]:
    """The paper's figures: similarity heatmaps (Fig. 5, also as GeoTIFFs), the map of correct and
    wrong retrievals (Fig. 6/7) and a gallery of failures with their top-5 (Fig. 8)."""
    stacks = {n: s for n, s in materialise(aligned_stacks).items() if s.split == "test"}
    stats = NormalisationStats.from_dict(normalisation_stats)
    config = EvaluateConfig.from_params(evaluate)
    device = resolve_device(config.device, "evaluate.device")
    model = load_model(croco_model).to(device)
    records = retrieval_records[
        (retrieval_records["method"] == "model")
        & (retrieval_records["direction"] == "elevation_to_rgb")
    ]
    first = sorted(stacks)[0]
    stack = stacks[first]
    grid = eval_patch_index[eval_patch_index["tile"] == first].reset_index(drop=True)
    size = int(grid["size_px"].iloc[0])
    rows, cols = grid["row"].to_numpy(), grid["col"].to_numpy()
    gallery = embed_rgb_gallery(model, stack, rows, cols, size, device=device)
    picks = np.linspace(0, len(grid) - 1, config.figures.n_heatmaps).round().astype(int)
    queries = embed_elevation_queries(
        model, stack, rows[picks], cols[picks], size, stats, device=device
    )
    heatmaps, geotiffs = [], {}
    for q, true_index in zip(queries, picks, strict=True):
        sims = similarity_to_gallery(q, gallery)
        top5 = np.argsort(-sims)[:5]
        heatmaps.append(heatmap_figure(stack, grid, sims, int(true_index), top5.tolist()))
        geotiffs[f"{first}_patch{int(true_index):04d}"] = heatmap_geotiff(stack, grid, sims)
    ordered = list(stacks.values())
    n_fail = config.figures.n_failures
    return (
        stack_figures(heatmaps),
        geotiffs,
        retrieval_map_figure(ordered, records),
        failure_gallery_figure(ordered, records, n=n_fail),
    )
