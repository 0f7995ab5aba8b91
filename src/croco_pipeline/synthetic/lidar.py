"""LAS point tiles of the synthetic release, sampled from the same scene as its height products.

Pulses fall at random (Poisson, ``las_points_per_m2`` per m2); each pulse's first return lies on the
first surface of the DSM cell it hits, so the highest return per 0.5 m cell reproduces ``DSM_C12``.
Pulses on tree crowns also return from inside the crown and, through gaps, from the ground. Classes
follow ASPRS: 1 unclassified (cars), 2 ground, 3-5 low/medium/high vegetation, 6 building.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import laspy
import numpy as np

from croco_pipeline.data.dfc2018 import CRS_EPSG, NODATA_ABS_LIMIT
from croco_pipeline.synthetic.config import SyntheticConfig
from croco_pipeline.synthetic.raster import Grid
from croco_pipeline.synthetic.scene import Scene, buildings, canopy, cars

UNCLASSIFIED, GROUND, LOW_VEG, MEDIUM_VEG, HIGH_VEG, BUILDING = 1, 2, 3, 4, 5, 6
#: vertical ranging noise of one return (metres, 1 sigma)
RANGE_NOISE_M = 0.05
#: chance that a pulse on a crown also returns from the ground, and odds of 0/1/2 crown returns
GROUND_THROUGH_CANOPY = 0.7
CROWN_RETURNS_P = (0.35, 0.4, 0.25)
LAS_SCALE = 0.01  # metres per stored integer unit


@dataclass
class Returns:
    """Points of one tile, one row per return: first returns, then the later returns of tree pulses."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    cls: np.ndarray
    return_number: np.ndarray
    number_of_returns: np.ndarray
    gps_time: np.ndarray


def vegetation_class(height_above_ground: np.ndarray) -> np.ndarray:
    """ASPRS vegetation class by height above ground: < 0.5 m low, < 2 m medium, else high."""
    return np.where(
        height_above_ground < 0.5,
        LOW_VEG,
        np.where(height_above_ground < 2.0, MEDIUM_VEG, HIGH_VEG),
    ).astype(np.uint8)


def sample_returns(
    scene: Scene,
    products: dict[str, np.ndarray],
    grid: Grid,
    density: float,
    rng: np.random.Generator,
) -> Returns:
    """Sample pulses over ``grid`` and their returns (none over water or the DSM's dropouts)."""
    dsm_grid, tli_grid = products["DSM_C12"], products["DEM_C123_TLI"]
    valid = (np.abs(dsm_grid) < NODATA_ABS_LIMIT) & (np.abs(tli_grid) < NODATA_ABS_LIMIT)
    # a Poisson process drawn cell by cell: counts per cell, then uniform positions inside each cell
    # (equivalent to uniform positions over the tile, and the gathers below stay in memory order)
    counts = rng.poisson(density * grid.gsd**2, size=valid.size)
    counts[~valid.ravel()] = 0
    cell = np.repeat(np.arange(valid.size, dtype=np.int64), counts)
    row, col = np.divmod(cell, grid.cols)
    # offsets on the LAS file's 1 cm lattice, strictly inside the cell: a stored point never lands
    # on a cell edge, so its cell (and the DSM value it was drawn from) survives the quantisation
    per_cell = int(round(grid.gsd / LAS_SCALE))
    offsets = rng.integers(1, per_cell, size=(2, len(cell))) * LAS_SCALE
    x = grid.left + col * grid.gsd + offsets[0]
    y = grid.top - row * grid.gsd - offsets[1]

    def at(raster: np.ndarray) -> np.ndarray:
        return np.repeat(raster.ravel(), counts)

    dsm, tli = at(dsm_grid), at(tli_grid)
    roofs = at(buildings(scene, grid)[0])
    crown = at(canopy(scene, grid, photo=False))
    parked = at(cars(scene, grid, photo=False))
    on_tree = (crown > 1.0) & (crown > roofs) & (crown > parked)
    cls = np.full(len(x), GROUND, dtype=np.uint8)
    cls[(parked > 0) & (parked >= roofs)] = UNCLASSIFIED
    cls[(roofs > 0.5) & (roofs > parked)] = BUILDING
    cls[on_tree] = vegetation_class(dsm[on_tree] - tli[on_tree])
    first_z = dsm + rng.normal(0.0, RANGE_NOISE_M, len(x))
    time = np.linspace(0.0, 3600.0, len(x))  # pulses in cell order, one per tick
    ones = np.ones(len(x), np.uint8)
    first = Returns(x, y, first_z, cls, ones, ones.copy(), time)
    return _with_canopy_returns(first, on_tree, tli, rng)


def _with_canopy_returns(
    first: Returns, on_tree: np.ndarray, ground: np.ndarray, rng: np.random.Generator
) -> Returns:
    """Add crown-interior and ground returns behind the first returns of pulses on trees.

    Crown returns lie between 0.3 m below the first return and 0.5 m above the ground, the k-th of n
    in the k-th of n equal height bins (kept apart, as a real receiver separates echoes); crowns less
    than 2 m above the ground give a single return.
    """
    idx = np.flatnonzero(on_tree & (first.z - ground > 2.0))
    n_crown = rng.choice(len(CROWN_RETURNS_P), size=len(idx), p=CROWN_RETURNS_P)
    hits_ground = rng.random(len(idx)) < GROUND_THROUGH_CANOPY
    total = 1 + n_crown + hits_ground
    first.number_of_returns[idx] = total
    parts = [first]
    top, base = first.z[idx] - 0.3, ground[idx] + 0.5
    for k in (1, 2):
        sel = n_crown >= k
        i = idx[sel]
        step = (top[sel] - base[sel]) / n_crown[sel]
        z = top[sel] - step * (k - 1 + rng.uniform(0.1, 0.9, len(i)))
        parts.append(_later(first, i, z, vegetation_class(z - ground[i]), k + 1))
    i = idx[hits_ground]
    z = ground[i] + rng.normal(0.0, RANGE_NOISE_M, len(i))
    parts.append(_later(first, i, z, np.full(len(i), GROUND, np.uint8), total[hits_ground]))
    # later returns follow the first returns (a LAS file need not be in time order)
    return Returns(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("x", "y", "z", "cls", "return_number", "number_of_returns", "gps_time")


def _later(
    first: Returns, i: np.ndarray, z: np.ndarray, cls: np.ndarray, number: object
) -> Returns:
    """Returns of pulses ``i`` (same x, y, time) at heights ``z`` with return number ``number``."""
    return Returns(
        first.x[i],
        first.y[i],
        z,
        cls,
        np.broadcast_to(np.asarray(number, np.uint8), (len(i),)).copy(),
        first.number_of_returns[i],
        first.gps_time[i],
    )


def write_las_tile(
    path: Path,
    products: dict[str, np.ndarray],
    grid: Grid,
    cfg: SyntheticConfig,
    tile_key: tuple[int, int],
    scene: Scene,
) -> None:
    """Write one LAS 1.4 (point format 1) tile over ``grid`` with its CRS (EPSG:26915)."""
    rng = np.random.default_rng([cfg.seed, 4, *tile_key])
    pts = sample_returns(scene, products, grid, cfg.las_points_per_m2, rng)
    left, bottom, _, _ = grid.bounds
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.scales = np.full(3, LAS_SCALE)
    header.offsets = np.array([np.floor(left), np.floor(bottom), 0.0])
    header.add_crs(_crs())
    record = laspy.ScaleAwarePointRecord.zeros(len(pts.x), header=header)
    record.x, record.y, record.z = pts.x, pts.y, pts.z
    record.classification = pts.cls
    record.return_number = pts.return_number
    record.number_of_returns = pts.number_of_returns
    veg = (pts.cls >= LOW_VEG) & (pts.cls <= HIGH_VEG)
    level = np.where(veg, 90.0, np.where(pts.cls == BUILDING, 180.0, 150.0)) / pts.return_number
    record.intensity = np.clip(rng.normal(level, 25.0), 0, 65535).astype(np.uint16)
    record.gps_time = pts.gps_time
    path.parent.mkdir(parents=True, exist_ok=True)
    with laspy.open(path, mode="w", header=header) as writer:
        writer.write_points(record)


def _crs() -> object:
    from pyproj import CRS

    return CRS.from_epsg(CRS_EPSG)
