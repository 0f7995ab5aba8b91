"""Locate one query raster on the map: tile, embed, search, vote, refine.

Only the query's heights and validity go in, never its coordinates: the answer is where the query's
top-left corner lies on the map, from which callers place any point given relative to that corner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from croco_pipeline.data.stack import NormalisationStats, normalise_elevation
from croco_pipeline.data.windows import cut_windows
from croco_pipeline.evaluation.retrieval import embed_patches
from croco_pipeline.localisation.confidence import (
    confidence,
    confidence_features,
    height_spread,
)
from croco_pipeline.localisation.mapping import LocalisationMap
from croco_pipeline.localisation.ortho import OrthoSource
from croco_pipeline.localisation.params import LocalizeParams
from croco_pipeline.localisation.refine import refine_embedding, refine_gradient_ncc
from croco_pipeline.localisation.voting import VoteGrid, query_tiles, vote


@dataclass
class Fix:
    """Where the query's top-left corner lies on the map (map CRS), and how sure we are."""

    x: float
    y: float
    score: float
    confidence: float
    features: dict[str, float]
    candidates: list[tuple[float, float, float]]  # top-left (x, y) and vote mass, best first
    votes: VoteGrid
    n_tiles: int


def _tile_stride(lmap: LocalisationMap, params: LocalizeParams) -> int:
    s, gsd = int(lmap.metadata["stride_px"]), float(lmap.metadata["gsd"])
    if params.tile_stride_m is None:
        return s
    return max(1, round(params.tile_stride_m / gsd / s)) * s  # a multiple of the map stride


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


def _refine(
    model: Any, source: OrthoSource, top_left: tuple[int, int], tiles: tuple[np.ndarray, np.ndarray],
    emb: np.ndarray, best: np.ndarray, elevation: np.ndarray, valid: np.ndarray,
    lmap: LocalisationMap, params: LocalizeParams, device: Any,
) -> tuple[float, float, float]:  # fmt: skip
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
    tiles = query_tiles(valid, p, _tile_stride(lmap, params), params.min_valid_fraction, name)
    emb = embed_tiles(model, elevation, tiles, p, stats, params, device)
    scores, idx = lmap.index.search(emb, min(params.k, len(lmap.index)))
    lattice = lmap.centres[["lattice_row", "lattice_col"]].to_numpy()
    rc = np.where((idx >= 0)[..., None], lattice[np.maximum(idx, 0)], -1)
    grid = vote(tiles[0], tiles[1], scores, rc, tuple(meta["lattice_shape"]), s, valid.shape)
    peaks = grid.peaks(params.top_candidates, max(1, p // s))
    if not peaks:
        raise ValueError(f"query {name}: no candidate with a positive similarity")
    a, b, mass = peaks[0]
    dr, dc, refine_score = _refine(
        model,
        source,
        (a * s, b * s),
        tiles,
        emb,
        scores[:, 0],
        elevation,
        valid,
        lmap,
        params,
        device,
    )
    t = Affine(*meta["grid_transform"])
    x, y = t * (b * s + dc, a * s + dr)
    second = peaks[1][2] if len(peaks) > 1 else 0.0
    spread = height_spread(elevation[0], valid)
    fixed = (a * s + int(round(dr)), b * s + int(round(dc)))
    check = refine_gradient_ncc(source, fixed, elevation, valid, 1)[2]
    feats = confidence_features(
        mass, second, grid.agreeing_share(a, b), refine_score, spread, check
    )
    conf = confidence(feats, params.confidence.bias, params.confidence.weights)
    cands = [(*(t * (pb * s, pa * s)), m) for pa, pb, m in peaks]
    return Fix(float(x), float(y), mass / len(tiles[0]), conf, feats, cands, grid, len(tiles[0]))
