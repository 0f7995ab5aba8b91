"""Localise every query of a folder: one row per scan, failures reported in their rows.

``localise_folder`` is what the ``localize`` pipeline runs; it needs only importable parts (the model,
the map, the ortho) and knows nothing of Kedro.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.stack import NormalisationStats
from croco_pipeline.errors import CrocoInputError
from croco_pipeline.localisation.locate import Fix, locate
from croco_pipeline.localisation.mapping import LocalisationMap
from croco_pipeline.localisation.ortho import OrthoSource
from croco_pipeline.localisation.params import LocalizeParams
from croco_pipeline.localisation.pointcloud import QuerySkipped
from croco_pipeline.localisation.queries import LoadedQuery, QueryItem, discover, load_query

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Everything a query is located with."""

    model: Any
    lmap: LocalisationMap
    source: OrthoSource
    stats: NormalisationStats
    params: LocalizeParams
    device: Any = "cpu"


def _row(
    query: str, track: str, path: Path, crs: str, status: str, reason: str = ""
) -> dict[str, Any]:
    nan = float("nan")
    return {"query": query, "track": track, "file": path.name, "x": nan, "y": nan, "crs": crs,
            "score": nan, "confidence": nan, "status": status, "reason": reason}  # fmt: skip


def _fix_rows(fix: Fix, loaded: LoadedQuery, item: QueryItem, crs: str) -> list[dict[str, Any]]:
    t = loaded.raster.transform
    rows = []
    for scan in loaded.scans:
        left, bottom, right, top = scan.footprint
        # the scan's centre relative to the query raster's own top-left, placed at the fix
        x = fix.x + (left + right) / 2 - t.c
        y = fix.y + (bottom + top) / 2 - t.f
        row = _row(scan.name, item.track, scan.path, crs, "ok")
        row.update(x=x, y=y, score=fix.score, confidence=fix.confidence, n_tiles=fix.n_tiles,
                   width_m=right - left, height_m=top - bottom, **fix.features)  # fmt: skip
        row["top5"] = json.dumps(
            [[round(cx + x - fix.x, 2), round(cy + y - fix.y, 2)] for cx, cy, _ in fix.candidates]
        )
        # the candidates' vote support and classical check, for re-ranking studies
        row["top5_support"] = json.dumps([round(m, 4) for _, _, m in fix.candidates])
        row["top5_gradient_ncc"] = json.dumps([round(c, 4) for c in fix.checks])
        row["top5_refine_score"] = json.dumps([round(c, 4) for c in fix.refined])
        if scan.truth is not None:
            row.update(truth_x=scan.truth[0], truth_y=scan.truth[1],
                       error_m=math.hypot(x - scan.truth[0], y - scan.truth[1]))  # fmt: skip
        rows.append(row)
    return rows


def heatmap_raster(fix: Fix, lmap: LocalisationMap, offset: tuple[float, float]) -> GeoRaster:
    """The vote for the query's centre at every map lattice cell, as a GeoTIFF-ready raster: band 1
    the support the localiser ranks (``VoteGrid.support``), band 2 the raw votes.

    The grid keeps the voting's ``pad`` cells around the lattice (the query overhanging the map's
    edge), where a fix may win: the estimate always lies on the heatmap.
    """
    meta = lmap.metadata
    pad = fix.votes.pad
    bands = np.stack([fix.votes.support(), fix.votes.votes]).astype(np.float32)
    step = meta["stride_px"] * meta["gsd"]
    g = Affine(*meta["grid_transform"])
    left = g.c + offset[0] - step / 2 - pad * step
    top = g.f + offset[1] + step / 2 + pad * step
    crs = CRS.from_wkt(meta["crs"])
    transform = Affine(step, 0.0, left, 0.0, -step, top)
    return GeoRaster(bands, crs, transform, None, ("support", "votes"))


def _locate_item(ctx: Context, item: QueryItem, crs: str) -> tuple[list[dict[str, Any]], GeoRaster]:
    meta = ctx.lmap.metadata
    loaded = load_query(item, meta["crs"], meta["channels"], float(meta["gsd"]), ctx.params)
    r = loaded.raster
    where = str(item.paths[0].parent if item.track else item.paths[0])  # named in errors
    fix = locate(ctx.model, ctx.lmap, ctx.source, r.elevation, r.valid, ctx.stats, ctx.params,
                 where, ctx.device)  # fmt: skip
    left, bottom, right, top = r.footprint
    heat = heatmap_raster(
        fix, ctx.lmap, ((left + right) / 2 - r.transform.c, (bottom + top) / 2 - r.transform.f)
    )
    rows = _fix_rows(fix, loaded, item, crs)
    rows += [_row(p.stem, item.track, p, crs, "failed", why) for p, why in loaded.failed]
    return rows, heat


def localise_folder(
    ctx: Context, folder: Path
) -> tuple[list[dict[str, Any]], dict[str, GeoRaster]]:
    """Locate every query in ``folder``: rows (one per scan) and a vote heatmap per query.

    Raises:
        CrocoInputError: nothing in the folder could be localised (every reason listed).
    """
    crs = CRS.from_wkt(ctx.lmap.metadata["crs"]).to_string()
    items, skipped = discover(folder, ctx.params.exclude)
    rows = [_row(p.stem, "", p, crs, "skipped", why) for p, why in skipped]
    heatmaps: dict[str, GeoRaster] = {}
    for i, item in enumerate(items, start=1):
        log.info("localize: %s (%d/%d)", item.name, i, len(items))
        try:
            item_rows, heatmaps[item.name] = _locate_item(ctx, item, crs)
            rows += item_rows
        except CrocoInputError as exc:
            status = "skipped" if isinstance(exc, QuerySkipped) else "failed"
            log.warning("localize: %s %s: %s", item.name, status, exc)
            rows += [_row(p.stem, item.track, p, crs, status, str(exc)) for p in item.paths]
    if not heatmaps:
        reasons = "; ".join(f"{r['file']}: {r['reason']}" for r in rows)
        raise CrocoInputError(f"query folder {folder}: nothing could be localised ({reasons})")
    return rows, heatmaps
