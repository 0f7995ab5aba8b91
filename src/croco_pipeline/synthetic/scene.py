"""The vector scene model (one plan for the whole tile grid, map coordinates) and its LiDAR products.

Heights are rasterised from the same vectors the photo renderer uses, so the modalities agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from croco_pipeline.data.dfc2018 import NODATA
from croco_pipeline.synthetic.raster import (
    Grid,
    rect_box,
    rect_uv,
    sd_rect,
    segment_box,
    segment_dist,
    touching,
    upsample,
)

# ground materials (index into photo.MATERIALS)
GRASS, LAWN, DRY_GRASS, SOIL, CONCRETE, ASPHALT, WATER, POOL, GRAVEL, OLD_ASPHALT = range(10)
FLAT, GABLE, HIP = 0, 1, 2  # roof types
NORMAL, LEAFLESS, AUTUMN, SMALLER, ABSENT = range(5)  # a tree's look in the photo
CAR_HEIGHT = 1.5
VOID_DEPTH = (
    6.0  # 3msr DEM: no ground return deeper than this inside a footprint (search radius 3 m)
)


@dataclass
class Scene:
    """Every object of the synthetic city as rows of float64 arrays (columns listed per field).

    Attributes:
        extent: planned area (left, bottom, right, top), larger than the tile grid.
        waves: terrain sinusoids: amplitude, kx, ky, phase (relative to the extent's lower-left corner).
        roads: x0, y0, x1, y1, half width, kind (0 local, 1 collector, 2 arterial).
        paths: x0, y0, x1, y1, half width (concrete footpaths).
        river: x0, y0, x1, y1, half width.
        ponds: cx, cy, semi-axis a, semi-axis b, angle.
        patches: cx, cy, half length, half width, angle, material (ground cover, drawn in order).
        lots: cx, cy, half length, half width, angle (asphalt with painted stalls across v).
        parts: building index, cx, cy, half length, half width, angle (buildings are unions of parts).
        buildings: eave height, ridge rise, roof type, roof rgb (3), wall rgb (3), centroid x, y.
        trees: x, y, crown radius, height, tone, look in the photo (NORMAL...).
        cars: cx, cy, angle, rgb (3), seen by the LiDAR (0/1), seen in the photo (0/1).
    """

    extent: tuple[float, float, float, float]
    ground_level: float
    waves: np.ndarray
    roads: np.ndarray
    paths: np.ndarray
    river: np.ndarray
    ponds: np.ndarray
    patches: np.ndarray
    lots: np.ndarray
    parts: np.ndarray
    buildings: np.ndarray
    trees: np.ndarray
    cars: np.ndarray

    @property
    def part_boxes(self) -> np.ndarray:
        p = self.parts
        return rect_box(p[:, 1], p[:, 2], p[:, 3], p[:, 4], p[:, 5])

    @property
    def tree_boxes(self) -> np.ndarray:
        t = self.trees
        return np.stack(
            [t[:, 0] - t[:, 2], t[:, 1] - t[:, 2], t[:, 0] + t[:, 2], t[:, 1] + t[:, 2]], 1
        )

    @property
    def car_boxes(self) -> np.ndarray:
        c = self.cars
        n = len(c)
        return rect_box(c[:, 0], c[:, 1], np.full(n, 2.4), np.full(n, 1.0), c[:, 2])


def terrain(scene: Scene, grid: Grid) -> np.ndarray:
    """Bare-earth height (float32): a few gentle sinusoids plus a valley along the river.

    Evaluated on a 4 m grid and interpolated: the surface is smooth, and this is 60x cheaper.
    """
    left, bottom, right, top = grid.bounds
    coarse = Grid(
        left - 8.0, top + 8.0, 4.0, int((top - bottom) // 4) + 5, int((right - left) // 4) + 5
    )
    return upsample(_terrain(scene, coarse), coarse, grid.xs(), grid.ys()).astype(np.float32)


def _terrain(scene: Scene, grid: Grid) -> np.ndarray:
    x = grid.xs() - scene.extent[0]
    y = grid.ys() - scene.extent[1]
    z = np.full((grid.rows, grid.cols), scene.ground_level, dtype=np.float64)
    for amp, kx, ky, phase in scene.waves:
        z += amp * np.sin(kx * x + ky * y + phase)
    bank = np.full(z.shape, np.inf)
    pad = 80.0
    for i in touching(segment_box(scene.river, 0.0), grid.bounds, pad):
        x0, y0, x1, y1, hw = scene.river[i]
        win = grid.window(*segment_box(scene.river[i : i + 1], pad)[0])
        if win is None:
            continue
        r0, r1, c0, c1 = win
        d, _ = segment_dist(grid.xs(c0, c1), grid.ys(r0, r1), x0, y0, x1, y1)
        bank[r0:r1, c0:c1] = np.minimum(bank[r0:r1, c0:c1], np.maximum(d - hw, 0.0))
    z -= 2.5 * np.exp(-((bank / 30.0) ** 2))  # banks slope gently down to the water
    return z.astype(np.float32)


def water_mask(scene: Scene, grid: Grid) -> np.ndarray:
    """True where the river or a pond covers a pixel centre."""
    mask = np.zeros((grid.rows, grid.cols), dtype=bool)
    for i in touching(segment_box(scene.river, scene.river[:, 4]), grid.bounds):
        x0, y0, x1, y1, hw = scene.river[i]
        win = grid.window(*segment_box(scene.river[i : i + 1], hw)[0])
        if win is not None:
            r0, r1, c0, c1 = win
            d, _ = segment_dist(grid.xs(c0, c1), grid.ys(r0, r1), x0, y0, x1, y1)
            mask[r0:r1, c0:c1] |= d <= hw
    pond_boxes = (
        rect_box(*scene.ponds[:, [0, 1, 2, 3, 4]].T) if len(scene.ponds) else np.zeros((0, 4))
    )
    for i in touching(pond_boxes, grid.bounds):
        cx, cy, a, b, ang = scene.ponds[i]
        win = grid.window(*pond_boxes[i])
        if win is not None:
            r0, r1, c0, c1 = win
            u, v = rect_uv(grid.xs(c0, c1), grid.ys(r0, r1), cx, cy, ang)
            mask[r0:r1, c0:c1] |= (u / a) ** 2 + (v / b) ** 2 <= 1.0
    return mask


def roof_height(scene: Scene, part: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Height above ground of a part's roof at local coordinates (flat, gable or hip)."""
    _, _, _, hl, hw, _ = scene.parts[part]
    b = scene.buildings[int(scene.parts[part, 0])]
    eave, rise, kind = b[0], b[1], int(b[2])
    if kind == FLAT:
        return np.full(np.broadcast(u, v).shape, eave)
    across = np.clip(1.0 - np.abs(v) / hw, 0.0, 1.0)
    if kind == HIP:
        across = np.minimum(across, np.clip((hl - np.abs(u)) / hw, 0.0, 1.0))
    return eave + rise * across


def buildings(scene: Scene, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Building height above ground (0 off buildings) and depth inside the footprint (m, 0 outside)."""
    height = np.zeros((grid.rows, grid.cols), dtype=np.float32)
    depth = np.zeros((grid.rows, grid.cols), dtype=np.float32)
    boxes = scene.part_boxes
    for i in touching(boxes, grid.bounds):
        win = grid.window(*boxes[i])
        if win is None:
            continue
        r0, r1, c0, c1 = win
        _, cx, cy, hl, hw, ang = scene.parts[i]
        u, v = rect_uv(grid.xs(c0, c1), grid.ys(r0, r1), cx, cy, ang)
        sd = sd_rect(u, v, hl, hw)
        inside = sd <= 0
        roof = np.where(inside, roof_height(scene, i, u, v), 0.0)
        height[r0:r1, c0:c1] = np.maximum(height[r0:r1, c0:c1], roof)
        depth[r0:r1, c0:c1] = np.maximum(depth[r0:r1, c0:c1], np.where(inside, -sd, 0.0))
    return height, depth


def canopy(scene: Scene, grid: Grid, photo: bool) -> np.ndarray:
    """Tree crown height above ground: LiDAR-time trees, or the photo-time look (``photo=True``)."""
    out = np.zeros((grid.rows, grid.cols), dtype=np.float32)
    boxes = scene.tree_boxes
    for i in touching(boxes, grid.bounds):
        x, y, r, h, _, look = scene.trees[i]
        if photo and look == ABSENT:
            continue
        if photo and look in (SMALLER, LEAFLESS):
            r *= 0.6  # bare branches block the sun only near the trunk
        win = grid.window(x - r, y - r, x + r, y + r)
        if win is None:
            continue
        r0, r1, c0, c1 = win
        d2 = ((grid.xs(c0, c1) - x) ** 2 + (grid.ys(r0, r1) - y) ** 2) / (r * r)
        base = 0.35 * h
        crown = np.where(d2 <= 1.0, base + (h - base) * np.sqrt(np.clip(1.0 - d2, 0.0, 1.0)), 0.0)
        out[r0:r1, c0:c1] = np.maximum(out[r0:r1, c0:c1], crown)
    return out


def cars(scene: Scene, grid: Grid, photo: bool) -> np.ndarray:
    """Height above ground of the cars parked at LiDAR time (or photo time)."""
    out = np.zeros((grid.rows, grid.cols), dtype=np.float32)
    boxes = scene.car_boxes
    col = 7 if photo else 6
    for i in touching(boxes, grid.bounds):
        if scene.cars[i, col] < 0.5:
            continue
        win = grid.window(*boxes[i])
        if win is None:
            continue
        r0, r1, c0, c1 = win
        u, v = rect_uv(
            grid.xs(c0, c1), grid.ys(r0, r1), scene.cars[i, 0], scene.cars[i, 1], scene.cars[i, 2]
        )
        body = np.where(sd_rect(u, v, 2.3, 0.9) <= 0, CAR_HEIGHT - 0.4 * (np.abs(u) > 1.2), 0.0)
        out[r0:r1, c0:c1] = np.maximum(out[r0:r1, c0:c1], body)
    return out


def height_products(
    scene: Scene, grid: Grid, rng: np.random.Generator, dropouts_per_ha: float
) -> dict[str, np.ndarray]:
    """The four DFC2018 elevation products (float32, NODATA over water) on a 0.5 m ``grid``."""
    ground = terrain(scene, grid)
    water = water_mask(scene, grid)
    roofs, depth = buildings(scene, grid)
    trees = canopy(scene, grid, photo=False)
    parked = cars(scene, grid, photo=False)
    shape = ground.shape
    noise = rng.normal(0.0, 0.03, shape).astype(np.float32)  # LiDAR ranging noise
    leafy = trees > roofs
    rough = rng.normal(0.0, 0.5, shape).astype(np.float32) * leafy  # returns from inside crowns
    surface = np.maximum(np.maximum(roofs, trees + rough * (trees > 1.0)), parked)
    dsm = ground + surface + noise
    demb = ground + roofs + noise
    tli = ground + noise
    msr = np.where(depth > VOID_DEPTH, np.float32(NODATA), tli)
    n_specks = rng.poisson(dropouts_per_ha * grid.rows * grid.cols * grid.gsd**2 / 1e4)
    rows = rng.integers(0, shape[0], n_specks)
    cols = rng.integers(0, shape[1], n_specks)
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):  # 1-4 pixel specks
        keep = rng.random(n_specks) < (1.0 if dr == dc == 0 else 0.5)
        dsm[
            np.minimum(rows[keep] + dr, shape[0] - 1), np.minimum(cols[keep] + dc, shape[1] - 1)
        ] = NODATA
    out = {"DSM_C12": dsm, "DEM_C123_3msr": msr, "DEM_C123_TLI": tli, "DEM+B_C123": demb}
    for arr in out.values():
        arr[water] = NODATA
    return {k: v.astype(np.float32, copy=False) for k, v in out.items()}
