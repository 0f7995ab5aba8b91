"""Retrieval protocols in both directions, with chance levels: the paper's per-tile exact-match Top-k,
and city-scale localisation within a radius; plus the combined metrics dict and its report forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.data.windows import (
    summed_area_table,
    window_centres,
    window_fraction,
    window_grid,
)
from croco_pipeline.evaluation.params import ProtocolSettings
from croco_pipeline.evaluation.retrieval import (
    embed_elevation_queries,
    embed_rgb_gallery,
    topk_cosine,
)
from croco_pipeline.nesting import flatten

DIRECTIONS = ("elevation_to_rgb", "rgb_to_elevation")
PAPER_K = 5  # the paper reports Top-1 and Top-5


class EmbedOptions(TypedDict, total=False):
    """How ``paper_protocol`` embeds (its defaults where absent): for callers that pass them on."""

    device: str | torch.device
    batch_size: int


def _single_patch_size(index: pd.DataFrame) -> int:
    sizes = index["size_px"].unique()
    if len(sizes) != 1:
        raise ValueError(
            f"eval_index must hold one patch size (column size_px), got {sorted(sizes)}"
        )
    return int(sizes[0])


def _embed_both(
    model: Any, stack: TileStack, rows: np.ndarray, cols: np.ndarray, size: int, **kw: Any
) -> dict[str, np.ndarray]:
    """RGB and elevation embeddings of the same positions, keyed by modality."""
    stats = kw.pop("stats")
    return {
        "rgb": embed_rgb_gallery(model, stack, rows, cols, size, **kw),
        "elevation": embed_elevation_queries(model, stack, rows, cols, size, stats, **kw),
    }


def _modalities(direction: str) -> tuple[str, str]:
    query, gallery = direction.split("_to_")
    return query, gallery


def _rank_of_truth(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    """For query i whose truth is gallery i: how many gallery items score strictly higher."""
    qt = torch.nn.functional.normalize(torch.from_numpy(q).float(), dim=1)
    gt = torch.nn.functional.normalize(torch.from_numpy(g).float(), dim=1)
    block = max(1, 16_000_000 // len(gt))  # bounds the (block, G) score matrix
    ranks = []
    for s in range(0, len(qt), block):
        scores = qt[s : s + block] @ gt.T
        truth = scores[torch.arange(len(scores)), torch.arange(s, s + len(scores))]
        ranks.append((scores > truth[:, None]).sum(1).numpy())
    return np.concatenate(ranks)


def _paper_records(
    emb: dict[str, np.ndarray], tile_index: pd.DataFrame, tile: str, direction: str
) -> pd.DataFrame:
    query_mod, gallery_mod = _modalities(direction)
    q, g = emb[query_mod], emb[gallery_mod]
    n = len(g)
    scores, idx = topk_cosine(q, g, min(PAPER_K, n))
    truth = np.arange(n)
    rows, cols = tile_index["row"].to_numpy(), tile_index["col"].to_numpy()
    return pd.DataFrame(
        {
            "direction": direction,
            "tile": tile,
            "query_index": truth,
            "query_row": rows,
            "query_col": cols,
            "size_px": tile_index["size_px"].to_numpy(),
            "x": tile_index["x"].to_numpy(),
            "y": tile_index["y"].to_numpy(),
            "true_index": truth,
            "gallery_size": n,
            "top5_indices": list(idx),
            "top5_scores": list(scores),
            "top5_rows": list(rows[idx]),
            "top5_cols": list(cols[idx]),
            "rank": _rank_of_truth(q, g),
            "hit1": idx[:, 0] == truth,
            "hit5": (idx == truth[:, None]).any(axis=1),
        }
    )


def _paper_summary(records: pd.DataFrame) -> dict[str, float]:
    g = records["gallery_size"].to_numpy(dtype=float)
    return {
        "top1": float(records["hit1"].mean()),
        "top5": float(records["hit5"].mean()),
        "chance_top1": float(np.mean(1.0 / g)),
        "chance_top5": float(np.mean(np.minimum(PAPER_K, g) / g)),
        "n_queries": float(len(records)),
    }


def paper_protocol(
    model: Any,
    stacks: Sequence[TileStack],
    eval_index: pd.DataFrame,
    stats: NormalisationStats,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> dict[str, Any]:
    """The original code's protocol: per tile, gallery = that tile's patches, exact match only.

    Args:
        eval_index: non-overlapping patch grid (columns tile, row, col, size_px, x, y); only rows of
            the given stacks are used, in index order (gallery index = position within the tile).

    Returns:
        ``{direction: {top1, top5, chance_top1, chance_top5, n_queries}}`` for both directions, plus
        ``"records"``: one DataFrame row per query and direction (top-5, scores, rank of the truth).
    """
    parts = []
    for stack in stacks:
        tile_index = eval_index[eval_index["tile"] == stack.name].reset_index(drop=True)
        if tile_index.empty:
            continue
        size = _single_patch_size(tile_index)
        rows, cols = tile_index["row"].to_numpy(), tile_index["col"].to_numpy()
        emb = _embed_both(
            model, stack, rows, cols, size, stats=stats, batch_size=batch_size, device=device
        )
        parts += [_paper_records(emb, tile_index, stack.name, d) for d in DIRECTIONS]
    if not parts:
        names = [s.name for s in stacks]
        raise ValueError(f"eval_index has no patches for the given tiles {names}")
    records = pd.concat(parts, ignore_index=True)
    out: dict[str, Any] = {
        d: _paper_summary(records[records["direction"] == d]) for d in DIRECTIONS
    }
    out["records"] = records
    return out


def sample_query_positions(
    stacks: Sequence[TileStack], size: int, n: int, rng: np.random.Generator, min_valid: float
) -> pd.DataFrame:
    """``n`` random top-left positions (any pixel, so off the gallery grid) over all tiles, uniform
    by area, kept where the valid fraction of the window is at least ``min_valid``."""
    spans = np.array([(s.shape[0] - size + 1) * (s.shape[1] - size + 1) for s in stacks], float)
    if (spans <= 0).any():
        raise ValueError(f"patch size {size} px exceeds a tile of {[s.shape for s in stacks]}")
    tables = [summed_area_table(s.valid) for s in stacks]  # each candidate's fraction in O(1)
    found: list[pd.DataFrame] = []
    total = 0
    for _ in range(100):
        m = 4 * n
        tiles = rng.choice(len(stacks), size=m, p=spans / spans.sum())
        h = np.array([stacks[t].shape[0] for t in tiles])
        w = np.array([stacks[t].shape[1] for t in tiles])
        rows = (rng.random(m) * (h - size + 1)).astype(np.int64)
        cols = (rng.random(m) * (w - size + 1)).astype(np.int64)
        frac = np.empty(m)
        for t in np.unique(tiles):
            at = tiles == t
            frac[at] = window_fraction(tables[t], rows[at], cols[at], size)
        keep = frac >= min_valid
        found.append(pd.DataFrame({"tile_pos": tiles, "row": rows, "col": cols})[keep])
        total += int(keep.sum())
        if total >= n:
            return pd.concat(found, ignore_index=True).iloc[:n]
    raise ValueError(f"fewer than {n} query windows reach min_valid_fraction={min_valid}")


def _localise(
    q: np.ndarray,
    g: np.ndarray,
    q_xy: np.ndarray,
    g_xy: np.ndarray,
    ks: Sequence[int],
    radii: Sequence[float],
    chunk_size: int,
) -> dict[str, float]:
    _, idx = topk_cosine(q, g, min(max(ks), len(g)), chunk_size=chunk_size)
    dist = np.linalg.norm(g_xy[idx] - q_xy[:, None, :], axis=2)  # (Q, kmax) metres
    tree = cKDTree(g_xy)
    out: dict[str, float] = {}
    for r in radii:
        frac_near = tree.query_ball_point(q_xy, r, return_length=True) / len(g)
        for k in ks:
            key = f"top{k}_within_{r:g}m"
            out[key] = float((dist[:, :k].min(axis=1) <= r).mean())
            out[f"chance_{key}"] = float(np.clip(k * frac_near, 0.0, 1.0).mean())
    out["median_error_m"] = float(np.median(dist[:, 0]))
    out["p90_error_m"] = float(np.percentile(dist[:, 0], 90))
    out["n_queries"] = float(len(q))
    out["gallery_size"] = float(len(g))
    return out


def localisation_protocol(
    model: Any,
    stacks: Sequence[TileStack],
    stats: NormalisationStats,
    stride_m: float,
    patch_size_px: int,
    radii_m: Sequence[float] | None = None,
    ks: Sequence[int] = (1, 5, 10),
    n_queries: int = 500,
    seed: int = 0,
    min_valid_fraction: float = 0.9,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    chunk_size: int = 32768,
) -> dict[str, dict[str, float]]:
    """Localise off-grid queries in a gallery cut at ``stride_m`` over all tiles pooled (one CRS).

    A hit for top-k within r: any of the k best gallery centres lies within r metres of the query's
    true centre. Chance: k times the fraction of the gallery within r of the query, clipped to 1.

    Returns:
        ``{direction: {top{k}_within_{r}m, chance_..., median_error_m, p90_error_m, n_queries,
        gallery_size}}`` for both directions.
    """
    if not stacks:
        raise ValueError("localisation_protocol needs at least one test tile in stacks")
    stride_px = round(stride_m / stacks[0].gsd)
    if stride_px < 1:
        raise ValueError(f"stride_m={stride_m} is below the pixel size {stacks[0].gsd} m")
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    radii = tuple(radii_m) if radii_m is not None else (stride_m, 2 * stride_m)
    kw: dict[str, Any] = {"stats": stats, "batch_size": batch_size, "device": device}
    gallery: dict[str, list[np.ndarray]] = {"rgb": [], "elevation": [], "xy": []}
    for stack in stacks:
        rows, cols = window_grid(stack.shape, patch_size_px, stride_px)
        for mod, e in _embed_both(model, stack, rows, cols, patch_size_px, **kw).items():
            gallery[mod].append(e)
        xy = window_centres(stack.transform, rows, cols, patch_size_px)
        gallery["xy"].append(np.column_stack(xy))
    pos = sample_query_positions(
        stacks, patch_size_px, n_queries, np.random.default_rng(seed), min_valid_fraction
    )
    queries: dict[str, np.ndarray] = {}
    q_xy = np.empty((len(pos), 2))
    tile_pos, all_rows, all_cols = (pos[c].to_numpy() for c in ("tile_pos", "row", "col"))
    for t in np.unique(tile_pos):
        stack, at = stacks[int(t)], np.flatnonzero(tile_pos == t)
        rows, cols = all_rows[at], all_cols[at]
        for mod, e in _embed_both(model, stack, rows, cols, patch_size_px, **kw).items():
            queries.setdefault(mod, np.empty((len(pos), e.shape[1]), np.float32))[at] = e
        q_xy[at] = np.column_stack(window_centres(stack.transform, rows, cols, patch_size_px))
    g_xy = np.concatenate(gallery["xy"])
    out = {}
    for d in DIRECTIONS:
        qm, gm = _modalities(d)
        g = np.concatenate(gallery[gm])
        out[d] = _localise(queries[qm], g, q_xy, g_xy, ks, radii, chunk_size)
    return out


def evaluate_all(
    model: Any,
    baseline: Any,
    stacks: Sequence[TileStack],
    eval_index: pd.DataFrame,
    stats: NormalisationStats,
    settings: ProtocolSettings | None = None,
    device: str | torch.device = "cpu",
    return_records: bool = False,
    localisation_stacks: Sequence[TileStack] | None = None,
) -> dict[str, Any] | tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Both protocols for the learned model and the classical baseline, same queries for both.

    ``settings`` (default: ``ProtocolSettings()``) holds strides, radii, k values, queries, seed,
    minimum valid fraction and batch size; ``EvaluateConfig`` (the ``evaluate`` parameters) is one.

    ``localisation_stacks`` (default: ``stacks``) is the area the localisation galleries cover,
    e.g. cropped tiles where embedding the whole test area at a 2 m stride would take too long.

    Both models must already sit on ``device``; modules are switched to eval mode here.

    Returns:
        ``{"model"|"baseline": {"paper": {direction: ...}, "localisation": {"stride_<s>m":
        {direction: ...}}}}``; with ``return_records``, also ``{"model"|"baseline": paper records}``.
    """
    settings = settings or ProtocolSettings()
    size = _single_patch_size(eval_index)
    # every ProtocolSettings field but the strides is a localisation_protocol argument of that name
    loc_settings = settings.model_dump(include=set(ProtocolSettings.model_fields) - {"strides_m"})
    metrics: dict[str, Any] = {}
    records: dict[str, pd.DataFrame] = {}
    for name, m in (("model", model), ("baseline", baseline)):
        if isinstance(m, torch.nn.Module):
            m.eval()  # batch norm must use running statistics at evaluation
        paper = paper_protocol(m, stacks, eval_index, stats, device, settings.batch_size)
        records[name] = paper.pop("records")
        loc = {
            f"stride_{s:g}m": localisation_protocol(
                m, localisation_stacks or stacks, stats, s, size, device=device, **loc_settings
            )
            for s in settings.strides_m
        }
        metrics[name] = {"paper": paper, "localisation": loc}
    return (metrics, records) if return_records else metrics


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics to ``{"model/paper/elevation_to_rgb/top1": 0.4, ...}`` (numbers only)."""
    return {
        name: float(value)
        for name, value in flatten(metrics, prefix, sep="/").items()
        if isinstance(value, int | float | np.number) and not isinstance(value, bool)
    }


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def markdown_report(metrics: dict[str, Any]) -> str:
    """A Markdown table, learned vs classical side by side, each with its chance level."""
    lines = [
        "| protocol | direction | metric | learned | chance | classical | chance |",
        "|---|---|---|---|---|---|---|",
    ]
    model, base = metrics["model"], metrics.get("baseline", {})
    sections = [("paper", model["paper"], base.get("paper", {}))]
    for stride, res in model["localisation"].items():
        other = base.get("localisation", {}).get(stride, {})
        sections.append((f"localisation {stride}", res, other))
    for label, res, other in sections:
        for direction, values in res.items():
            theirs = other.get(direction, {})
            for key, v in values.items():
                if key.startswith("chance_") or key in ("n_queries", "gallery_size"):
                    continue
                cells = [v, values.get(f"chance_{key}"), theirs.get(key)]
                cells.append(theirs.get(f"chance_{key}"))
                lines.append(
                    f"| {label} | {direction} | {key} | " + " | ".join(map(_fmt, cells)) + " |"
                )
            lines.append(
                f"| {label} | {direction} | n_queries | {values.get('n_queries', 0):.0f} | | | |"
            )
    return "\n".join(lines) + "\n"
