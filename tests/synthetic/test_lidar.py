"""The synthetic LAS tiles agree with the release's own rasters and look like an airborne survey."""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pytest
import rasterio

from croco_pipeline.data.dfc2018 import CRS_EPSG, ELEVATION_PRODUCTS, NODATA_ABS_LIMIT
from croco_pipeline.synthetic.config import SyntheticConfig
from croco_pipeline.synthetic.lidar import (
    BUILDING,
    GROUND,
    HIGH_VEG,
    LOW_VEG,
    MEDIUM_VEG,
    vegetation_class,
)
from croco_pipeline.synthetic.release import write_synthetic_release

SIDE = 100  # metres; seed 4 puts buildings, trees, cars and open ground in this corner
DENSITY = 10.0


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[laspy.LasData, dict, Path]:
    root = tmp_path_factory.mktemp("lidar") / "release"
    cfg = SyntheticConfig(
        seed=4,
        tile_width_m=SIDE,
        tile_height_m=SIDE,
        n_rows=1,
        n_cols=1,
        write_las=True,
        las_points_per_m2=DENSITY,
    )
    write_synthetic_release(root, cfg)
    las = laspy.read(root / "Lidar Point Cloud Tiles/C123/271460_3289689.las")
    rasters = {}
    for name, rel in ELEVATION_PRODUCTS.items():
        with rasterio.open(root / rel) as src:
            rasters[name] = (src.read(1).astype(np.float64), src.transform)
    return las, rasters, root


def _cells(las: laspy.LasData, transform: object, shape: tuple[int, int]) -> np.ndarray:
    """Flat index of the 0.5 m raster cell each point falls in (from the raster's own transform)."""
    inv = ~transform  # type: ignore[operator]
    col, row = inv * (np.asarray(las.x), np.asarray(las.y))
    row, col = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
    assert row.min() >= 0 and col.min() >= 0 and row.max() < shape[0] and col.max() < shape[1]
    return row * shape[1] + col


def test_header_crs_and_format(release: tuple) -> None:
    las, _, _ = release
    assert las.header.parse_crs().to_epsg() == CRS_EPSG
    x, y = np.asarray(las.x), np.asarray(las.y)
    assert 271460 < x.min() and x.max() < 271460 + SIDE
    assert 3289689 < y.min() and y.max() < 3289689 + SIDE
    # random positions, not a grid: sub-cell offsets take most of the 1 cm values inside a cell
    sub = np.unique(np.rint((x - 271460) * 100).astype(np.int64) % 50)
    assert len(sub) >= 45


def test_highest_return_matches_dsm_and_ground_matches_dem(release: tuple) -> None:
    las, rasters, _ = release
    dsm, transform = rasters["DSM_C12"]
    cell = _cells(las, transform, dsm.shape)
    z = np.asarray(las.z)
    highest = np.full(dsm.size, -np.inf)
    np.maximum.at(highest, cell, z)
    valid = np.abs(dsm.ravel()) < NODATA_ABS_LIMIT
    hit = np.isfinite(highest)
    assert not (hit & ~valid).any()  # no return over water or DSM dropouts
    # Poisson with 2.5 pulses per 0.25 m2 cell leaves exp(-2.5) = 8 % of cells empty
    assert abs((hit & valid).sum() / valid.sum() - (1 - np.exp(-DENSITY * 0.25))) < 0.02
    diff = highest[hit] - dsm.ravel()[hit]
    assert np.sqrt(np.mean(diff**2)) < 0.1  # about 5 cm ranging noise
    ground = las.classification == GROUND
    msr = rasters["DEM_C123_3msr"][0].ravel()
    lowest = np.full(msr.size, np.inf)
    np.minimum.at(lowest, cell[ground], z[ground])
    both = np.isfinite(lowest) & (np.abs(msr) < NODATA_ABS_LIMIT)
    assert both.sum() > 0.6 * valid.sum()
    assert np.sqrt(np.mean((lowest[both] - msr[both]) ** 2)) < 0.1


def test_density_and_multiple_returns(release: tuple) -> None:
    las, rasters, _ = release
    dsm = rasters["DSM_C12"][0]
    valid_m2 = (np.abs(dsm) < NODATA_ABS_LIMIT).sum() * 0.25
    rn, nr = np.asarray(las.return_number), np.asarray(las.number_of_returns)
    assert (rn >= 1).all() and (rn <= nr).all()
    first = rn == 1
    assert first.sum() / valid_m2 == pytest.approx(DENSITY, rel=0.05)
    # group returns by pulse (same x, y, time): each pulse holds exactly number_of_returns returns,
    # numbered 1..n from the top down
    key = np.stack([np.asarray(las.X), np.asarray(las.Y), np.asarray(las.gps_time) * 1e6], 1)
    _, pulse, count = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    assert (count[pulse] == nr).all()
    multi = nr > 1
    assert multi.sum() > 0.05 * len(nr)
    order = np.lexsort((rn, pulse))
    z, p = np.asarray(las.z)[order], pulse[order]
    same = p[1:] == p[:-1]
    assert (z[1:][same] < z[:-1][same]).all()
    cls = np.asarray(las.classification)
    assert np.isin(cls[multi & first], [LOW_VEG, MEDIUM_VEG, HIGH_VEG]).all()
    last = multi & (rn == nr)
    assert (cls[last] == GROUND).mean() > 0.5  # most pulses through a crown reach the ground


def test_classes_follow_the_surface(release: tuple) -> None:
    las, rasters, _ = release
    dsm, transform = rasters["DSM_C12"]
    cell = _cells(las, transform, dsm.shape)
    first = np.asarray(las.return_number) == 1
    cls = np.asarray(las.classification)
    tli = rasters["DEM_C123_TLI"][0].ravel()[cell]
    demb = rasters["DEM+B_C123"][0].ravel()[cell]
    top = dsm.ravel()[cell]
    counts = np.bincount(cls[first], minlength=7)
    assert counts[GROUND] > 0 and counts[BUILDING] > 0 and counts[HIGH_VEG] > 0
    assert (demb - tli)[first & (cls == BUILDING)].min() > 0.5  # roofs above the bare earth
    assert np.abs(top - tli)[first & (cls == GROUND)].max() < 1e-3  # bare earth: DSM is the ground
    crowns = first & (cls == HIGH_VEG)
    assert (top - tli)[crowns].min() >= 2.0 - 1e-4  # high vegetation: 2 m or more above ground
    assert ((top - demb)[crowns] > 1.0).mean() > 0.9  # ... and on crowns, not roofs


def test_vegetation_class_by_height() -> None:
    heights = np.array([0.0, 0.49, 0.5, 1.99, 2.0, 30.0])
    expected = [LOW_VEG, LOW_VEG, MEDIUM_VEG, MEDIUM_VEG, HIGH_VEG, HIGH_VEG]
    assert vegetation_class(heights).tolist() == expected
