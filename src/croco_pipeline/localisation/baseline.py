"""Classical localisation baseline: the whole rasterised scan as one template, found by masked
normalised cross-correlation (NCC) of gradient magnitudes over the map's grey ortho, via FFT.

The gradient is ``evaluation.baseline.gradient_magnitude`` (the patch-retrieval baseline's), so the
two baselines measure the same thing; here the NCC is taken over the scan's valid cells only and
evaluated at every offset at once: three FFT correlations per template, the map's spectra cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from croco_pipeline.errors import CrocoInputError
from croco_pipeline.evaluation.baseline import BaselineModel
from croco_pipeline.localisation.locate import locate
from croco_pipeline.localisation.mapping import MapSpec, build_map
from croco_pipeline.localisation.ncc import GradientNccMap, gradient_image, gradient_valid
from croco_pipeline.localisation.ortho import Block
from croco_pipeline.localisation.queries import discover, load_query
from croco_pipeline.localisation.rasterise import DEFAULT_PRODUCTS
from croco_pipeline.localisation.refine import subpixel_peak


@dataclass(frozen=True)
class BaselineFix:
    """Where the whole-scan template matched: the query's footprint centre on the map and its NCC."""

    x: float
    y: float
    score: float
    shift_x: float  # map minus query coordinates (the displacement the baseline recovered)
    shift_y: float
    second: float  # best NCC outside a one-template-wide neighbourhood of the peak


def locate_whole_scan(
    ncc_map: GradientNccMap,
    map_transform: Affine,
    elevation: np.ndarray,
    valid: np.ndarray,
    query_transform: Affine,
    footprint: tuple[float, float, float, float],
) -> BaselineFix:
    """Find the query (its first elevation channel) on the map; the estimate is where the centre of
    ``footprint`` (query coordinates) lands, with parabolic sub-pixel refinement of the peak."""
    template = gradient_image(elevation[0])
    surface = ncc_map.ncc(template, gradient_valid(valid))
    return fix_from_surface(surface, template.shape, map_transform, query_transform, footprint)


def fix_from_surface(
    surface: np.ndarray,
    template_shape: tuple[int, ...],
    map_transform: Affine,
    query_transform: Affine,
    footprint: tuple[float, float, float, float],
) -> BaselineFix:
    """The fix at the best peak of an NCC ``surface`` of a gradient template of ``template_shape``
    (sub-pixel), with the best score outside a template-wide neighbourhood of it."""
    r, c, best = subpixel_peak(surface)
    # gradient pixel (0, 0) is raster pixel (1, 1) in both images: top-lefts line up directly
    mx, my = map_transform * (c, r)
    qx, qy = query_transform * (0, 0)
    sx, sy = mx - qx, my - qy
    ri, ci = int(round(r)), int(round(c))
    h, w = template_shape[0], template_shape[1]
    rest = surface.copy()
    rest[max(0, ri - h // 2) : ri + h // 2 + 1, max(0, ci - w // 2) : ci + w // 2 + 1] = -1.0
    cx, cy = (footprint[0] + footprint[2]) / 2, (footprint[1] + footprint[3]) / 2
    return BaselineFix(cx + sx, cy + sy, best, sx, sy, float(rest.max()))


def surface_channel(channels: list[str] | tuple[str, ...]) -> int:
    """Index of the first-surface channel (the one the ortho's edges show best), else 0."""
    for i, name in enumerate(channels):
        if DEFAULT_PRODUCTS.get(name) == "surface":
            return i
    return 0


@dataclass
class BaselineMaps:
    """The classical baseline's two searches over one ortho: whole scan (FFT) and tiled voting."""

    source: Any  # the OrthoSource both read
    whole: GradientNccMap | None
    tiled: Any | None  # a LocalisationMap of gradient-NCC descriptors (C's build_map)
    model: Any  # BaselineModel on the surface channel
    metadata: dict[str, Any]


def prepare_baselines(
    source: Any, metadata: dict[str, Any], whole: bool, tiled: bool, min_overlap: float = 0.5
) -> BaselineMaps:
    """Read the ortho for the whole-scan search and/or index it with the baseline descriptor on the
    same lattice as the learned map (``metadata``: the learned map's)."""
    model = BaselineModel(elevation_channel=surface_channel(metadata["channels"]))
    ncc = None
    if whole:
        rgb, valid = source.read(Block(0, 0, *source.grid.shape))
        ncc = GradientNccMap(rgb, valid, min_overlap)
    lmap = None
    if tiled:
        spec = MapSpec(float(metadata["gsd"]), int(metadata["patch_px"]), int(metadata["stride_px"]),
                       tuple(metadata["channels"]), dict(metadata["normalisation"]), "gradient-ncc")  # fmt: skip
        opts = {"min_valid_fraction": 0.5, "batch_size": 512, "block_px": 1024,
                "approximate_above": 10**9, "nlist": None, "nprobe": 1, "device": "cpu", "progress": False}  # fmt: skip
        lmap = build_map(model, source, spec, opts)
    return BaselineMaps(source, ncc, lmap, model, metadata)


def _scan_rows(
    loaded: Any, track: str, shift: tuple[float, float], score: float, confidence: float
) -> list[dict[str, Any]]:
    """One row per scan: its footprint centre moved by ``shift`` (map minus query coordinates)."""
    rows = []
    for scan in loaded.scans:
        left, bottom, right, top = scan.footprint
        row = {"query": scan.name, "track": track, "file": scan.path.name,
               "x": (left + right) / 2 + shift[0], "y": (bottom + top) / 2 + shift[1],
               "score": score, "confidence": confidence, "status": "ok", "reason": ""}  # fmt: skip
        if scan.truth is not None:
            row.update(truth_x=scan.truth[0], truth_y=scan.truth[1])
        rows.append(row)
    rows += [_failed_row(p, track, why) for p, why in loaded.failed]
    return rows


def _failed_row(path: Any, track: str, why: str) -> dict[str, Any]:
    nan = float("nan")
    return {"query": path.stem, "track": track, "file": path.name, "x": nan, "y": nan,
            "score": nan, "confidence": nan, "status": "failed", "reason": why}  # fmt: skip


def localise_folder_baseline(
    maps: BaselineMaps, folder: Any, params: Any, stats: Any
) -> dict[str, list[dict[str, Any]]]:
    """Locate every query of ``folder`` with the baseline: ``{"whole_scan": rows, "tiled": rows}``
    (only the searches ``maps`` holds), read and displaced exactly as the learned model's queries."""
    meta = maps.metadata
    t_map = Affine(*meta["grid_transform"])
    tiled_params = params.model_copy(  # its descriptor map has no hubness scores
        update={
            "refine": params.refine.model_copy(update={"method": "gradient_ncc"}),
            "hubness_weight": 0.0,
        }
    )
    out: dict[str, list[dict[str, Any]]] = {"whole_scan": [], "tiled": []}
    items, _ = discover(folder, params.exclude)
    for item in items:
        try:
            loaded = load_query(item, meta["crs"], meta["channels"], float(meta["gsd"]), params)
        except CrocoInputError as exc:
            for key in out:
                out[key] += [_failed_row(p, item.track, str(exc)) for p in item.paths]
            continue
        r = loaded.raster
        if maps.whole is not None:
            ch = surface_channel(meta["channels"])
            fix = locate_whole_scan(
                maps.whole, t_map, r.elevation[ch : ch + 1], r.valid, r.transform, r.footprint
            )
            margin = float(np.clip(fix.score - fix.second, 0.0, 1.0))
            out["whole_scan"] += _scan_rows(
                loaded, item.track, (fix.shift_x, fix.shift_y), fix.score, margin
            )
        if maps.tiled is not None:
            try:
                tfix = locate(
                    maps.model,
                    maps.tiled,
                    maps.source,
                    r.elevation,
                    r.valid,
                    stats,
                    tiled_params,
                    item.name,
                )
            except (CrocoInputError, ValueError) as exc:
                out["tiled"] += [_failed_row(p, item.track, str(exc)) for p in item.paths]
                continue
            shift = (tfix.x - r.transform.c, tfix.y - r.transform.f)
            out["tiled"] += _scan_rows(loaded, item.track, shift, tfix.score, tfix.confidence)
    return {k: v for k, v in out.items() if v}
