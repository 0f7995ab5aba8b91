"""Nodes of the ``localize_eval`` pipeline (wiring only: the work is in ``croco_pipeline.localisation``)."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.evaluation.protocols import flatten_metrics
from croco_pipeline.localisation.baseline import localise_folder_baseline, prepare_baselines
from croco_pipeline.localisation.evaluation import (
    better_baseline,
    confidence_report,
    error_cdf_figure,
    error_map_figure,
    localisation_metrics,
    markdown_table,
    relief_breakdown,
    relief_table,
    row_splits,
)
from croco_pipeline.localisation.mapping import LocalisationMap
from croco_pipeline.localisation.ortho import open_ortho, overview
from croco_pipeline.localisation.params import LocalizeParams
from croco_pipeline.localisation.query_maker import stack_bounds
from croco_pipeline.localisation.query_params import LocalizeEvalParams
from croco_pipeline.pipelines.utils import materialise

log = logging.getLogger(__name__)


def baseline_localisations(
    localisation_queries: Path,
    localisation_map: LocalisationMap,
    aligned_stacks: dict[str, Callable[[], TileStack]],
    map_ortho: Path | None,
    normalisation_stats: dict[str, Any],
    localize: dict[str, Any],
    localize_eval: dict[str, Any],
) -> pd.DataFrame:
    """The classical baseline on the same queries (read and displaced alike): one row per scan and
    method (``whole_scan``: FFT gradient NCC of the whole scan; ``tiled``: the same tiling and voting)."""
    p = LocalizeEvalParams.from_params(localize_eval)
    params = LocalizeParams.from_params(localize)
    meta = localisation_map.metadata
    stacks = lambda: list(materialise(aligned_stacks).values())  # noqa: E731
    source = open_ortho(
        map_ortho, stacks, float(meta["gsd"]), meta["crs"], params.ortho_in_memory_max_px
    )
    maps = prepare_baselines(
        source, meta, p.baseline_whole_scan, p.baseline_tiled, p.baseline_min_overlap
    )
    rows = localise_folder_baseline(
        maps, localisation_queries, params, NormalisationStats.from_dict(normalisation_stats)
    )
    tables = [pd.DataFrame(r).assign(method=m) for m, r in rows.items()]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame({"method": []})


def localisation_evaluation(
    localisations: pd.DataFrame,
    baseline_localisations: pd.DataFrame,
    tile_splits: dict[str, str],
    aligned_stacks: dict[str, Callable[[], TileStack]],
    localisation_map: LocalisationMap,
    map_ortho: Path | None,
    localize_eval: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], str, Figure, Figure]:
    """Errors against truth for the model and the better baseline, per query kind and split."""
    p = LocalizeEvalParams.from_params(localize_eval)
    stacks = list(materialise(aligned_stacks).values())
    bounds = stack_bounds(stacks)
    tables = {"model": localisations}
    for method, table in baseline_localisations.groupby("method", sort=True):
        tables[f"baseline_{method}"] = table.drop(columns="method").reset_index(drop=True)
    splits = {name: row_splits(t, tile_splits, bounds) for name, t in tables.items()}
    metrics = localisation_metrics(tables, splits)
    variants = [n for n in tables if n.startswith("baseline_")]
    if variants:
        best = better_baseline(metrics, variants, split="val")
        metrics["baseline"], metrics["baseline_method"] = metrics[best], best
        metrics["by_split"]["baseline"] = metrics["by_split"][best]
        tables["baseline"] = tables[best]
    metrics["by_relief"] = {
        "flat_spread_m": p.flat_spread_m,
        "model": relief_breakdown(localisations, splits["model"], p.flat_spread_m),
    }
    metrics["confidence"] = confidence_report(
        localisations, splits["model"], p.wrong_m, p.flag_target, p.keep_target
    )
    _log_headline(metrics)
    mlflow = {f"localize/{k}": {"value": v, "step": 0} for k, v in flatten_metrics(metrics).items()}
    meta = localisation_map.metadata
    source = open_ortho(map_ortho, lambda: stacks, float(meta["gsd"]), meta["crs"])
    image, transform = overview(source)
    shown: dict[str, pd.DataFrame] = {k: tables[k] for k in ("model", "baseline") if k in tables}
    report = _report(metrics)
    return (
        metrics,
        mlflow,
        report,
        error_map_figure(image, transform, shown),
        error_cdf_figure(shown),
    )


def _headline(metrics: dict[str, Any], method: str) -> tuple[str, dict[str, Any]]:
    by = metrics.get("by_split", {}).get(method, {})
    if "test" in by and by["test"]["single"]["n"]:
        return "test", by["test"]
    return "all", metrics[method]


def _log_headline(metrics: dict[str, Any]) -> None:
    for method in ("model", "baseline"):
        if method not in metrics:
            continue
        where, block = _headline(metrics, method)
        parts = [
            f"{kind} {block[kind]['within_8m']:.2f} (n={block[kind]['n']})"
            for kind in ("single", "track_2", "track_4", "track_8")
            if block[kind]["n"]
        ]
        log.info("localize: %s, %s queries: within 8 m: %s", method, where, ", ".join(parts))


def _report(metrics: dict[str, Any]) -> str:
    lines = ["# Localisation against truth", "", "All queries:", "", markdown_table(metrics)]
    for split, _ in sorted(metrics.get("by_split", {}).get("model", {}).items()):
        per = {
            m: metrics["by_split"][m][split]
            for m in ("model", "baseline")
            if split in metrics["by_split"].get(m, {})
        }
        lines += [f"Queries in {split} blocks/tiles:", "", markdown_table(per)]
    relief = metrics.get("by_relief", {})
    if relief.get("model"):
        lines += [
            "Model, flat ground apart (the scan's 10-90 % height spread; a height model holds "
            "little to match on flat ground):",
            "",
            relief_table(relief["model"], relief["flat_spread_m"]),
        ]
    if "baseline_method" in metrics:
        lines.append(
            f"Baseline: `{metrics['baseline_method']}` (the better variant on validation queries).\n"
        )
    c = metrics["confidence"]
    if c.get("threshold") is not None:
        lines.append(_confidence_line("Confidence", c))
    if "fitted" in c:
        f = c["fitted"]
        weights = ", ".join(f"{k}: {v:.2f}" for k, v in f["weights"].items())
        lines.append(_confidence_line("Refit on these queries", f))
        lines.append(
            f"(`localize.confidence` with that threshold at 0.5: bias {f['bias_at_half']:.2f}, "
            f"weights {{{weights}}})\n"
        )
    return "\n".join(lines)


def _confidence_line(what: str, c: dict[str, Any]) -> str:
    test = c.get("test", {})
    on_test = (
        f"; on test queries {_pct(test.get('flagged_wrong'))} / {_pct(test.get('kept_right'))}"
        if test
        else ""
    )
    fixes = "; ".join(
        f"{split} {_pct(r.get('flagged_wrong'))} / {_pct(r.get('kept_right'))} "
        f"({r['n_wrong']} wrong, {r['n_right']} right)"
        for split, r in c.get("per_fix", {}).items()
    )
    return (
        f"{what}: threshold {c['threshold']:.3f} (chosen on {c['chosen_on']} queries) flags "
        f"{_pct(c['flagged_wrong'])} of {c['n_wrong']} wrong fixes and keeps "
        f"{_pct(c['kept_right'])} of {c['n_right']} right ones (targets met: {c['meets_target']})"
        f"{on_test}."
        + (f" Counting a track once (flagged / kept): {fixes}." if fixes else "")
        + "\n"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"
