"""Put one scene's RGB and elevation rasters on a single grid and build its ``TileStack``.

The target grid lies in the elevation CRS (by default), at ``gsd`` metres, snapped to whole multiples of
``gsd`` so neighbouring scenes and blocks share pixel edges.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from scipy.ndimage import distance_transform_edt

from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.stack import TileStack
from croco_pipeline.errors import CrocoInputError, bad_param

GRIDS = ("elevation", "rgb")


class TargetGrid:
    """A north-up grid: CRS, transform and shape."""

    def __init__(self, crs: CRS, transform: Affine, shape: tuple[int, int]) -> None:
        self.crs, self.transform, self.shape = crs, transform, shape


def _units(crs: CRS) -> float:
    return float(crs.linear_units_factor[1]) if crs.is_projected else 1.0


def target_grid(ref: GeoRaster, other: GeoRaster, gsd: float) -> TargetGrid:
    """Grid over ``ref``'s bounds intersected with ``other``'s footprint, in ``ref``'s CRS.

    Edges are snapped inwards to whole multiples of the pixel size, so every target pixel is inside both.
    """
    step = gsd / _units(ref.crs)
    o = transform_bounds(other.crs, ref.crs, *other.bounds, densify_pts=21)
    left, bottom = max(ref.bounds[0], o[0]), max(ref.bounds[1], o[1])
    right, top = min(ref.bounds[2], o[2]), min(ref.bounds[3], o[3])
    # a tiny tolerance keeps edges that are already on the lattice from moving by float noise
    x0, x1 = math.ceil(left / step - 1e-6) * step, math.floor(right / step + 1e-6) * step
    y0, y1 = math.ceil(bottom / step - 1e-6) * step, math.floor(top / step + 1e-6) * step
    cols, rows = round((x1 - x0) / step), round((y1 - y0) / step)
    if cols < 1 or rows < 1:
        raise CrocoInputError("RGB and elevation rasters do not overlap by even one target pixel")
    return TargetGrid(ref.crs, Affine(step, 0.0, x0, 0.0, -step, y1), (rows, cols))


def _aligned_slice(src: GeoRaster, grid: TargetGrid) -> tuple[int, int] | None:
    """(row, col) offset when ``src`` already lies on ``grid``'s lattice and covers it, else None."""
    st, gt = src.transform, grid.transform
    if src.crs != grid.crs or st.b != 0 or st.d != 0:
        return None
    if not (math.isclose(st.a, gt.a, rel_tol=1e-9) and math.isclose(st.e, gt.e, rel_tol=1e-9)):
        return None
    col = (grid.transform.c - src.transform.c) / src.transform.a
    row = (grid.transform.f - src.transform.f) / src.transform.e
    c, r = round(col), round(row)
    if abs(col - c) > 1e-6 or abs(row - r) > 1e-6:
        return None
    h, w = src.shape
    if r < 0 or c < 0 or r + grid.shape[0] > h or c + grid.shape[1] > w:
        return None
    return r, c


def resample_to(src: GeoRaster, grid: TargetGrid, resampling: Resampling) -> np.ndarray:
    """Float32 (bands, rows, cols) of ``src`` on ``grid``; NaN where ``src`` has no data.

    A source already on the lattice is sliced (no interpolation); otherwise ``reproject`` warps it,
    which is a plain resample when the CRSs match. Source NaNs count as nodata, so they never mix
    into neighbouring values.
    """
    offset = _aligned_slice(src, grid)
    if offset is not None:
        r, c = offset
        return src.data[:, r : r + grid.shape[0], c : c + grid.shape[1]].astype(np.float32)
    # integer data (RGB) warps as is: no float copy of the source, and it cannot hold NaN
    is_float = np.issubdtype(src.data.dtype, np.floating)
    data = src.data.astype(np.float32, copy=False) if is_float else src.data
    out = np.full((data.shape[0], *grid.shape), np.nan, dtype=np.float32)
    reproject(
        data,
        out,
        src_transform=src.transform,
        src_crs=src.crs,
        src_nodata=np.nan if is_float else None,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=resampling,
        num_threads=2,
    )
    return out


def fill_nearest(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace cells where ``valid`` is False by the nearest valid cell's value (Euclidean EDT).

    Nearest-value filling keeps real heights (no invented slopes) and is exact on flat roofs and ground;
    the ``valid`` mask still marks these cells, so patch selection can reject them.
    """
    if valid.all():
        return values
    # indices only: the float64 distance map would double the memory for nothing
    ri, ci = distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return values[..., ri, ci]


def resample_rgb(
    rgb: GeoRaster, grid: TargetGrid, resampling: Resampling
) -> tuple[np.ndarray, np.ndarray]:
    """RGB on ``grid`` as uint8 (3, rows, cols), cells it does not cover filled from the nearest one.

    One band at a time, so a large scene never holds the whole RGB as float32.

    Returns:
        (rgb uint8 (3, rows, cols), covered bool (rows, cols): False where any band had no data).

    Raises:
        CrocoInputError: the RGB covers no cell of the grid.
    """
    out = np.zeros((rgb.data.shape[0], *grid.shape), dtype=np.uint8)
    covered = np.ones(grid.shape, dtype=bool)
    for b in range(rgb.data.shape[0]):
        band = GeoRaster(rgb.data[b : b + 1], rgb.crs, rgb.transform)
        values = resample_to(band, grid, resampling)[0]
        covered &= np.isfinite(values)
        out[b] = np.clip(np.rint(np.nan_to_num(values)), 0, 255)
    if not covered.any():
        raise CrocoInputError("the RGB raster covers no cell of the target grid")
    return fill_nearest(out, covered), covered


def align_scene(
    name: str,
    rasters: dict[str, GeoRaster],
    channels: tuple[str, ...] | list[str],
    gsd: float,
    grid: str = "elevation",
) -> TileStack:
    """Resample ``rasters`` ({"rgb", <channel>...}) onto one grid and stack them.

    Args:
        name: tile or scene name for the stack.
        rasters: from ``Dfc2018Release.read_tile`` or ``read_raster_pair``.
        channels: elevation channels, stacked in this order.
        gsd: target pixel size in metres.
        grid: ``"elevation"`` (the first channel's CRS and bounds) or ``"rgb"`` (the RGB's).

    Raises:
        CrocoConfigError: bad ``gsd``/``grid`` or a channel missing from ``rasters``.
        CrocoInputError: no overlap, or a channel with no valid cell on the grid.
    """
    if not gsd > 0:
        raise bad_param("preprocess.gsd", gsd, "a positive pixel size in metres")
    if grid not in GRIDS:
        raise bad_param("preprocess.grid", grid, f"one of {GRIDS}")
    missing = [c for c in ("rgb", *channels) if c not in rasters]
    if missing or not channels:
        raise bad_param(
            "preprocess.channels", list(channels), f"channels present in {list(rasters)}"
        )
    rgb, first = rasters["rgb"], rasters[channels[0]]
    target = target_grid(first, rgb, gsd) if grid == "elevation" else target_grid(rgb, first, gsd)

    # average when the RGB is finer than the target (anti-aliasing), bilinear otherwise
    rgb_m = rgb.gsd * _units(rgb.crs)
    rgb_mode = Resampling.average if rgb_m < gsd * 0.999 else Resampling.bilinear
    try:
        rgb_u8, valid = resample_rgb(rgb, target, rgb_mode)
    except CrocoInputError as exc:
        raise CrocoInputError(f"scene {name}: {exc}") from exc

    heights = np.empty((len(channels), *target.shape), dtype=np.float32)
    for i, channel in enumerate(channels):
        band = resample_to(rasters[channel], target, Resampling.bilinear)[0]
        ok = np.isfinite(band)
        if not ok.any():
            raise CrocoInputError(
                f"scene {name}: elevation channel '{channel}' has no valid value on the target grid"
            )
        heights[i] = fill_nearest(band, ok)
        valid &= ok
    return TileStack(
        name=name,
        rgb=rgb_u8,
        elevation=heights,
        valid=valid,
        crs=target.crs,
        transform=target.transform,
        channels=tuple(channels),
    )
