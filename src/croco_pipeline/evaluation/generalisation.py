"""Generalisation as first-class metrics: the paper protocol on training, validation and test tiles,
the train-test gap, and the classical baseline at its own best setting beside the configured one.

A model that memorises its training ground scores far higher on training tiles than on unseen ones;
the gap (and the test/train ratio) says so in every evaluation. README claims compare the model
with the stronger of the two baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd
import torch

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.evaluation.baseline_sweep import (
    best_setting,
    score_setting,
    sweep_baseline,
)
from croco_pipeline.evaluation.params import BaselineSweepParams
from croco_pipeline.evaluation.protocols import DIRECTIONS, EmbedOptions, paper_protocol

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class EvalTiles:
    """What every protocol run of one evaluation shares: the tiles, their patch grid
    (``eval_index``) and statistics, and how to embed (``paper_protocol``'s arguments after the
    model, in its order)."""

    stacks: Sequence[TileStack]
    eval_index: pd.DataFrame
    stats: NormalisationStats
    device: str | torch.device = "cpu"
    batch_size: int = 256

    @property
    def embed(self) -> EmbedOptions:
        return {"device": self.device, "batch_size": self.batch_size}

    def split(self, name: str) -> EvalTiles:
        """The tiles of split ``name`` and their grid rows (same statistics and embedding)."""
        index = self.eval_index[self.eval_index["split"] == name]
        return replace(self, stacks=[s for s in self.stacks if s.split == name], eval_index=index)


def paper_by_split(model: Any, *tiles: Any, **kw: Any) -> dict[str, dict[str, dict[str, float]]]:
    """``{split: {direction: {top1, top5, chance_top1, chance_top5, n_queries}}}`` for every split
    that has tiles and grid patches (each tile its own gallery, as the paper protocol).

    ``tiles`` and ``kw`` are :class:`EvalTiles`'s fields, as ``paper_protocol`` takes them after the
    model: ``stacks, eval_index, stats[, device, batch_size]``.
    """
    return split_papers(model, EvalTiles(*tiles, **kw))


def split_papers(model: Any, tiles: EvalTiles) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`paper_by_split` on tiles already bundled."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    out = {}
    for split in SPLITS:
        mine = tiles.split(split)
        if not mine.stacks or mine.eval_index.empty:
            continue
        result = paper_protocol(model, mine.stacks, mine.eval_index, mine.stats, **mine.embed)
        out[split] = {d: result[d] for d in DIRECTIONS}
    return out


def generalisation_gap(by_split: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    """Elevation -> RGB Top-1 differences and ratios between splits (the train-test gap first)."""
    top1 = {s: v["elevation_to_rgb"]["top1"] for s, v in by_split.items()}
    out: dict[str, float] = {}
    for other in ("test", "val"):
        if "train" in top1 and other in top1:
            out[f"top1_train_minus_{other}"] = top1["train"] - top1[other]
            ratio = top1[other] / top1["train"] if top1["train"] > 0 else float("nan")
            out[f"top1_{other}_over_train"] = ratio
    return out


def best_baseline(
    tiles: EvalTiles, params: BaselineSweepParams, elevation_channel: int = 0
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Sweep on the validation tiles, then the winner's paper protocol on the test tiles.

    Returns:
        ``{"setting": {...,"gsd_m", "patch_px"}, "val": {"top1", "top5"}, "paper": {direction:
        {...}}}`` and the sweep table (one row per setting, validation figures).
    """
    val, test = tiles.split("val"), tiles.split("test")
    table = sweep_baseline(
        val.stacks, val.eval_index, val.stats, params, elevation_channel, **val.embed
    )
    best = best_setting(table)
    row = table[
        (table["coarsen"] == best.coarsen)
        & (table["sigma_px"] == best.sigma_px)
        & (table["downsample"] == best.downsample)
        & (table["gradient"] == best.gradient)
    ].iloc[0]
    result = score_setting(best, test.stacks, test.eval_index, test.stats, **test.embed)
    assert result is not None  # it applied to the validation tiles' grid, built the same way
    setting = {**asdict(best), "gsd_m": float(row["gsd_m"]), "patch_px": int(row["patch_px"])}
    return {
        "setting": setting,
        "val": {"top1": float(row["top1"]), "top5": float(row["top5"])},
        "paper": {d: result[d] for d in DIRECTIONS},
    }, table


def generalisation_metrics(
    model: Any,
    baseline: Any,
    stacks: Sequence[TileStack],
    eval_index: pd.DataFrame,
    stats: NormalisationStats,
    sweep: BaselineSweepParams,
    elevation_channel: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """The metrics.json entries ``generalisation``, ``baseline_best`` (when the sweep is enabled)
    and ``comparison`` (the model's test Top-1 against the stronger baseline), and the sweep table.
    """
    tiles = EvalTiles(stacks, eval_index, stats, device, batch_size)
    out: dict[str, Any] = {"generalisation": {}}
    for name, m in (("model", model), ("baseline", baseline)):
        by_split = split_papers(m, tiles)
        out["generalisation"][name] = {"paper": by_split, "gap": generalisation_gap(by_split)}
    baselines = {"baseline": out["generalisation"]["baseline"]["paper"]["test"]}
    table = None
    if sweep.enabled:
        out["baseline_best"], table = best_baseline(tiles, sweep, elevation_channel)
        baselines["baseline_best"] = out["baseline_best"]["paper"]
    tops = {k: v["elevation_to_rgb"]["top1"] for k, v in baselines.items()}
    stronger = max(tops, key=lambda k: tops[k])
    model_top1 = out["generalisation"]["model"]["paper"]["test"]["elevation_to_rgb"]["top1"]
    out["comparison"] = {
        "stronger_baseline": stronger,
        "stronger_baseline_top1": tops[stronger],
        "model_top1": model_top1,
        "model_over_stronger_baseline": model_top1 / tops[stronger]
        if tops[stronger] > 0
        else float("inf"),
    }
    return out, table


def generalisation_markdown(metrics: dict[str, Any]) -> str:
    """Per-split Top-1/Top-5 (elevation -> RGB) of the model and the baseline, the gap, and the
    baseline at its own best setting."""
    lines = [
        "| paper protocol, elevation -> RGB | learned Top-1 | Top-5 | classical Top-1 | Top-5 | n |",
        "|---|---|---|---|---|---|",
    ]
    gen = metrics["generalisation"]
    for split, v in gen["model"]["paper"].items():
        m, b = v["elevation_to_rgb"], gen["baseline"]["paper"][split]["elevation_to_rgb"]
        lines.append(
            f"| {split} tiles | {m['top1']:.3f} | {m['top5']:.3f} | {b['top1']:.3f} "
            f"| {b['top5']:.3f} | {m['n_queries']:.0f} |"
        )
    for key, value in gen["model"]["gap"].items():
        lines.append(f"| learned {key} | {value:.3f} | | | | |")
    if "baseline_best" in metrics:
        best = metrics["baseline_best"]
        e2r, s = best["paper"]["elevation_to_rgb"], best["setting"]
        lines.append(
            f"| classical at its best setting (test; chosen on val: {s['gsd_m']:g} m, "
            f"{s['patch_px']} px, sigma {s['sigma_px']:g}, pool {s['downsample']}, "
            f"{s['gradient']}) | | | {e2r['top1']:.3f} | {e2r['top5']:.3f} | |"
        )
    c = metrics["comparison"]
    lines.append(
        f"| learned / stronger classical ({c['stronger_baseline']}) test Top-1 "
        f"| {c['model_over_stronger_baseline']:.2f}x | | | | |"
    )
    return "\n".join(lines) + "\n"
