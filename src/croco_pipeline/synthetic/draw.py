"""Paints the scene's vectors into one row block of the aerial photo (albedo and sunlight, 0..1).

Tall objects are drawn where the camera sees them: roofs and crowns shifted away from the nadir.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from croco_pipeline.synthetic import raster
from croco_pipeline.synthetic.raster import Grid
from croco_pipeline.synthetic.scene import (
    ASPHALT,
    CONCRETE,
    GRASS,
    WATER,
    Scene,
    water_mask,
)

# base colour (sRGB) and texture strength (blotches of metres, grain) per ground material
MATERIALS = np.array(
    [
        [100, 110, 72, 0.16, 0.07],  # GRASS
        [86, 106, 60, 0.10, 0.06],  # LAWN
        [146, 138, 104, 0.14, 0.07],  # DRY_GRASS
        [150, 128, 102, 0.14, 0.06],  # SOIL
        [166, 163, 156, 0.05, 0.04],  # CONCRETE
        [84, 85, 89, 0.06, 0.06],  # ASPHALT
        [58, 70, 60, 0.14, 0.02],  # WATER
        [95, 175, 195, 0.02, 0.02],  # POOL
        [150, 146, 136, 0.06, 0.09],  # GRAVEL
        [116, 114, 110, 0.08, 0.06],  # OLD_ASPHALT
    ],
    dtype=np.float32,
)
STALL_PERIOD = (5.5, 7.0)  # stall depth, aisle width (see landuse.STALL_*)


@dataclass
class PhotoContext:
    """What every block of one photo tile shares: light, lean geometry and low-frequency fields."""

    nadir: tuple[float, float]
    flight_height: float
    sun: np.ndarray  # unit vector towards the sun (east, north, up)
    lit: np.ndarray  # sunlit fraction on the 0.5 m shadow grid
    lit_grid: Grid
    texture: np.ndarray  # ground blotches of a few metres to tens of metres, on lit_grid
    mid: np.ndarray  # sub-metre texture, on lit_grid
    detail: np.ndarray | None = None  # periodic decimetre texture, only for photos finer than 0.1 m
    detail_gsd: float = 0.1

    def lean(self, x: float, y: float, h: float) -> tuple[float, float]:
        """Relief displacement d = h * r / H of a point at height h, away from the nadir."""
        k = h / self.flight_height
        return (x - self.nadir[0]) * k, (y - self.nadir[1]) * k


def ground(scene: Scene, g: Grid, ctx: PhotoContext, grain: np.ndarray) -> np.ndarray:
    """Textured ground albedo (3, h, w): cover patches, lots, streets and water."""
    mat = np.full((g.rows, g.cols), GRASS, dtype=np.uint8)

    def fill(table: np.ndarray, boxes: np.ndarray, value: int | None, grow: float = 0.0) -> None:
        for i in raster.touching(boxes, g.bounds, grow):
            win = g.window(*(boxes[i] + np.array([-grow, -grow, grow, grow])))
            if win is None:
                continue
            r0, r1, c0, c1 = win
            u, v = raster.rect_uv(g.xs(c0, c1), g.ys(r0, r1), table[i, 0], table[i, 1], table[i, 4])
            inside = raster.sd_rect(u, v, table[i, 2] + grow, table[i, 3] + grow) <= 0
            mat[r0:r1, c0:c1][inside] = int(table[i, 5]) if value is None else value

    p = scene.patches
    fill(p, raster.rect_box(p[:, 0], p[:, 1], p[:, 2], p[:, 3], p[:, 4]), None)
    lots = np.column_stack([scene.lots, np.full(len(scene.lots), ASPHALT)])
    fill(lots, raster.rect_box(*scene.lots.T), ASPHALT)
    for layer, grow, value in (
        (scene.roads, 3.5, CONCRETE),
        (scene.roads, 2.0, GRASS),
        (scene.roads, 0.0, ASPHALT),
        (scene.paths, 0.0, CONCRETE),
    ):
        boxes = raster.segment_box(layer, layer[:, 4] + grow)
        for i in raster.touching(boxes, g.bounds):
            win = g.window(*boxes[i])
            if win is None:
                continue
            r0, r1, c0, c1 = win
            d, _ = raster.segment_dist(g.xs(c0, c1), g.ys(r0, r1), *layer[i, :4])
            mat[r0:r1, c0:c1][d <= layer[i, 4] + grow] = value
    mat[water_mask(scene, g)] = WATER
    texture = raster.upsample(ctx.texture, ctx.lit_grid, g.xs(), g.ys())
    shade = 1.0 + MATERIALS[:, 3][mat] * texture
    shade += MATERIALS[:, 4][mat] * grain
    if ctx.detail is not None:  # grass tufts, gravel, cracks: the scale between grain and metres
        n = ctx.detail.shape[0]
        rows = np.floor(np.ravel(g.ys()) / ctx.detail_gsd).astype(np.int64) % n
        cols = np.floor(np.ravel(g.xs()) / ctx.detail_gsd).astype(np.int64) % n
        shade += (0.5 * MATERIALS[:, 3])[mat] * ctx.detail[np.ix_(rows, cols)]
    img = np.empty((3, g.rows, g.cols), dtype=np.float32)
    for c in range(3):
        np.multiply((MATERIALS[:, c] / 255.0)[mat], shade, out=img[c])
    return img


def markings(scene: Scene, g: Grid, img: np.ndarray) -> None:
    """Lane lines on collectors and arterials, painted stalls in parking lots."""
    roads = scene.roads
    painted = roads[roads[:, 5] >= 1]
    boxes = raster.segment_box(painted, painted[:, 4])
    yellow, white = (
        np.array([[[0.80]], [[0.70]], [[0.30]]]),
        np.array([[[0.86]], [[0.86]], [[0.84]]]),
    )
    for i in raster.touching(boxes, g.bounds):
        win = g.window(*boxes[i])
        if win is None:
            continue
        r0, r1, c0, c1 = win
        x0, y0, x1, y1, hw, kind = painted[i]
        length = max(float(np.hypot(x1 - x0, y1 - y0)), 1e-9)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        px, py = g.xs(c0, c1) - x0, g.ys(r0, r1) - y0
        t = px * ux + py * uy
        side = px * uy - py * ux  # signed offset from the centre line
        inside = (t >= 0) & (t <= length)
        if kind == 1:
            a = raster.coverage(np.abs(side) - 0.06, g.gsd) * ((t % 9.0) < 3.0) * inside
            raster.blend(img, win, a, yellow)
        else:
            a = raster.coverage(np.abs(np.abs(side) - 0.2) - 0.06, g.gsd) * inside
            raster.blend(img, win, a, yellow)
            a = (
                raster.coverage(np.abs(np.abs(side) - hw / 2) - 0.06, g.gsd)
                * ((t % 12.0) < 3.0)
                * inside
            )
            raster.blend(img, win, a, white)
    lots = scene.lots
    depth, aisle = STALL_PERIOD
    for i in raster.touching(rect_box_of(lots), g.bounds):
        win = g.window(*rect_box_of(lots[i : i + 1])[0])
        if win is None:
            continue
        r0, r1, c0, c1 = win
        cx, cy, hl, hw, ang = lots[i]
        u, v = raster.rect_uv(g.xs(c0, c1), g.ys(r0, r1), cx, cy, ang)
        vp = (v + hw) % (2 * depth + aisle)
        du = (u + hl) % 2.7
        du = np.minimum(du, 2.7 - du)
        in_rows = (vp < 2 * depth) & (raster.sd_rect(u, v, hl, hw) <= 0)
        a = (
            np.maximum(
                raster.coverage(du - 0.06, g.gsd), raster.coverage(np.abs(vp - depth) - 0.06, g.gsd)
            )
            * in_rows
        )
        raster.blend(img, win, 0.8 * a, white)


def rect_box_of(table: np.ndarray) -> np.ndarray:
    return raster.rect_box(table[:, 0], table[:, 1], table[:, 2], table[:, 3], table[:, 4])


def cars(scene: Scene, g: Grid, img: np.ndarray) -> None:
    """The cars parked when the photo was taken: body colour, dark glass, soft edges."""
    boxes = scene.car_boxes
    for i in raster.touching(boxes, g.bounds):
        if scene.cars[i, 7] < 0.5:
            continue
        win = g.window(*boxes[i])
        if win is None:
            continue
        r0, r1, c0, c1 = win
        u, v = raster.rect_uv(
            g.xs(c0, c1), g.ys(r0, r1), scene.cars[i, 0], scene.cars[i, 1], scene.cars[i, 2]
        )
        body = scene.cars[i, 3:6].reshape(3, 1, 1) / 255.0
        glass = (np.abs(u) > 0.55) & (np.abs(u) < 1.35) & (np.abs(v) < 0.75)
        colour = np.where(glass[None], 0.12, body * (1.0 - 0.25 * (np.abs(v) / 0.9) ** 4)[None])
        raster.blend(img, win, raster.coverage(raster.sd_rect(u, v, 2.25, 0.88), g.gsd), colour)
