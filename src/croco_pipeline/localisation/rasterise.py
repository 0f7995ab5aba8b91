"""Point clouds and elevation GeoTIFFs to the model's elevation channels, made like the training data.

The scene's DSM came at a native GSD (0.5 m) and preprocessing resampled it to the working GSD, so a
cloud is rasterised the same way: highest return per native cell, holes filled with the nearest value,
then resampled to the working grid by the very function preprocessing uses (``align.resample_to``).
An intensity channel is the mean return intensity per native cell; a whole scene's LAS/LAZ can give
a training channel the same way (``rasterise_scene_channel``, used by ingestion).
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
from scipy.ndimage import uniform_filter

from croco_pipeline.data.align import TargetGrid, fill_nearest, resample_to
from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.readers import mask_elevation
from croco_pipeline.data.stack import is_intensity
from croco_pipeline.errors import CrocoInputError, bad_param
from croco_pipeline.localisation.pointcloud import BUILDING, GROUND, PointCloud

PRODUCTS = ("surface", "ground", "ground_building", "intensity")
#: the product each known height channel is made from (override with ``localize.channel_products``);
#: channels named ``intensity...`` are the mean return intensity per native cell
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
    """Flat cell index of each point (points are inside ``grid`` by construction; edges clipped).

    In place where possible: at 10 M points every temporary array costs a visible share of a second.
    """
    t = grid.transform
    col = np.subtract(x, t.c)
    col *= 1.0 / t.a
    col = col.astype(np.int64)
    np.clip(col, 0, grid.shape[1] - 1, out=col)
    row = np.subtract(y, t.f)
    row *= 1.0 / t.e
    row = row.astype(np.int64)
    np.clip(row, 0, grid.shape[0] - 1, out=row)
    row *= grid.shape[1]
    row += col
    return row


def highest_per_cell(x: np.ndarray, y: np.ndarray, z: np.ndarray, grid: TargetGrid) -> np.ndarray:
    """Highest z per cell of ``grid`` -> float32 (rows, cols), NaN where no point falls."""
    return _highest(_cells(x, y, grid), z, grid.shape)


def _highest(cells: np.ndarray, z: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    flat = np.full(shape[0] * shape[1], -np.inf, dtype=np.float32)
    np.maximum.at(flat, cells, z.astype(np.float32))  # unbuffered max: ~0.25 s for 10 M points
    flat[np.isneginf(flat)] = np.nan
    return flat.reshape(shape)


def fill_small_holes(values: np.ndarray, passes: int = 6) -> np.ndarray:
    """NaN cells take the mean of their valid 3 x 3 neighbours, repeated ``passes`` times, so holes
    up to ``passes`` cells from data are filled (cheap on large grids; no distance transform)."""
    out = values.copy()
    for _ in range(passes):
        holes = np.isnan(out)
        if not holes.any():
            break
        ok = (~holes).astype(np.float32)
        total = uniform_filter(np.where(holes, 0.0, out), size=3, mode="constant")
        count = uniform_filter(ok, size=3, mode="constant")
        fill = holes & (count > 1e-6)
        out[fill] = total[fill] / count[fill]
    return out


def _any_per_block(occupied: np.ndarray, work_shape: tuple[int, int]) -> np.ndarray:
    """Working cells holding at least one occupied native cell (any integer factor, else nearest)."""
    f0, f1 = occupied.shape[0] / work_shape[0], occupied.shape[1] / work_shape[1]
    if f0.is_integer() and f1.is_integer():
        blocks = occupied.reshape(work_shape[0], int(f0), work_shape[1], int(f1))
        return np.asarray(blocks.any(axis=(1, 3)), dtype=bool)
    rows = (np.arange(work_shape[0]) * f0).astype(int)
    cols = (np.arange(work_shape[1]) * f1).astype(int)
    return occupied[np.ix_(rows, cols)]


def product_of(channel: str, overrides: Mapping[str, str] | None = None) -> str:
    """The point product (surface / ground / ground_building / intensity) a model channel is made
    from. Intensity goes by the channel's name (``stack.is_intensity``), as its normalisation does,
    so the two always agree."""
    if is_intensity(channel):
        return "intensity"
    product = (overrides or {}).get(channel, DEFAULT_PRODUCTS.get(channel))
    if product not in PRODUCTS:
        raise bad_param(
            f"localize.channel_products.{channel}",
            product,
            f"one of {PRODUCTS}: a point cloud cannot give channel '{channel}' by default",
        )
    return str(product)


def _select(cloud: PointCloud, product: str, channel: str) -> np.ndarray | None:
    """Mask of the points a product is made from; None: all of them."""
    if product == "surface":
        return None
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

    Each channel: highest point (intensity channels: mean intensity) per ``native_gsd`` cell,
    resampled to ``gsd`` as preprocessing resamples the scene DSM (empty cells as nodata), working
    cells left empty filled with the nearest value. Valid = working cells where the first channel
    has at least one point.
    """
    if not 0 < native_gsd <= gsd:
        raise bad_param("localize.native_gsd_m", native_gsd, f"in (0, working gsd {gsd}]")
    native = snapped_grid(cloud.bounds, cloud.crs, native_gsd, gsd)
    t = native.transform
    work = TargetGrid(cloud.crs, Affine(gsd, 0.0, t.c, 0.0, -gsd, t.f), _work_shape(native, gsd))
    cells = _cells(cloud.x, cloud.y, native)
    heights = np.empty((len(channels), *work.shape), dtype=np.float32)
    valid = np.zeros(work.shape, dtype=bool)
    for i, channel in enumerate(channels):
        top = _native_values(cloud, cells, channel, native.shape, products)
        if i == 0:
            valid = _any_per_block(np.isfinite(top), work.shape)
        # small holes filled at the native GSD as DSM products are (from neighbours within a few
        # metres); what stays empty is nodata in the resampling, then takes the nearest value
        raster = GeoRaster(fill_small_holes(top)[None], native.crs, native.transform, float("nan"))
        band = resample_to(raster, work, ELEVATION_RESAMPLING)[0]
        heights[i] = fill_nearest(band, np.isfinite(band))
    return ElevationRaster(heights, valid, cloud.crs, work.transform, cloud.bounds)


def rasterise_scene_channel(
    cloud: PointCloud, channel: str, native_gsd: float, products: Mapping[str, str] | None = None
) -> GeoRaster:
    """One elevation-source channel of a whole scene from its LAS/LAZ, at ``native_gsd`` (NaN where
    no point falls after small holes are filled): made exactly as ``rasterise_cloud`` makes a
    query's channel before resampling, so training rasters and queries agree."""
    if not native_gsd > 0:
        raise bad_param("preprocess.cloud_gsd_m", native_gsd, "a positive cell size in metres")
    native = snapped_grid(cloud.bounds, cloud.crs, native_gsd, native_gsd)
    values = _native_values(
        cloud, _cells(cloud.x, cloud.y, native), channel, native.shape, products
    )
    crs = CRS.from_wkt(cloud.crs.to_wkt())
    return GeoRaster(fill_small_holes(values)[None], crs, native.transform, float("nan"))


def _native_values(
    cloud: PointCloud,
    cells: np.ndarray,
    channel: str,
    shape: tuple[int, int],
    products: Mapping[str, str] | None,
) -> np.ndarray:
    """A channel's value per native cell (float32, NaN where none of its points fall)."""
    product = product_of(channel, products)
    if product == "intensity":
        if cloud.intensity is None:
            raise CrocoInputError(
                f"point cloud {cloud.source}: the model needs channel '{channel}' (return "
                "intensity), but the cloud's intensities are all zero"
            )
        return _mean(cells, cloud.intensity, shape)
    keep = _select(cloud, product, channel)
    return _highest(
        cells if keep is None else cells[keep], cloud.z if keep is None else cloud.z[keep], shape
    )


def _mean(cells: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    size = shape[0] * shape[1]
    total = np.bincount(cells, weights=values, minlength=size)
    count = np.bincount(cells, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32).reshape(shape)


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
