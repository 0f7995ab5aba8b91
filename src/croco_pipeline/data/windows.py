"""Square windows on a raster grid: where they sit, their centres in map coordinates, their pixels
and their share of valid pixels. The one home of this arithmetic for patches, sampling and evaluation.

A window is given by its top-left pixel (row, col) and its side ``size`` in pixels.
"""

from __future__ import annotations

import numpy as np
from affine import Affine
from numpy.lib.stride_tricks import sliding_window_view


def window_grid(
    shape: tuple[int, int], size: int, stride: int, origin: tuple[int, int] = (0, 0)
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left (rows, cols) of every ``size`` window on a ``stride`` grid inside ``shape``.

    The grid starts at ``origin`` (row, col) and runs row-major (all columns of the first row of
    windows first). Windows that would cross the raster's edge are left out.
    """
    if size < 1 or stride < 1:
        raise ValueError(f"window size and stride must be positive pixels, got {size}, {stride}")
    h, w = shape
    rr, cc = np.meshgrid(
        np.arange(origin[0], h - size + 1, stride),
        np.arange(origin[1], w - size + 1, stride),
        indexing="ij",
    )
    return rr.ravel().astype(np.int64), cc.ravel().astype(np.int64)


def window_centres(
    transform: Affine, rows: np.ndarray, cols: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates (x, y) of the centres of windows with top-left pixels (rows, cols)."""
    c = np.asarray(cols, dtype=np.float64) + size / 2
    r = np.asarray(rows, dtype=np.float64) + size / 2
    t = transform
    return t.c + t.a * c + t.b * r, t.f + t.d * c + t.e * r


def window_view(array: np.ndarray, size: int) -> np.ndarray:
    """All ``size`` windows of a (C, H, W) array as a view (C, H - s + 1, W - s + 1, s, s); no copy."""
    return sliding_window_view(array, (size, size), axis=(-2, -1))


def cut_windows(array: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """``size`` x ``size`` windows of a (C, H, W) array at top-left (rows[i], cols[i]) -> (N, C, s, s).

    Raises:
        ValueError: a window falls outside the array.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    h, w = array.shape[-2:]
    if len(rows) and (
        rows.min() < 0 or cols.min() < 0 or rows.max() + size > h or cols.max() + size > w
    ):
        raise ValueError(f"patch windows of {size} px fall outside an array of shape {h}x{w}")
    # one gather from the window view: (C, N, s, s), then windows first
    return np.ascontiguousarray(window_view(array, size)[:, rows, cols].swapaxes(0, 1))


def summed_area_table(mask: np.ndarray) -> np.ndarray:
    """Integral image of a 2-D mask with a zero first row and column: (H + 1, W + 1) int64.

    ``table[r, c]`` is the number of True pixels above and left of pixel (r, c).
    """
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    return table


def window_fraction(table: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Share of True pixels in each ``size`` window, from a ``summed_area_table`` (O(1) each)."""
    r0, c0 = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    r1, c1 = r0 + size, c0 + size
    total = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
    return total / float(size * size)


def window_valid_fraction(
    valid: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int
) -> np.ndarray:
    """Share of valid pixels of a (H, W) mask in each ``size`` window at (rows[i], cols[i])."""
    return window_fraction(summed_area_table(valid), rows, cols, size)
