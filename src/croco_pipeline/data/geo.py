"""Georeferenced rasters in memory (``GeoRaster``) and their GeoTIFF round trip.

Every raster keeps its CRS, transform, nodata and band names from ingestion to the final heatmap.
Writes are atomic (``croco_pipeline.data.atomic``): a temporary file renamed into place when complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window

from croco_pipeline.data.atomic import atomic_path
from croco_pipeline.errors import CrocoInputError


class OnGrid:
    """What a raster on a north-up affine grid (``transform``, square pixels) knows of its pixels."""

    transform: Affine

    @property
    def gsd(self) -> float:
        """Pixel size in CRS units (square pixels assumed; the x size is returned)."""
        return float(abs(self.transform.a))


@dataclass
class GeoRaster(OnGrid):
    """A raster: ``data`` of shape (bands, rows, cols) on the grid given by ``crs`` and ``transform``."""

    data: np.ndarray
    crs: CRS
    transform: Affine
    nodata: float | None = None
    band_names: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.data.ndim == 2:
            self.data = self.data[None]
        if self.data.ndim != 3:
            raise ValueError(
                f"GeoRaster data must be (bands, rows, cols), got shape {self.data.shape}"
            )
        if self.band_names and len(self.band_names) != self.data.shape[0]:
            raise ValueError(
                f"{len(self.band_names)} band names for {self.data.shape[0]} bands: {self.band_names}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return int(self.data.shape[1]), int(self.data.shape[2])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units, for a north-up grid."""
        rows, cols = self.shape
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (cols, rows)
        return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))


def read_geotiff(
    path: str | os.PathLike[str],
    *,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
    resampling: rasterio.enums.Resampling = rasterio.enums.Resampling.average,
    require_crs: bool = True,
) -> GeoRaster:
    """Read a raster (optionally a window, optionally decimated to ``out_shape``) with its geometry.

    Raises:
        CrocoInputError: the file is missing, unreadable, or has no CRS while ``require_crs``.
    """
    path = Path(path)
    if not path.exists():
        raise CrocoInputError(f"raster file not found: {path}")
    try:
        with rasterio.open(path) as src:
            if require_crs and src.crs is None:
                raise CrocoInputError(f"raster {path} has no CRS; a georeferenced file is required")
            win = window if window is not None else Window(0, 0, src.width, src.height)
            shape = out_shape if out_shape is not None else (int(win.height), int(win.width))
            data = src.read(window=win, out_shape=(src.count, *shape), resampling=resampling)
            base = src.window_transform(win)
            transform = base @ Affine.scale(win.width / shape[1], win.height / shape[0])
            names = tuple(d or f"band{i + 1}" for i, d in enumerate(src.descriptions))
            return GeoRaster(data, src.crs, transform, src.nodata, names)
    except (RasterioError, CPLE_BaseError) as exc:
        raise CrocoInputError(f"cannot read raster {path}: {exc}") from exc


def write_geotiff(
    raster: GeoRaster,
    path: str | os.PathLike[str],
    *,
    compress: str = "deflate",
    tags: dict[str, str] | None = None,
) -> None:
    """Write ``raster`` as a tiled GeoTIFF at ``path`` atomically (temporary file, then rename).

    ``tags`` (dataset-level GeoTIFF metadata) are written into the temporary file too, so the file
    that appears at ``path`` is complete.
    """
    bands, rows, cols = raster.data.shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": bands,
        "dtype": raster.data.dtype.name if raster.data.dtype != np.bool_ else "uint8",
        "crs": raster.crs,
        "transform": raster.transform,
        "nodata": raster.nodata,
        "compress": compress,
        "BIGTIFF": "IF_SAFER",
    }
    if rows >= 256 and cols >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(raster.data.astype(profile["dtype"], copy=False))
        for i, name in enumerate(raster.band_names, start=1):
            dst.set_band_description(i, name)
        if tags:
            dst.update_tags(**tags)
