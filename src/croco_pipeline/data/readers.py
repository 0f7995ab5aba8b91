"""Ingestion readers: a DFC2018 Phase 2 release folder, or one user RGB + elevation raster pair.

Readers return ``GeoRaster``s in their own CRS and grid; alignment happens in ``align.py``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from croco_pipeline.data import dfc2018
from croco_pipeline.data.dfc2018 import TileId
from croco_pipeline.data.geo import GeoRaster, read_geotiff
from croco_pipeline.errors import CrocoInputError, bad_param

PathLike = str | os.PathLike[str]
Bounds = tuple[float, float, float, float]
# GDAL decode failures surface as CPLE_* errors, open failures as RasterioError
_READ_ERRORS = (RasterioError, CPLE_BaseError)


def _metres_per_unit(crs: rasterio.crs.CRS, path: Path) -> float:
    """Linear unit of ``crs`` in metres (GSDs are given in metres; CRSs may be in feet)."""
    if crs.is_geographic:
        raise CrocoInputError(
            f"raster {path} has a geographic CRS ({crs}); a projected CRS is required"
        )
    return float(crs.linear_units_factor[1])


def _probe(path: Path, role: str) -> tuple[rasterio.crs.CRS, Bounds, float, int]:
    """Open ``path`` and return (crs, bounds, pixel size in metres, band count), or raise one clear error."""
    if not path.exists():
        raise CrocoInputError(f"{role} raster not found: {path}")
    try:
        with rasterio.open(path) as src:
            crs, res, count = src.crs, src.res, src.count
            b = src.bounds
            bounds = (float(b.left), float(b.bottom), float(b.right), float(b.top))
    except _READ_ERRORS as exc:
        raise CrocoInputError(
            f"cannot read {role} raster {path} (corrupt or not a raster): {exc}"
        ) from exc
    if crs is None:
        raise CrocoInputError(f"{role} raster {path} has no CRS; a georeferenced file is required")
    if role == "RGB" and count != 3:
        raise CrocoInputError(f"RGB raster {path} has {count} bands; expected 3 (R, G, B)")
    return crs, bounds, float(res[0]) * _metres_per_unit(crs, path), count


def _read(path: Path, **kwargs: object) -> GeoRaster:
    """``read_geotiff`` that also turns decode errors from corrupt blocks into ``CrocoInputError``."""
    try:
        return read_geotiff(path, **kwargs)  # type: ignore[arg-type]
    except _READ_ERRORS as exc:
        raise CrocoInputError(f"cannot read raster {path} (corrupt data): {exc}") from exc


def mask_elevation(raster: GeoRaster) -> GeoRaster:
    """Float32 copy with the file nodata, NaN and |v| > ``NODATA_ABS_LIMIT`` all set to NaN."""
    data = raster.data.astype(np.float32)
    bad = ~np.isfinite(data) | (np.abs(data) > dfc2018.NODATA_ABS_LIMIT)
    if raster.nodata is not None and not math.isnan(raster.nodata):
        bad |= raster.data == raster.nodata
    data[bad] = np.nan
    return GeoRaster(data, raster.crs, raster.transform, float("nan"), raster.band_names)


def _read_rgb_decimated(path: Path, window: Window, src_gsd_m: float, gsd: float) -> GeoRaster:
    """Read an RGB window, averaging whole ``k x k`` blocks down to about ``gsd`` (never upsampling).

    GDAL's out_shape read decodes block by block (or uses overviews), so the full-resolution window is
    never held in memory.
    """
    factor = max(1, int(math.floor(gsd / src_gsd_m + 1e-6)))
    shape = (max(1, round(window.height / factor)), max(1, round(window.width / factor)))
    # each block is decoded once, so GDAL's block cache (default 5 % of RAM) would only bloat memory
    with rasterio.Env(GDAL_CACHEMAX=64):
        return _read(
            path, window=window, out_shape=shape, resampling=rasterio.enums.Resampling.average
        )


def _intersect(a: Bounds, b: Bounds) -> Bounds | None:
    left, bottom = max(a[0], b[0]), max(a[1], b[1])
    right, top = min(a[2], b[2]), min(a[3], b[3])
    return (left, bottom, right, top) if right > left and top > bottom else None


def _window(path: Path, bounds: Bounds) -> Window:
    """Pixel window of ``path`` covering ``bounds`` (rounded outwards, clipped to the raster)."""
    with rasterio.open(path) as src:
        win = from_bounds(*bounds, transform=src.transform)
        win = win.round_offsets(op="floor").round_lengths(op="ceil")
        full = Window(0, 0, src.width, src.height)
        return win.intersection(full)


class Dfc2018Release:
    """A DFC2018 Phase 2 release folder (real or synthetic): tile discovery and per-tile reads.

    Args:
        root: the ``Phase2`` folder holding ``Final RGB HR Imagery`` and ``Lidar GeoTiff Rasters``.
        channels: elevation products to read, names from ``dfc2018.ELEVATION_PRODUCTS``.

    Raises:
        CrocoInputError: missing files (all listed in one message) or no RGB tile found.
        CrocoConfigError: an unknown channel name.
    """

    def __init__(
        self, root: PathLike, channels: tuple[str, ...] = dfc2018.DEFAULT_CHANNELS
    ) -> None:
        self.root = Path(root)
        unknown = [c for c in channels if c not in dfc2018.ELEVATION_PRODUCTS]
        if unknown or not channels:
            raise bad_param(
                "preprocess.channels",
                list(channels),
                f"names from {list(dfc2018.ELEVATION_PRODUCTS)}",
            )
        self.channels = tuple(channels)
        self.tiles = self._discover_tiles()
        missing = [dfc2018.ELEVATION_PRODUCTS[c] for c in self.channels]
        missing = [p for p in missing if not (self.root / p).exists()]
        if not self.tiles:
            # no tile at all: report the whole expected RGB grid as missing
            missing = [t.rgb_relpath for t in dfc2018.all_tiles()] + missing
        if missing:
            layout = "\n  ".join(dfc2018.expected_layout())
            listed = "\n  ".join(missing)
            raise CrocoInputError(
                f"DFC2018 release at {self.root} is incomplete; missing {len(missing)} file(s):\n  "
                f"{listed}\nexpected layout (relative to the release root):\n  {layout}"
            )

    def _discover_tiles(self) -> list[TileId]:
        """RGB tiles present, north row first then west to east (the grid may be partial)."""
        folder = self.root / dfc2018.RGB_DIR
        tiles = []
        for path in sorted(folder.glob("UH_NAD83_*_*.tif")) if folder.is_dir() else []:
            try:
                tiles.append(TileId.parse(path.stem))
            except ValueError:
                continue  # a stray file whose name is not a tile id
        return sorted(tiles, key=lambda t: (-t.ymin, t.xmin))

    def elevation_path(self, channel: str) -> Path:
        return self.root / dfc2018.ELEVATION_PRODUCTS[channel]

    def read_tile(self, tile: TileId, gsd: float) -> dict[str, GeoRaster]:
        """Read one tile: RGB averaged down to ``gsd`` metres and each channel's mosaic window at 0.5 m.

        Returns:
            {"rgb": uint8 (3, H, W) over the RGB file's exact extent, <channel>: float32 (1, h, w)
            with nodata as NaN, on the mosaic's native grid}.
        """
        if not gsd > 0:
            raise bad_param("preprocess.gsd", gsd, "a positive pixel size in metres")
        rgb_path = self.root / tile.rgb_relpath
        _, rgb_bounds, rgb_gsd, _ = _probe(rgb_path, "RGB")
        with rasterio.open(rgb_path) as src:
            full = Window(0, 0, src.width, src.height)
        out: dict[str, GeoRaster] = {"rgb": _read_rgb_decimated(rgb_path, full, rgb_gsd, gsd)}
        for channel in self.channels:
            path = self.elevation_path(channel)
            _, bounds, _, _ = _probe(path, f"elevation ({channel})")
            if _intersect(bounds, rgb_bounds) is None:
                raise CrocoInputError(
                    f"tile {tile.name} ({rgb_path}) does not overlap the {channel} mosaic {path}"
                )
            out[channel] = mask_elevation(_read(path, window=_window(path, rgb_bounds)))
        return out


def read_raster_pair(
    rgb: PathLike, elevation: dict[str, PathLike], gsd: float, margin_m: float = 10.0
) -> dict[str, GeoRaster]:
    """Read one user scene: an RGB raster and elevation rasters, each in its own CRS and grid.

    Each raster is cropped to the common footprint (plus ``margin_m`` for resampling). RGB much finer
    than ``gsd`` is averaged down at read time by a whole factor (overviews used when present).

    Raises:
        CrocoInputError: missing/corrupt file, no CRS, RGB without 3 bands, rasters that do not overlap.
    """
    if not gsd > 0:
        raise bad_param("preprocess.gsd", gsd, "a positive pixel size in metres")
    if not elevation:
        raise bad_param("elevation", elevation, "at least one elevation raster")
    rgb_path = Path(rgb)
    rgb_crs, rgb_bounds, rgb_gsd, _ = _probe(rgb_path, "RGB")
    elev_paths = {name: Path(p) for name, p in elevation.items()}
    probes = {name: _probe(p, f"elevation ({name})") for name, p in elev_paths.items()}
    # footprint common to all rasters, expressed in the RGB CRS
    common: Bounds | None = rgb_bounds
    for name, (crs, bounds, _, _) in probes.items():
        in_rgb = transform_bounds(crs, rgb_crs, *bounds, densify_pts=21)
        common = _intersect(common, in_rgb) if common is not None else None
        if common is None:
            raise CrocoInputError(
                f"rasters do not overlap: RGB {rgb_path} and elevation {elev_paths[name]} ({name})"
            )
    assert common is not None
    pad = margin_m / _metres_per_unit(rgb_crs, rgb_path)
    crop = (common[0] - pad, common[1] - pad, common[2] + pad, common[3] + pad)
    out = {"rgb": _read_rgb_decimated(rgb_path, _window(rgb_path, crop), rgb_gsd, gsd)}
    for name, path in elev_paths.items():
        crs = probes[name][0]
        elev_crop = transform_bounds(rgb_crs, crs, *crop, densify_pts=21)
        out[name] = mask_elevation(_read(path, window=_window(path, elev_crop)))
    return out
