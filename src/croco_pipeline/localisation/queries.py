"""A query folder: single scans (LAS/LAZ or elevation GeoTIFF files) and tracks (sub-folders).

Each query becomes an ``ElevationRaster`` on the map's working grid; a track's scans are rasterised
together (their relative positions are right) and share one unknown offset. ``index.json`` beside
the scans (``[{"file", "center_x", "center_y"}]``, in the scans' CRS) gives truth when known.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyproj import CRS, Transformer

from croco_pipeline.data.geo import read_geotiff
from croco_pipeline.errors import CrocoInputError
from croco_pipeline.localisation.evaluation import displace, displacement
from croco_pipeline.localisation.params import LocalizeParams
from croco_pipeline.localisation.pointcloud import (
    POINT_CLOUD_SUFFIXES,
    PointCloud,
    concatenate,
    read_point_cloud,
    to_crs,
)
from croco_pipeline.localisation.rasterise import (
    ElevationRaster,
    rasterise_cloud,
    warp_elevation_raster,
)

RASTER_SUFFIXES = (".tif", ".tiff")
QUERY_SUFFIXES = POINT_CLOUD_SUFFIXES + RASTER_SUFFIXES


@dataclass
class QueryItem:
    """One thing to locate: a single scan (``track`` empty) or a track's scans."""

    name: str
    track: str
    paths: list[Path]


@dataclass
class Scan:
    """One scan of a located query: its footprint (map CRS, as given) and known truth."""

    name: str
    path: Path
    footprint: tuple[float, float, float, float]
    truth: tuple[float, float] | None = None


@dataclass
class LoadedQuery:
    """A query on the working grid, its scans, and the scans that could not be read."""

    raster: ElevationRaster
    scans: list[Scan]
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _is_query(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in QUERY_SUFFIXES


def discover(folder: Path, exclude: list[str]) -> tuple[list[QueryItem], list[tuple[Path, str]]]:
    """Queries under ``folder`` and the files left out (with why).

    Raises:
        CrocoInputError: the folder holds no LAS/LAZ/GeoTIFF file at all.
    """
    items, skipped = [], []

    def keep(path: Path) -> bool:
        if any(fnmatch.fnmatch(path.name, pattern) for pattern in exclude):
            skipped.append((path, f"excluded by parameter 'localize.exclude' {exclude}"))
            return False
        return True

    for path in sorted(folder.iterdir()):
        if _is_query(path) and keep(path):
            items.append(QueryItem(path.stem, "", [path]))
        elif path.is_dir():
            scans = [p for p in sorted(path.iterdir()) if _is_query(p) and keep(p)]
            if scans:
                items.append(QueryItem(path.name, path.name, scans))
    if not items and not skipped:
        raise CrocoInputError(f"query folder {folder} holds no LAS/LAZ/GeoTIFF file")
    return items, skipped


def _truths(folder: Path) -> dict[str, tuple[float, float]]:
    index = folder / "index.json"
    if not index.is_file():
        return {}
    try:
        entries = json.loads(index.read_text())
        return {e["file"]: (float(e["center_x"]), float(e["center_y"])) for e in entries}
    except (ValueError, KeyError, TypeError) as exc:
        raise CrocoInputError(f"truth index {index} is malformed: {exc}") from exc


def _truth_in_map(
    truth: tuple[float, float] | None, src: CRS, dst: CRS
) -> tuple[float, float] | None:
    if truth is None or src == dst:
        return truth
    x, y = Transformer.from_crs(src, dst, always_xy=True).transform(*truth)
    return float(x), float(y)


def _read_cloud(path: Path, map_crs: CRS, params: LocalizeParams) -> tuple[PointCloud, CRS]:
    cloud = read_point_cloud(path, params.assume_crs, params.max_points)
    return to_crs(cloud, map_crs), cloud.crs


def load_query(
    item: QueryItem, map_crs: Any, channels: list[str], gsd: float, params: LocalizeParams
) -> LoadedQuery:
    """Read and rasterise one query; a track keeps going past scans that cannot be read."""
    dst = CRS.from_user_input(map_crs)
    truths = _truths(item.paths[0].parent)
    if len(item.paths) == 1 and item.paths[0].suffix.lower() in RASTER_SUFFIXES:
        path = item.paths[0]
        raster = warp_elevation_raster(read_geotiff(path), channels, dst, gsd, str(path))
        truth = _truth_in_map(truths.get(path.name), dst, dst)
        return LoadedQuery(raster, [Scan(path.stem, path, raster.footprint, truth)])
    clouds, scans, failed = [], [], []
    for path in item.paths:
        try:
            if path.suffix.lower() in RASTER_SUFFIXES:
                raise CrocoInputError(f"{path}: a track's scans must be LAS/LAZ point clouds")
            cloud, own_crs = _read_cloud(path, dst, params)
        except CrocoInputError as exc:
            if not item.track:
                raise
            failed.append((path, str(exc)))
            continue
        truth = _truth_in_map(truths.get(path.name), own_crs, dst)
        if params.truth == "coords":
            left, bottom, right, top = cloud.bounds
            truth = ((left + right) / 2, (bottom + top) / 2)
        if params.displace_km is not None:  # a track's scans share one offset
            offset = displacement(item.name, params.displace_seed, params.displace_km)
            cloud = displace(cloud, offset)
        clouds.append(cloud)
        scans.append(Scan(path.stem, path, cloud.bounds, truth))
    if not clouds:
        raise CrocoInputError(
            f"track {item.name}: no scan could be read ({failed[0][1] if failed else ''})"
        )
    merged = concatenate(clouds, item.name) if len(clouds) > 1 else clouds[0]
    raster = rasterise_cloud(merged, channels, gsd, params.native_gsd_m, params.channel_products)
    return LoadedQuery(raster, scans, failed)
