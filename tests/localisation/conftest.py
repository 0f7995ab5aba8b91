"""A synthetic scene where the classical gradient-NCC 'model' is an oracle: the RGB is a linear
function of the heights, so co-located RGB and elevation patches embed identically."""

from __future__ import annotations

import laspy
import numpy as np
import pytest
from affine import Affine
from pyproj import CRS as ProjCRS
from rasterio.crs import CRS
from scipy.ndimage import gaussian_filter

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.evaluation.baseline import BaselineModel
from croco_pipeline.localisation.mapping import MapSpec, build_map

GSD, PATCH, STRIDE = 1.0, 16, 4
ORIGIN = (500000.0, 4000256.0)  # top-left of the scene, EPSG:26915, metres
MAP_CRS = CRS.from_epsg(26915)


def height_field(shape: tuple[int, int] = (160, 192), seed: int = 0) -> np.ndarray:
    """Smooth terrain plus box 'buildings': every patch is distinct."""
    rng = np.random.default_rng(seed)
    h = gaussian_filter(rng.normal(0, 1, shape), 4) * 40
    for _ in range(60):
        r, c = rng.integers(0, shape[0] - 12), rng.integers(0, shape[1] - 12)
        h[r : r + rng.integers(5, 12), c : c + rng.integers(5, 12)] += rng.uniform(3, 12)
    return h.astype(np.float32)


def scene_stack(heights: np.ndarray) -> TileStack:
    lo, hi = float(heights.min()), float(heights.max())
    grey = np.rint((heights - lo) / (hi - lo) * 250).astype(np.uint8)
    return TileStack(
        "scene", np.stack([grey] * 3), heights[None].copy(), np.ones(heights.shape, bool), MAP_CRS,
        Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1]), ("dsm",), "test",
    )  # fmt: skip


STATS = NormalisationStats("relative", 0.0, 1.0, 30.0)
SPEC = MapSpec(GSD, PATCH, STRIDE, ("dsm",), STATS.to_dict(), "oracle")
MAP_OPTS = {"min_valid_fraction": 0.5, "batch_size": 128, "block_px": 64, "approximate_above": 10**6,
            "nlist": None, "nprobe": 8, "device": "cpu", "progress": False}  # fmt: skip


@pytest.fixture(scope="session")
def oracle() -> BaselineModel:
    return BaselineModel(elevation_channel=0)


@pytest.fixture(scope="session")
def heights() -> np.ndarray:
    return height_field()


@pytest.fixture(scope="session")
def stack(heights: np.ndarray) -> TileStack:
    return scene_stack(heights)


@pytest.fixture(scope="session")
def oracle_map(oracle, stack):
    from croco_pipeline.localisation.ortho import StackMosaic

    source = StackMosaic([stack])
    return build_map(oracle, source, SPEC, MAP_OPTS), source


def cloud_points(
    heights: np.ndarray, rows: slice, cols: slice, per_cell: int = 4, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (map CRS) over a window of the scene with z = the cell's height: per_cell a cell."""
    rng = np.random.default_rng(seed)
    r0, r1, c0, c1 = rows.start, rows.stop, cols.start, cols.stop
    n = (r1 - r0) * (c1 - c0) * per_cell
    fr, fc = rng.uniform(r0, r1, n), rng.uniform(c0, c1, n)
    z = heights[fr.astype(int), fc.astype(int)].astype(np.float64)
    return ORIGIN[0] + fc * GSD, ORIGIN[1] - fr * GSD, z


def write_las(
    path, x, y, z, crs: object | None = MAP_CRS, classification=None, intensity=None
) -> None:
    """A LAS/LAZ file (by suffix) with the points and, unless None, the CRS, classes, intensities."""
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.array([np.floor(x.min()), np.floor(y.min()), 0.0])
    if crs is not None:
        header.add_crs(ProjCRS.from_user_input(str(crs)))
    las = laspy.LasData(header)
    las.x, las.y, las.z = x, y, z
    if classification is not None:
        las.classification = classification
    if intensity is not None:
        las.intensity = intensity
    las.write(str(path))
