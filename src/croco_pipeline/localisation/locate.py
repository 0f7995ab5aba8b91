"""Locate one query raster on the map: tile, embed, search, vote, refine.

Only the query's heights and validity go in, never its coordinates: the answer is where the query's
top-left corner lies on the map, from which callers place any point given relative to that corner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from croco_pipeline.data.stack import NormalisationStats, normalise_elevation
from croco_pipeline.data.windows import cut_windows
from croco_pipeline.errors import CrocoInputError
from croco_pipeline.evaluation.retrieval import embed_patches, unit_rows
from croco_pipeline.localisation.confidence import (
    confidence,
    confidence_features,
    height_spread,
)
from croco_pipeline.localisation.mapping import LocalisationMap
from croco_pipeline.localisation.ortho import OrthoSource
from croco_pipeline.localisation.params import LocalizeParams, RerankParams
from croco_pipeline.localisation.refine import refine_embedding, refine_gradient_ncc
from croco_pipeline.localisation.voting import VoteGrid, dense_vote, query_tiles, vote

Tiles = tuple[np.ndarray, np.ndarray]  # query tile top-left rows, cols (query px)


@dataclass
class Fix:
    """Where the query's top-left corner lies on the map (map CRS), and how sure we are."""

    x: float
    y: float
    score: float
    confidence: float
    features: dict[str, float]
    candidates: list[tuple[float, float, float]]  # top-left (x, y) and vote mass, chosen first
    checks: list[float]  # each candidate's gradient NCC (NaN where not checked)
    votes: VoteGrid
    n_tiles: int
    refined: list[float]  # each candidate's refinement score (NaN where not refined)


def tile_stride(lmap: LocalisationMap, params: LocalizeParams) -> int:
    """Pixels between query tiles: ``tile_stride_m`` (null: a quarter of the patch) rounded to a
    multiple of the map stride, so every tile votes on the map's lattice."""
    meta = lmap.metadata
    s, gsd, p = int(meta["stride_px"]), float(meta["gsd"]), int(meta["patch_px"])
    step_m = params.tile_stride_m if params.tile_stride_m is not None else p * gsd / 4
    return max(1, round(step_m / gsd / s)) * s


def embed_tiles(
    model: Any,
    elevation: np.ndarray,
    tiles: tuple[np.ndarray, np.ndarray],
    patch_px: int,
    stats: NormalisationStats,
    params: LocalizeParams,
    device: Any,
) -> np.ndarray:
    """Elevation embeddings (T, D) of the query tiles, normalised as in training."""
    patches = normalise_elevation(cut_windows(elevation, tiles[0], tiles[1], patch_px), stats)
    return embed_patches(model.embed_elevation, patches, params.batch_size, device)


def refine_candidate(
    model: Any, source: OrthoSource, top_left: tuple[int, int], tiles: Tiles,
    emb: np.ndarray, best: np.ndarray, elevation: np.ndarray, valid: np.ndarray,
    lmap: LocalisationMap, params: LocalizeParams, device: Any,
) -> tuple[float, float, float]:  # fmt: skip
    """(row shift, col shift, score) of ``params.refine`` at a candidate's top-left (map px);
    ``best``: each tile's best similarity, which picks the tiles when ``max_tiles`` is set."""
    method = params.refine.method
    gsd = float(lmap.metadata["gsd"])
    radius = (
        int(round(params.refine.radius_m / gsd))
        if params.refine.radius_m
        else int(lmap.metadata["stride_px"])
    )
    if method == "none" or radius < 1:
        return 0.0, 0.0, float("nan")
    if method == "gradient_ncc":
        return refine_gradient_ncc(source, top_left, elevation, valid, radius)
    pick = np.argsort(-best, kind="stable")[: params.refine.max_tiles]  # None: every tile
    opts = {"batch_size": params.batch_size, "device": device}
    chosen = (tiles[0][pick], tiles[1][pick])
    return refine_embedding(
        model, source, top_left, chosen, emb[pick], int(lmap.metadata["patch_px"]), radius, opts
    )


def check_peaks(
    source: OrthoSource,
    peaks: list[tuple[int, int, float]],
    stride: int,
    elevation: np.ndarray,
    valid: np.ndarray,
    n: int,
) -> np.ndarray:
    """The classical gradient NCC of the query at each of the first ``n`` vote peaks, best within
    one map stride of the peak's cell (NaN for the peaks after them)."""
    out = np.full(len(peaks), np.nan)
    for i, (a, b, _) in enumerate(peaks[:n]):
        out[i] = refine_gradient_ncc(source, (a * stride, b * stride), elevation, valid, stride)[2]
    return out


def peak_scores(
    peaks: list[tuple[int, int, float]], checks: np.ndarray, weight: float
) -> np.ndarray:
    """Each vote peak's score: support / first support + ``weight`` x max(gradient NCC, 0); with a
    positive weight an unchecked peak (NaN) scores -inf and never wins."""
    support = np.array([m for _, _, m in peaks]) / max(peaks[0][2], 1e-12)
    if weight <= 0:
        return support
    return np.where(np.isnan(checks), -np.inf, support + weight * np.clip(checks, 0.0, None))


def rerank_peaks(scores: np.ndarray) -> list[int]:
    """Peak order: the best score first, the others in vote order."""
    win = int(np.argmax(scores))
    return [win] + [i for i in range(len(scores)) if i != win]


Refinement = tuple[float, float, float]  # row shift, col shift, score


def rank_candidates(
    peaks: list[tuple[int, int, float]],
    checks: np.ndarray,
    rerank: RerankParams,
    refine_at: Callable[[tuple[int, int, float]], Refinement],
) -> tuple[list[int], np.ndarray, np.ndarray, dict[int, Refinement]]:
    """Order of the vote peaks: first by support and gradient NCC (``peak_scores``), then the
    ``refine_candidates`` best are refined and ``refine_weight`` x their refinement score is added.

    Returns (order, scores, refinement scores (NaN where not refined), refinements by peak index).
    """
    ranked = peak_scores(peaks, checks, rerank.weight)
    best = np.argsort(-ranked, kind="stable")[: rerank.refine_candidates]
    fits = {int(i): refine_at(peaks[i]) for i in best}
    refined = np.array([fits[i][2] if i in fits else np.nan for i in range(len(peaks))])
    if rerank.refine_weight > 0 and fits:  # the unrefined peaks rank below the refined
        ranked = np.where(np.isnan(refined), -np.inf, ranked + rerank.refine_weight * refined)
    return rerank_peaks(ranked), ranked, refined, fits


def hubness_penalty(lmap: LocalisationMap, weight: float) -> np.ndarray | None:
    """``weight`` x each map patch's hubness (index order), None when the weight is 0.

    Raises:
        CrocoInputError: a positive weight on a map built without hubness scores.
    """
    if weight <= 0:
        return None
    if lmap.hubness is None:
        raise CrocoInputError(
            f"localize.hubness_weight is {weight} but map {lmap.source} has no hubness scores; "
            "rebuild it with build_map.hubness_k > 0 (`kedro run --pipelines=build_map`) or set "
            "localize.hubness_weight: 0"
        )
    return weight * lmap.hubness


def vote_query(
    model: Any,
    lmap: LocalisationMap,
    elevation: np.ndarray,
    valid: np.ndarray,
    stats: NormalisationStats,
    params: LocalizeParams,
    name: str,
    device: Any = "cpu",
) -> tuple[Tiles, np.ndarray, VoteGrid]:
    """The vote stage: the query's tiles, their embeddings and the vote grid their top-``k`` map
    candidates (``k: all``: every map patch, ``dense_vote``) cast on the map lattice."""
    meta = lmap.metadata
    p, s = int(meta["patch_px"]), int(meta["stride_px"])
    tiles = query_tiles(valid, p, tile_stride(lmap, params), params.min_valid_fraction, name)
    emb = embed_tiles(model, elevation, tiles, p, stats, params, device)
    lattice = lmap.centres[["lattice_row", "lattice_col"]].to_numpy()
    shape = (int(meta["lattice_shape"][0]), int(meta["lattice_shape"][1]))
    penalty = hubness_penalty(lmap, params.hubness_weight)
    if params.k == "all":
        blocks = lmap.vector_blocks()
        unit = unit_rows(emb)
        grid = dense_vote(*tiles, unit, lmap.mean_vector, blocks, lattice, shape, s, valid.shape,
                          penalty)  # fmt: skip
        return tiles, emb, grid
    scores, idx = lmap.index.search(emb, min(params.k, len(lmap.index)))
    if penalty is not None:  # the search's candidates, their similarities less their hubness
        scores = scores - np.where(idx >= 0, penalty[np.maximum(idx, 0)], 0.0)
    rc = np.where((idx >= 0)[..., None], lattice[np.maximum(idx, 0)], -1)
    return tiles, emb, vote(*tiles, scores, rc, shape, s, valid.shape)


def locate(
    model: Any,
    lmap: LocalisationMap,
    source: OrthoSource,
    elevation: np.ndarray,
    valid: np.ndarray,
    stats: NormalisationStats,
    params: LocalizeParams,
    name: str,
    device: Any = "cpu",
) -> Fix:
    """Locate the query raster (C, H, W) heights / (H, W) valid at the map's GSD on ``lmap``."""
    meta = lmap.metadata
    p, s = int(meta["patch_px"]), int(meta["stride_px"])
    tiles, emb, grid = vote_query(model, lmap, elevation, valid, stats, params, name, device)
    n_peaks = max(params.top_candidates, params.rerank.candidates)
    peaks = grid.peaks(n_peaks, max(1, p // s))
    if not peaks:
        raise ValueError(f"query {name}: no candidate with a positive similarity")
    checks = check_peaks(source, peaks, s, elevation, valid, params.rerank.candidates)

    def refine_at(peak: tuple[int, int, float]) -> Refinement:
        return refine_candidate(model, source, (peak[0] * s, peak[1] * s), tiles, emb, grid.best_scores,
                       elevation, valid, lmap, params, device)  # fmt: skip

    order, ranked, refined, fits = rank_candidates(peaks, checks, params.rerank, refine_at)
    win = order[0]
    dr, dc, refine_score = fits[win] if win in fits else refine_at(peaks[win])
    peaks, checks, ranked, refined = (
        [peaks[i] for i in order],
        checks[order],
        ranked[order],
        refined[order],
    )
    a, b, mass = peaks[0]
    t = Affine(*meta["grid_transform"])
    x, y = t * (b * s + dc, a * s + dr)
    second = max(float(ranked[1:].max(initial=0.0)), 0.0)  # the runner-up's score
    spread = height_spread(elevation[0], valid)
    fixed = (a * s + int(round(dr)), b * s + int(round(dc)))
    check = refine_gradient_ncc(source, fixed, elevation, valid, 1)[2]
    feats = confidence_features(
        float(ranked[0]), second, grid.agreeing_share(a, b), refine_score, spread, check,
        grid.contrast(a, b),
    )  # fmt: skip
    conf = confidence(feats, params.confidence.bias, params.confidence.weights)
    top = params.top_candidates
    cands = [(*(t * (pb * s, pa * s)), m) for pa, pb, m in peaks[:top]]
    return Fix(float(x), float(y), mass / len(tiles[0]), conf, feats, cands, checks[:top].tolist(),
               grid, len(tiles[0]), refined[:top].tolist())  # fmt: skip
