"""Signed-distance rasterisation of vector primitives on north-up grids, one object window at a time.

Coordinates are map metres (float64: UTM values lose centimetres in float32). Negative distance = inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Window = tuple[int, int, int, int]  # r0, r1, c0, c1 (half-open)


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: top-left corner, square pixel size and shape."""

    left: float
    top: float
    gsd: float
    rows: int
    cols: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top)."""
        return (
            self.left,
            self.top - self.rows * self.gsd,
            self.left + self.cols * self.gsd,
            self.top,
        )

    def xs(self, c0: int = 0, c1: int | None = None) -> np.ndarray:
        """Pixel-centre x of columns ``c0:c1`` as a (1, n) row vector."""
        c1 = self.cols if c1 is None else c1
        return (self.left + (np.arange(c0, c1) + 0.5) * self.gsd)[None, :]

    def ys(self, r0: int = 0, r1: int | None = None) -> np.ndarray:
        """Pixel-centre y of rows ``r0:r1`` as an (n, 1) column vector."""
        r1 = self.rows if r1 is None else r1
        return (self.top - (np.arange(r0, r1) + 0.5) * self.gsd)[:, None]

    def window(self, xmin: float, ymin: float, xmax: float, ymax: float) -> Window | None:
        """Pixel window covering a map box, clipped to the grid; None when they do not meet."""
        c0 = max(0, int(np.floor((xmin - self.left) / self.gsd)))
        c1 = min(self.cols, int(np.ceil((xmax - self.left) / self.gsd)))
        r0 = max(0, int(np.floor((self.top - ymax) / self.gsd)))
        r1 = min(self.rows, int(np.ceil((self.top - ymin) / self.gsd)))
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def sub(self, r0: int, r1: int) -> Grid:
        """The grid of rows ``r0:r1`` (a row block)."""
        return Grid(self.left, self.top - r0 * self.gsd, self.gsd, r1 - r0, self.cols)


def touching(
    boxes: np.ndarray, bounds: tuple[float, float, float, float], pad: float = 0.0
) -> np.ndarray:
    """Indices of the (n, 4) xmin, ymin, xmax, ymax ``boxes`` meeting ``bounds`` grown by ``pad``."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    left, bottom, right, top = bounds
    hit = (
        (boxes[:, 0] < right + pad)
        & (boxes[:, 2] > left - pad)
        & (boxes[:, 1] < top + pad)
        & (boxes[:, 3] > bottom - pad)
    )
    return np.flatnonzero(hit)


def rect_uv(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Local coordinates of points in a rectangle frame: u along the long axis, v across."""
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    return dx * c + dy * s, -dx * s + dy * c


def sd_rect(u: np.ndarray, v: np.ndarray, half_len: float, half_wid: float) -> np.ndarray:
    """Signed distance (Chebyshev-style, exact inside and along edges) to a rectangle."""
    return np.maximum(np.abs(u) - half_len, np.abs(v) - half_wid)


def rect_box(
    cx: np.ndarray, cy: np.ndarray, hl: np.ndarray, hw: np.ndarray, ang: np.ndarray
) -> np.ndarray:
    """Axis-aligned (n, 4) bounding boxes of rotated rectangles."""
    ex = np.abs(hl * np.cos(ang)) + np.abs(hw * np.sin(ang))
    ey = np.abs(hl * np.sin(ang)) + np.abs(hw * np.cos(ang))
    return np.stack([cx - ex, cy - ey, cx + ex, cy + ey], axis=1)


def rect_corners(cx: float, cy: float, hl: float, hw: float, angle: float) -> np.ndarray:
    """The four corners (4, 2) of a rotated rectangle, counter-clockwise."""
    c, s = np.cos(angle), np.sin(angle)
    local = np.array([[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]])
    return np.stack(
        [cx + local[:, 0] * c - local[:, 1] * s, cy + local[:, 0] * s + local[:, 1] * c], 1
    )


def segment_dist(
    x: np.ndarray, y: np.ndarray, x0: float, y0: float, x1: float, y1: float
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points to a segment, and the along-segment position (metres from its start)."""
    dx, dy = x1 - x0, y1 - y0
    length = max(float(np.hypot(dx, dy)), 1e-9)
    ux, uy = dx / length, dy / length
    px, py = x - x0, y - y0
    t = np.clip(px * ux + py * uy, 0.0, length)
    return np.hypot(px - t * ux, py - t * uy), t


def segment_box(seg: np.ndarray, pad: np.ndarray | float) -> np.ndarray:
    """(n, 4) boxes of segments given as (n, >=4) x0, y0, x1, y1, grown by ``pad``."""
    pad = np.asarray(pad)
    return np.stack(
        [
            np.minimum(seg[:, 0], seg[:, 2]) - pad,
            np.minimum(seg[:, 1], seg[:, 3]) - pad,
            np.maximum(seg[:, 0], seg[:, 2]) + pad,
            np.maximum(seg[:, 1], seg[:, 3]) + pad,
        ],
        axis=1,
    )


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull (monotone chain) of a few (n, 2) points."""
    pts = sorted({(float(p[0]), float(p[1])) for p in points})
    if len(pts) <= 2:
        return np.array(pts)

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def sd_convex(x: np.ndarray, y: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Signed distance (max over edge half-planes) to a counter-clockwise convex polygon."""
    out: np.ndarray | None = None
    for i in range(len(verts)):
        (ax, ay), (bx, by) = verts[i], verts[(i + 1) % len(verts)]
        ex, ey = bx - ax, by - ay
        norm = max(float(np.hypot(ex, ey)), 1e-9)
        d = ((x - ax) * ey - (y - ay) * ex) / norm  # outward normal of a CCW edge is (ey, -ex)
        out = d if out is None else np.maximum(out, d)
    assert out is not None
    return out


def coverage(sd: np.ndarray, gsd: float) -> np.ndarray:
    """Anti-aliased pixel coverage in [0, 1] from a signed distance (one-pixel ramp)."""
    # minimum/maximum: np.clip's Python wrapper dominates on the many small object windows
    return np.minimum(np.maximum(0.5 - sd / gsd, 0.0), 1.0).astype(np.float32)


def upsample(field: np.ndarray, fgrid: Grid, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of a coarse ``field`` on ``fgrid`` at the outer product of ``ys`` x ``xs``.

    Separable, so it costs a few passes over the output instead of a 2-D gather.
    """
    fc = (np.ravel(xs) - fgrid.left) / fgrid.gsd - 0.5
    fr = (fgrid.top - np.ravel(ys)) / fgrid.gsd - 0.5
    c0 = np.minimum(np.maximum(np.floor(fc).astype(np.int64), 0), fgrid.cols - 2)
    r0 = np.minimum(np.maximum(np.floor(fr).astype(np.int64), 0), fgrid.rows - 2)
    wc = np.minimum(np.maximum(fc - c0, 0.0), 1.0).astype(np.float32)
    wr = np.minimum(np.maximum(fr - r0, 0.0), 1.0).astype(np.float32)[:, None]
    top = field[r0]
    rows = top + (field[r0 + 1] - top) * wr
    left = rows[:, c0]
    left += (rows[:, c0 + 1] - left) * wc
    return left


def to_world(cx: float, cy: float, ang: float, u: float, v: float) -> tuple[float, float]:
    """World (x, y) of the point (u, v) in the frame centred at (cx, cy) and turned by ``ang``."""
    c, s = math.cos(ang), math.sin(ang)
    return cx + u * c - v * s, cy + u * s + v * c


def blend(
    img: np.ndarray, win: tuple[int, int, int, int], alpha: np.ndarray, rgb: np.ndarray
) -> None:
    """Alpha-composite ``rgb`` over ``img[:, window]`` in place (``win`` = r0, r1, c0, c1)."""
    r0, r1, c0, c1 = win
    view = img[:, r0:r1, c0:c1]
    view += (rgb - view) * alpha  # in place: alpha-composite over what is already there
