"""Tiny georeferenced test data written as real GeoTIFFs: DFC2018-shaped folders and raster pairs.

Helpers only (no pytest fixtures), so any test module may import them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from croco_pipeline.data import dfc2018
from croco_pipeline.data.dfc2018 import TileId
from croco_pipeline.data.geo import GeoRaster, write_geotiff
from croco_pipeline.data.stack import TileStack

UTM15 = CRS.from_epsg(dfc2018.CRS_EPSG)
#: NAD83 / Texas South Central (US survey feet), a Lambert conformal conic grid over Houston
TEXAS_FT = CRS.from_epsg(2278)

HeightFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class SquarePair(NamedTuple):
    """Paths of a two-CRS scene and its square feature (left, bottom, right, top) in EPSG:26915."""

    rgb: Path
    dsm: Path
    square: tuple[float, float, float, float]


def pixel_centres(transform: Affine, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates (x, y) of every pixel centre of a north-up grid, each of shape (rows, cols)."""
    cc, rr = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    return transform.c + transform.a * cc, transform.f + transform.e * rr


def write_raster(
    path: Path, data: np.ndarray, crs: CRS | None, transform: Affine, nodata: float | None = None
) -> Path:
    """Write ``data`` (bands, rows, cols) or (rows, cols) as a GeoTIFF; ``crs=None`` writes none."""
    write_geotiff(GeoRaster(data, crs, transform, nodata), path)  # type: ignore[arg-type]
    return path


def ramp_heights(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth plane, distinct at every pixel: easy to check where values came from."""
    return (0.01 * (x - 271000.0) + 0.001 * (y - 3289000.0)).astype(np.float32)


def write_dfc_release(
    root: Path,
    n_rows: int = 1,
    n_cols: int = 2,
    tile_m: float = 20.0,
    rgb_gsd: float = 0.25,
    channels: tuple[str, ...] = dfc2018.DEFAULT_CHANNELS,
    heights: HeightFn = ramp_heights,
) -> list[TileId]:
    """A DFC2018-layout folder with ``n_rows x n_cols`` square tiles of ``tile_m`` metres.

    RGB tiles (3 x uint8 at ``rgb_gsd``) hold value ``(row + col) % 256`` of their own pixel grid in
    band 1, 100 in band 2 and 200 in band 3. Mosaics (float32, 0.5 m, nodata = ``dfc2018.NODATA``)
    cover all tiles plus a 2 m rim, filled with ``heights(x, y)`` plus ``10 * channel index``.
    """
    x0, y_top = dfc2018.TILE_XMINS[0], dfc2018.TILE_YMINS[0] + tile_m
    tiles = []
    n_px = round(tile_m / rgb_gsd)
    rr, cc = np.mgrid[0:n_px, 0:n_px]
    band1 = ((rr + cc) % 256).astype(np.uint8)
    rgb = np.stack([band1, np.full_like(band1, 100), np.full_like(band1, 200)])
    for r in range(n_rows):
        for c in range(n_cols):
            tile = TileId(int(x0 + c * tile_m), int(y_top - (r + 1) * tile_m))
            transform = Affine(rgb_gsd, 0, tile.xmin, 0, -rgb_gsd, tile.ymin + tile_m)
            write_raster(root / tile.rgb_relpath, rgb, UTM15, transform)
            tiles.append(tile)
    rim, g = 2.0, dfc2018.MOSAIC_GSD
    transform = Affine(g, 0, x0 - rim, 0, -g, y_top + rim)
    rows, cols = round((n_rows * tile_m + 2 * rim) / g), round((n_cols * tile_m + 2 * rim) / g)
    cx, cy = pixel_centres(transform, rows, cols)
    for i, channel in enumerate(channels):
        data = heights(cx, cy) + 10.0 * i
        write_raster(
            root / dfc2018.ELEVATION_PRODUCTS[channel], data, UTM15, transform, dfc2018.NODATA
        )
    return tiles


def write_square_pair(folder: Path, rgb_ft: float = 0.5) -> SquarePair:
    """A scene in two CRSs with one square feature at the same ground location in both.

    Heights: EPSG:26915, 0.5 m, 100 m x 100 m from (500000, 3300000); a 10 m block over
    x 500030-500060, y 3300040-3300070 (metres). RGB: EPSG:2278 (US feet) at ``rgb_ft``, white inside
    the same square (tested per pixel centre after projecting to UTM), dark elsewhere.
    """
    g, x0, y0 = 0.5, 500000.0, 3300000.0
    square = (500030.0, 3300040.0, 500060.0, 3300070.0)

    def inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x >= square[0]) & (x < square[2]) & (y >= square[1]) & (y < square[3])

    h_tf = Affine(g, 0, x0, 0, -g, y0 + 100.0)
    hx, hy = pixel_centres(h_tf, 200, 200)
    dem = np.where(inside(hx, hy), 10.0, 0.0).astype(np.float32)
    dem_path = write_raster(folder / "dsm_utm.tif", dem, UTM15, h_tf, -9999.0)

    # RGB grid: the heights' footprint in feet, with a 5 m margin
    xs, ys = warp_transform(
        UTM15, TEXAS_FT, [x0 - 5, x0 + 105, x0 - 5, x0 + 105], [y0 - 5] * 2 + [y0 + 105] * 2
    )
    left, top = min(xs), max(ys)
    cols, rows = int((max(xs) - left) / rgb_ft) + 1, int((top - min(ys)) / rgb_ft) + 1
    r_tf = Affine(rgb_ft, 0, left, 0, -rgb_ft, top)
    px, py = pixel_centres(r_tf, rows, cols)
    ux, uy = warp_transform(TEXAS_FT, UTM15, px.ravel(), py.ravel())
    bright = inside(np.asarray(ux), np.asarray(uy)).reshape(rows, cols)
    grey = np.where(bright, 250, 20).astype(np.uint8)
    rgb_path = write_raster(folder / "rgb_ft.tif", np.stack([grey] * 3), TEXAS_FT, r_tf)
    return SquarePair(rgb_path, dem_path, square)


def make_stack(
    name: str,
    shape: tuple[int, int] = (40, 60),
    gsd: float = 0.5,
    origin: tuple[float, float] = (271460.0, 3290891.0),
    split: str = "train",
    elevation: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> TileStack:
    """An in-memory ``TileStack`` (one channel unless ``elevation`` says otherwise), top-left at ``origin``."""
    h, w = shape
    elev = elevation if elevation is not None else np.zeros((1, h, w), np.float32)
    return TileStack(
        name=name,
        rgb=np.zeros((3, h, w), np.uint8),
        elevation=elev.astype(np.float32),
        valid=valid if valid is not None else np.ones((h, w), bool),
        crs=UTM15,
        transform=Affine(gsd, 0, origin[0], 0, -gsd, origin[1]),
        channels=tuple(f"h{i}" for i in range(elev.shape[0])),
        split=split,
    )


def patch_grid(
    stack: TileStack, size: int, stride: int, r0: int = 0, c0: int = 0, split: str = "test"
) -> pd.DataFrame:
    """A patch index (the preprocess pipeline's columns) of ``stack`` on a regular grid from (r0, c0)."""
    h, w = stack.shape
    rr, cc = np.meshgrid(
        np.arange(r0, h - size + 1, stride), np.arange(c0, w - size + 1, stride), indexing="ij"
    )
    r, c, t = rr.ravel(), cc.ravel(), stack.transform
    x, y = t.c + t.a * (c + size / 2), t.f + t.e * (r + size / 2)  # north-up patch centres
    return pd.DataFrame(
        {
            "tile": stack.name,
            "split": split,
            "row": r,
            "col": c,
            "size_px": size,
            "x": x,
            "y": y,
            "valid_fraction": 1.0,
        }
    )


def random_stack(
    name: str,
    shape: tuple[int, int],
    gsd: float,
    origin: tuple[float, float],
    channels: tuple[str, str],
    split: str,
    seed: int,
    nodata_share: float,
) -> TileStack:
    """A two-channel ``TileStack`` of seeded random RGB, heights near -20 m and validity."""
    rng = np.random.default_rng(seed)
    h, w = shape
    return TileStack(
        name=name,
        rgb=rng.integers(0, 256, (3, h, w), dtype=np.uint8),
        elevation=rng.normal(-20, 5, (2, h, w)).astype(np.float32),
        valid=rng.random((h, w)) > nodata_share,
        crs=UTM15,
        transform=Affine(gsd, 0, origin[0], 0, -gsd, origin[1]),
        channels=channels,
        split=split,
    )
