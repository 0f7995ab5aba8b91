"""Optional LAS point tiles sampled from the synthetic height products (``write_las=True``).

Points are uniform at ``las_points_per_m2``; z is the first surface; classes follow ASPRS codes.
"""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np

from croco_pipeline.data.dfc2018 import CRS_EPSG, NODATA_ABS_LIMIT
from croco_pipeline.synthetic.config import SyntheticConfig
from croco_pipeline.synthetic.raster import Grid

GROUND, HIGH_VEGETATION, BUILDING = 2, 5, 6  # ASPRS LAS classification codes


def write_las_tile(
    path: Path,
    products: dict[str, np.ndarray],
    grid: Grid,
    cfg: SyntheticConfig,
    tile_key: tuple[int, int],
) -> None:
    """Write one LAS 1.4 tile of first returns over ``grid`` (no points over water or dropouts)."""
    rng = np.random.default_rng([cfg.seed, 4, *tile_key])
    left, bottom, right, top = grid.bounds
    n = rng.poisson(cfg.las_points_per_m2 * (right - left) * (top - bottom))
    x = rng.uniform(left, right, n)
    y = rng.uniform(bottom, top, n)
    row = np.minimum(((top - y) / grid.gsd).astype(np.int64), grid.rows - 1)
    col = np.minimum(((x - left) / grid.gsd).astype(np.int64), grid.cols - 1)
    dsm, demb, tli = (products[k][row, col] for k in ("DSM_C12", "DEM+B_C123", "DEM_C123_TLI"))
    keep = (np.abs(dsm) < NODATA_ABS_LIMIT) & (np.abs(tli) < NODATA_ABS_LIMIT)
    x, y, dsm, demb, tli = x[keep], y[keep], dsm[keep], demb[keep], tli[keep]
    cls = np.full(len(x), GROUND, dtype=np.uint8)
    cls[demb - tli > 1.0] = BUILDING
    cls[dsm - demb > 1.0] = HIGH_VEGETATION
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([np.floor(left), np.floor(bottom), 0.0])
    header.add_crs(_crs())
    las = laspy.LasData(header)
    las.x, las.y, las.z = x, y, dsm + rng.normal(0, 0.02, len(x))
    las.classification = cls
    las.intensity = np.clip(
        rng.normal(np.where(cls == HIGH_VEGETATION, 90, 160), 30), 0, 65535
    ).astype(np.uint16)
    las.gps_time = np.sort(rng.uniform(0, 3600, len(x)))
    path.parent.mkdir(parents=True, exist_ok=True)
    las.write(str(path))


def _crs() -> object:
    from pyproj import CRS

    return CRS.from_epsg(CRS_EPSG)
