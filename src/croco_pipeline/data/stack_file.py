"""The tile stack's file format: one float32 GeoTIFF with bands red, green, blue, <elevation
channels>, valid, and the tile name and split as GeoTIFF tags (written before the atomic rename).

``read_stack`` gives a ``TileStack`` (for the pipelines); ``load_stack`` gives an ``xarray.DataArray``
with band names, pixel-centre x/y coordinates and the CRS (for a user exploring a run).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from croco_pipeline.data.geo import GeoRaster, read_geotiff, write_geotiff
from croco_pipeline.data.stack import TileStack
from croco_pipeline.errors import CrocoInputError

VALID_BAND = "valid"
RGB_BANDS = ("red", "green", "blue")
STACK_TAGS = ("tile", "split")  # GeoTIFF tags a stack must carry


def write_stack(stack: TileStack, path: str | os.PathLike[str]) -> None:
    """Write ``stack`` as one GeoTIFF, tags included, atomically."""
    bands = np.concatenate(
        [
            stack.rgb.astype(np.float32),
            stack.elevation.astype(np.float32),
            stack.valid[None].astype(np.float32),
        ]
    )
    names = RGB_BANDS + tuple(stack.channels) + (VALID_BAND,)
    raster = GeoRaster(bands, stack.crs, stack.transform, None, names)
    write_geotiff(raster, path, tags={"tile": stack.name, "split": stack.split})


def _read_checked(path: Path) -> tuple[GeoRaster, dict[str, str]]:
    """The stack's raster and tags, or CrocoInputError naming the file and what is wrong."""
    raster = read_geotiff(path)
    names = raster.band_names
    if names[:3] != RGB_BANDS or names[-1] != VALID_BAND:
        raise CrocoInputError(f"{path} is not a tile stack (bands {names})")
    with rasterio.open(path) as src:
        tags = src.tags()
    missing = [key for key in STACK_TAGS if key not in tags]
    if missing:
        raise CrocoInputError(
            f"tile stack {path} has no {' or '.join(missing)} tag: it was not written by "
            "write_stack (or was written half); rebuild it with `kedro run --pipelines=preprocess`"
        )
    return raster, tags


def read_stack(path: str | os.PathLike[str]) -> TileStack:
    """Read a stack written by ``write_stack``.

    Raises:
        CrocoInputError: missing or unreadable file, bands not those of a stack, tags missing.
    """
    raster, tags = _read_checked(Path(path))
    data = raster.data
    return TileStack(
        name=tags["tile"],
        rgb=np.clip(np.rint(data[:3]), 0, 255).astype(np.uint8),
        elevation=np.ascontiguousarray(data[3:-1], dtype=np.float32),
        valid=data[-1] > 0.5,
        crs=raster.crs,
        transform=raster.transform,
        channels=tuple(raster.band_names[3:-1]),
        split=tags["split"],
    )


def raster_to_dataarray(raster: GeoRaster, name: str | None = None) -> xr.DataArray:
    """A north-up ``GeoRaster`` as a DataArray (band, y, x): band names, pixel-centre coordinates
    in the raster's CRS, and CRS, transform and nodata recorded for rioxarray (``da.rio``)."""
    t = raster.transform
    if t.b != 0 or t.d != 0:
        raise ValueError(f"a rotated grid has no 1-D x/y coordinates (transform {tuple(t)[:6]})")
    rows, cols = raster.shape
    names = raster.band_names or tuple(f"band{i + 1}" for i in range(raster.data.shape[0]))
    da = xr.DataArray(
        raster.data,
        dims=("band", "y", "x"),
        coords={
            "band": list(names),
            "y": t.f + t.e * (np.arange(rows) + 0.5),
            "x": t.c + t.a * (np.arange(cols) + 0.5),
        },
        name=name,
    )
    da = da.rio.write_crs(raster.crs).rio.write_transform(t)
    return da.rio.write_nodata(raster.nodata) if raster.nodata is not None else da


def load_stack(path: str | os.PathLike[str]) -> xr.DataArray:
    """A tile stack as a float32 DataArray (band, y, x) named after its tile.

    Bands are named (``red``, ``green``, ``blue``, the elevation channels, ``valid``); ``x``/``y``
    are the map coordinates of pixel centres; ``da.rio.crs`` and ``da.rio.transform()`` give the
    grid; ``da.attrs`` holds ``tile`` and ``split``. Select with ``da.sel(band="DSM_C12")``.

    Raises:
        CrocoInputError: as ``read_stack``.
    """
    raster, tags = _read_checked(Path(path))
    da = raster_to_dataarray(raster, name=tags["tile"])
    da.attrs.update(tile=tags["tile"], split=tags["split"])
    return da
