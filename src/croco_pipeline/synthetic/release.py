"""Writes a synthetic DFC2018-shaped release folder, tile by tile, and swaps it into place atomically.

A ``SYNTHETIC.json`` marker records the config, so a real release is never overwritten and an
unchanged config reuses the release already there (``ensure_synthetic_release``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from croco_pipeline.data.dfc2018 import CRS_EPSG, ELEVATION_PRODUCTS, MOSAIC_GSD, NODATA, TileId
from croco_pipeline.data.geo import GeoRaster, write_geotiff
from croco_pipeline.data.source import SYNTHETIC_MARKER
from croco_pipeline.errors import CrocoInputError
from croco_pipeline.synthetic.city import plan_scene
from croco_pipeline.synthetic.config import SyntheticConfig
from croco_pipeline.synthetic.lidar import write_las_tile
from croco_pipeline.synthetic.photo import render_photo
from croco_pipeline.synthetic.plan import grid_bounds
from croco_pipeline.synthetic.raster import Grid
from croco_pipeline.synthetic.scene import height_products

MARKER = SYNTHETIC_MARKER
GENERATOR_VERSION = "1.0"


def tile_grid(cfg: SyntheticConfig) -> list[tuple[int, int, TileId]]:
    """(row, col, tile) for every tile, north row first, west to east; names are lower-left corners."""
    left, bottom, _, _ = grid_bounds(cfg)
    out = []
    for r in range(cfg.n_rows):
        ymin = int(round(bottom + (cfg.n_rows - 1 - r) * cfg.tile_height_m))
        for c in range(cfg.n_cols):
            out.append((r, c, TileId(int(round(left + c * cfg.tile_width_m)), ymin)))
    return out


def marker_payload(cfg: SyntheticConfig) -> dict[str, object]:
    """What ``SYNTHETIC.json`` holds: the generator version and the full config."""
    return {
        "generator": "croco_pipeline.synthetic",
        "version": GENERATOR_VERSION,
        "config": cfg.model_dump(),
    }


def release_matches(root: str | Path, cfg: SyntheticConfig) -> bool:
    """True when ``root`` holds a synthetic release made by this version from the same config."""
    marker = Path(root) / MARKER
    try:
        return bool(json.loads(marker.read_text()) == json.loads(json.dumps(marker_payload(cfg))))
    except (OSError, ValueError):
        return False


def ensure_synthetic_release(
    root: str | Path, config: SyntheticConfig, progress: Callable[[str], None] | None = None
) -> str:
    """Make ``root`` hold the synthetic release of ``config``, unless it holds a real release.

    Returns:
        What was done: ``"written"`` (missing, or synthetic from another config), ``"reused"`` (the
        same config's release is already there) or ``"not synthetic"`` (``root`` holds data without
        the ``SYNTHETIC.json`` marker, e.g. a real DFC2018 release: left untouched).
    """
    root = Path(root)
    if root.exists() and not (root / MARKER).is_file():
        return "not synthetic"
    if release_matches(root, config):
        return "reused"
    write_synthetic_release(root, config, progress)
    return "written"


def write_synthetic_release(
    root: str | Path, config: SyntheticConfig, progress: Callable[[str], None] | None = None
) -> list[str]:
    """Write the release under ``root``; return the relative paths written.

    Built in a temporary sibling folder and renamed into place, replacing an older synthetic release.

    Raises:
        CrocoInputError: ``root`` exists but is not a synthetic release (no ``SYNTHETIC.json``).
    """
    root = Path(root)
    if root.exists() and not (root / MARKER).is_file():
        raise CrocoInputError(
            f"refusing to write a synthetic release into {root}: it exists and has no {MARKER} "
            "(it may be a real DFC2018 release); choose an empty or new folder"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    work = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        written = _build(work, config, progress or (lambda _msg: None))
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        if root.exists():
            os.replace(root, old)
        os.replace(work, root)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return written


def _build(work: Path, cfg: SyntheticConfig, progress: Callable[[str], None]) -> list[str]:
    crs = CRS.from_epsg(CRS_EPSG)
    scene = plan_scene(cfg)
    left, bottom, right, top = grid_bounds(cfg)
    tile_rows = int(round(cfg.tile_height_m / MOSAIC_GSD))
    tile_cols = int(round(cfg.tile_width_m / MOSAIC_GSD))
    mosaics = {
        name: np.full((cfg.n_rows * tile_rows, cfg.n_cols * tile_cols), NODATA, dtype=np.float32)
        for name in ELEVATION_PRODUCTS
    }
    written: list[str] = []
    tiles = tile_grid(cfg)
    for k, (r, c, tile) in enumerate(tiles, start=1):
        bounds = (tile.xmin, tile.ymin, tile.xmin + cfg.tile_width_m, tile.ymin + cfg.tile_height_m)
        grid = Grid(bounds[0], bounds[3], MOSAIC_GSD, tile_rows, tile_cols)
        rng = np.random.default_rng([cfg.seed, 1, r, c])
        products = height_products(scene, grid, rng, cfg.dropouts_per_ha)
        for name, arr in products.items():
            mosaics[name][
                r * tile_rows : (r + 1) * tile_rows, c * tile_cols : (c + 1) * tile_cols
            ] = arr
        photo = render_photo(scene, cfg, bounds, (r, c))
        transform = Affine(cfg.rgb_gsd, 0.0, bounds[0], 0.0, -cfg.rgb_gsd, bounds[3])
        write_geotiff(
            GeoRaster(photo, crs, transform, None, ("red", "green", "blue")),
            work / tile.rgb_relpath,
        )
        written.append(tile.rgb_relpath)
        del photo
        if cfg.write_las:
            write_las_tile(work / tile.las_relpath, products, grid, cfg, (r, c), scene)
            written.append(tile.las_relpath)
        progress(f"synthetic tile {tile.name} ({k}/{len(tiles)}) written")
    transform = Affine(MOSAIC_GSD, 0.0, left, 0.0, -MOSAIC_GSD, top)
    for name, rel in ELEVATION_PRODUCTS.items():
        # uncompressed: LiDAR noise makes deflate slow (2 s per mosaic) for a 35 % saving
        mosaic = GeoRaster(mosaics.pop(name), crs, transform, NODATA, (name,))
        write_geotiff(mosaic, work / rel, compress="none")
        written.append(rel)
    (work / MARKER).write_text(json.dumps(marker_payload(cfg), indent=2) + "\n")
    written.append(MARKER)
    progress(f"synthetic elevation mosaics written ({right - left:.0f} m x {top - bottom:.0f} m)")
    return written
