"""The plan under construction (``Plan``): object lists plus a 2 m occupancy grid of what covers the
ground, so that land uses place buildings, trees and cars only where nothing else stands.
"""

from __future__ import annotations

import numpy as np

from croco_pipeline.synthetic.config import DFC_ORIGIN_X, DFC_ORIGIN_Y, SyntheticConfig
from croco_pipeline.synthetic.raster import Grid, rect_uv, sd_rect, segment_dist
from croco_pipeline.synthetic.scene import Scene

ROAD, WATER_FLAG, BUILDING = 1, 2, 4  # occupancy flags


def grid_bounds(cfg: SyntheticConfig) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of the tile grid."""
    right = DFC_ORIGIN_X + cfg.n_cols * cfg.tile_width_m
    top = DFC_ORIGIN_Y + cfg.n_rows * cfg.tile_height_m
    return float(DFC_ORIGIN_X), float(DFC_ORIGIN_Y), right, top


class Plan:
    """Collects objects while planning and tracks what occupies the ground (2 m occupancy grid)."""

    def __init__(self, extent: tuple[float, float, float, float], rng: np.random.Generator) -> None:
        self.extent = extent
        self.rng = rng
        left, bottom, right, top = extent
        self.occ_grid = Grid(
            left, top, 2.0, int(np.ceil((top - bottom) / 2)), int(np.ceil((right - left) / 2))
        )
        self.occ = np.zeros((self.occ_grid.rows, self.occ_grid.cols), dtype=np.uint8)
        self.lists: dict[str, list[tuple[float, ...]]] = {
            k: []
            for k in (
                "waves",
                "roads",
                "paths",
                "river",
                "ponds",
                "patches",
                "lots",
                "parts",
                "buildings",
                "trees",
                "cars",
            )
        }

    def add(self, kind: str, *row: float) -> int:
        """Append an object row; returns its index."""
        self.lists[kind].append(tuple(float(v) for v in row))
        return len(self.lists[kind]) - 1

    def mark_segment(
        self, x0: float, y0: float, x1: float, y1: float, hw: float, flag: int
    ) -> None:
        win = self.occ_grid.window(
            min(x0, x1) - hw, min(y0, y1) - hw, max(x0, x1) + hw, max(y0, y1) + hw
        )
        if win is not None:
            r0, r1, c0, c1 = win
            d, _ = segment_dist(self.occ_grid.xs(c0, c1), self.occ_grid.ys(r0, r1), x0, y0, x1, y1)
            self.occ[r0:r1, c0:c1] |= np.where(d <= hw, flag, 0).astype(np.uint8)

    def rect_hits(self, cx: float, cy: float, hl: float, hw: float, ang: float, flags: int) -> bool:
        """Whether a rotated rectangle (grown by 1 m) meets ground carrying any of ``flags``."""
        ext = hl + hw + 2.0
        win = self.occ_grid.window(cx - ext, cy - ext, cx + ext, cy + ext)
        if win is None:
            return False
        r0, r1, c0, c1 = win
        u, v = rect_uv(self.occ_grid.xs(c0, c1), self.occ_grid.ys(r0, r1), cx, cy, ang)
        inside = sd_rect(u, v, hl + 1.0, hw + 1.0) <= 0
        return bool(np.any(inside & ((self.occ[r0:r1, c0:c1] & flags) > 0)))

    def mark_rect(self, cx: float, cy: float, hl: float, hw: float, ang: float, flag: int) -> None:
        ext = hl + hw + 2.0
        win = self.occ_grid.window(cx - ext, cy - ext, cx + ext, cy + ext)
        if win is not None:
            r0, r1, c0, c1 = win
            u, v = rect_uv(self.occ_grid.xs(c0, c1), self.occ_grid.ys(r0, r1), cx, cy, ang)
            self.occ[r0:r1, c0:c1] |= np.where(sd_rect(u, v, hl, hw) <= 1.0, flag, 0).astype(
                np.uint8
            )

    def point_free(self, x: float, y: float, flags: int) -> bool:
        c = int((x - self.occ_grid.left) / 2.0)
        r = int((self.occ_grid.top - y) / 2.0)
        if not (0 <= r < self.occ_grid.rows and 0 <= c < self.occ_grid.cols):
            return False
        return not (self.occ[r, c] & flags)

    def points_free(self, xs: np.ndarray, ys: np.ndarray, flags: int) -> np.ndarray:
        """Vectorised ``point_free``."""
        c = np.floor((xs - self.occ_grid.left) / 2.0).astype(np.int64)
        r = np.floor((self.occ_grid.top - ys) / 2.0).astype(np.int64)
        inside = (r >= 0) & (r < self.occ_grid.rows) & (c >= 0) & (c < self.occ_grid.cols)
        rc, cc = np.clip(r, 0, self.occ_grid.rows - 1), np.clip(c, 0, self.occ_grid.cols - 1)
        return inside & ((self.occ[rc, cc] & flags) == 0)

    def scene(self, ground_level: float) -> Scene:
        widths = {
            "waves": 4,
            "roads": 6,
            "paths": 5,
            "river": 5,
            "ponds": 5,
            "patches": 6,
            "lots": 5,
        }
        widths.update({"parts": 6, "buildings": 11, "trees": 6, "cars": 8})
        arrays = {
            k: np.array(v, dtype=np.float64).reshape(-1, widths[k]) for k, v in self.lists.items()
        }
        return Scene(extent=self.extent, ground_level=ground_level, **arrays)
