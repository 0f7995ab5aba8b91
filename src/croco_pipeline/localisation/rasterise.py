"""Point clouds and elevation GeoTIFFs to the model's elevation channels, made like the training data.

The scene's DSM came at a native GSD (0.5 m) and preprocessing resampled it to the working GSD, so a
cloud is rasterised the same way: highest return per native cell, holes filled with the nearest value,
then resampled to the working grid by the very function preprocessing uses (``align.resample_to``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds

from croco_pipeline.data.align import TargetGrid, fill_nearest, resample_to
from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.readers import mask_elevation
from croco_pipeline.errors import CrocoInputError, bad_param
from croco_pipeline.localisation.pointcloud import BUILDING, GROUND, PointCloud

PRODUCTS = ("surface", "ground", "ground_building")
#: the product each known channel name is made from (override with ``localize.channel_products``)
DEFAULT_PRODUCTS = {
    "DSM_C12": "surface",
    "DEM_C123_3msr": "ground",
    "DEM_C123_TLI": "ground",
    "DEM+B_C123": "ground_building",
    "dsm": "surface",
}
#: how preprocessing brings the native-GSD heights to the working grid (``align.align_scene``)
ELEVATION_RESAMPLING = Resampling.bilinear


@dataclass
class ElevationRaster:
    """Query heights on a working grid: (C, H, W) float32 holes filled, (H, W) valid, geometry."""

    elevation: np.ndarray
    valid: np.ndarray
    crs: CRS
    transform: Affine
    footprint: tuple[float, float, float, float]  # (left, bottom, right, top) of the data

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.valid.shape[0]), int(self.valid.shape[1])


def snapped_grid(
    bounds: tuple[float, float, float, float], crs: CRS, step: float, snap: float
) -> TargetGrid:
    """A north-up grid of ``step`` cells covering ``bounds``, edges on multiples of ``snap``."""
    left, bottom = math.floor(bounds[0] / snap) * snap, math.floor(bounds[1] / snap) * snap
    right, top = math.ceil(bounds[2] / snap) * snap, math.ceil(bounds[3] / snap) * snap
    right, top = max(right, left + snap), max(top, bottom + snap)
    shape = (round((top - bottom) / step), round((right - left) / step))
    return TargetGrid(crs, Affine(step, 0.0, left, 0.0, -step, top), shape)


def _cells(x: np.ndarray, y: np.ndarray, grid: TargetGrid) -> np.ndarray:
    """Flat cell index of each point (points are inside ``grid`` by construction; edges clipped)."""
    t = grid.transform
    col = np.minimum(((x - t.c) / t.a).astype(np.int64), grid.shape[1] - 1)
    row = np.minimum(((y - t.f) / t.e).astype(np.int64), grid.shape[0] - 1)
    return np.maximum(row, 0) * grid.shape[1] + np.maximum(col, 0)


def highest_per_cell(x: np.ndarray, y: np.ndarray, z: np.ndarray, grid: TargetGrid) -> np.ndarray:
    """Highest z per cell of ``grid`` -> float32 (rows, cols), NaN where no point falls."""
    flat = np.full(grid.shape[0] * grid.shape[1], -np.inf)
    np.maximum.at(flat, _cells(x, y, grid), z)  # unbuffered max: about 0.25 s for 10 M points
    flat[np.isneginf(flat)] = np.nan
    return flat.reshape(grid.shape).astype(np.float32)


def product_of(channel: str, overrides: Mapping[str, str] | None = None) -> str:
    """The point product (surface / ground / ground_building) a model channel is made from."""
    product = (overrides or {}).get(channel, DEFAULT_PRODUCTS.get(channel))
    if product not in PRODUCTS:
        raise bad_param(
            f"localize.channel_products.{channel}",
            product,
            f"one of {PRODUCTS}: a point cloud cannot give channel '{channel}' by default",
        )
    return str(product)


def _select(cloud: PointCloud, product: str, channel: str) -> np.ndarray:
    if product == "surface":
        return np.ones(len(cloud), dtype=bool)
    if cloud.classification is None:
        raise CrocoInputError(
            f"point cloud {cloud.source}: the model needs channel '{channel}' ({product}), made "
            "from points classified ground (ASPRS 2), but the cloud carries no classification"
        )
    keep = cloud.classification == GROUND
    if product == "ground_building":
        keep |= cloud.classification == BUILDING
    if not keep.any():
        raise CrocoInputError(
            f"point cloud {cloud.source}: no point of the classes channel '{channel}' ({product}) needs"
        )
    return keep


def rasterise_cloud(
    cloud: PointCloud,
    channels: tuple[str, ...] | list[str],
    gsd: float,
    native_gsd: float,
    products: Mapping[str, str] | None = None,
) -> ElevationRaster:
    """Rasterise ``cloud`` (already in the map CRS) into ``channels`` on a ``gsd`` grid.

    Each channel: highest point per ``native_gsd`` cell, holes filled with the nearest value, then
    resampled to ``gsd`` as preprocessing does. Valid = working cells that hold at least one point.
    """
    if not 0 < native_gsd <= gsd:
        raise bad_param("localize.native_gsd_m", native_gsd, f"in (0, working gsd {gsd}]")
    native = snapped_grid(cloud.bounds, cloud.crs, native_gsd, gsd)
    t = native.transform
    work = TargetGrid(cloud.crs, Affine(gsd, 0.0, t.c, 0.0, -gsd, t.f), _work_shape(native, gsd))
    counts = np.bincount(_cells(cloud.x, cloud.y, work), minlength=work.shape[0] * work.shape[1])
    heights = np.empty((len(channels), *work.shape), dtype=np.float32)
    for i, channel in enumerate(channels):
        keep = _select(cloud, product_of(channel, products), channel)
        top = highest_per_cell(cloud.x[keep], cloud.y[keep], cloud.z[keep], native)
        filled = fill_nearest(top, np.isfinite(top))
        raster = GeoRaster(filled[None], native.crs, native.transform, float("nan"))
        band = resample_to(raster, work, ELEVATION_RESAMPLING)[0]
        heights[i] = fill_nearest(band, np.isfinite(band))
    return ElevationRaster(
        heights, counts.reshape(work.shape) > 0, cloud.crs, work.transform, cloud.bounds
    )


def _work_shape(native: TargetGrid, gsd: float) -> tuple[int, int]:
    step = native.transform.a
    return (round(native.shape[0] * step / gsd), round(native.shape[1] * step / gsd))


def warp_elevation_raster(
    raster: GeoRaster, channels: tuple[str, ...] | list[str], map_crs: CRS, gsd: float, name: str
) -> ElevationRaster:
    """An elevation GeoTIFF query (one band per model channel, any CRS) on a ``gsd`` grid."""
    if raster.crs is None:
        raise CrocoInputError(f"elevation query {name} has no CRS")
    if raster.data.shape[0] != len(channels):
        raise CrocoInputError(
            f"elevation query {name} has {raster.data.shape[0]} band(s); the model needs "
            f"{len(channels)}: {list(channels)}"
        )
    masked = mask_elevation(raster)
    bounds = transform_bounds(raster.crs, map_crs, *raster.bounds, densify_pts=21)
    work = snapped_grid(bounds, map_crs, gsd, gsd)
    bands = resample_to(masked, work, ELEVATION_RESAMPLING)
    valid = np.isfinite(bands).all(axis=0)
    if not valid.any():
        raise CrocoInputError(f"elevation query {name} holds no valid height")
    filled = np.stack([fill_nearest(b, np.isfinite(b)) for b in bands]).astype(np.float32)
    rows, cols = np.nonzero(valid)
    t = work.transform
    foot = (
        t.c + cols.min() * gsd,
        t.f - (rows.max() + 1) * gsd,
        t.c + (cols.max() + 1) * gsd,
        t.f - rows.min() * gsd,
    )
    return ElevationRaster(filled, valid, map_crs, work.transform, foot)
