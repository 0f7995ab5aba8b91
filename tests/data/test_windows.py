"""The window helpers against slow, obviously-correct references: loops over pixels and the transform."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from croco_pipeline.data.windows import (
    cut_windows,
    summed_area_table,
    window_centres,
    window_fraction,
    window_grid,
    window_valid_fraction,
    window_view,
)


def _valid_fraction_loop(valid: np.ndarray, rows, cols, size: int) -> np.ndarray:
    return np.array(
        [valid[r : r + size, c : c + size].sum() / size**2 for r, c in zip(rows, cols, strict=True)]
    )


@pytest.mark.parametrize(("shape", "size"), [((37, 53), 8), ((16, 16), 16), ((20, 41), 1)])
def test_valid_fraction_equals_a_pixel_loop(shape: tuple[int, int], size: int) -> None:
    rng = np.random.default_rng(size)
    valid = rng.random(shape) > 0.3
    rows = rng.integers(0, shape[0] - size + 1, 200)
    cols = rng.integers(0, shape[1] - size + 1, 200)
    expected = _valid_fraction_loop(valid, rows, cols, size)
    np.testing.assert_array_equal(window_valid_fraction(valid, rows, cols, size), expected)
    table = summed_area_table(valid)
    assert table.shape == (shape[0] + 1, shape[1] + 1) and table[-1, -1] == valid.sum()
    np.testing.assert_array_equal(window_fraction(table, rows, cols, size), expected)


def test_window_grid_is_row_major_inside_the_raster() -> None:
    rows, cols = window_grid((10, 13), size=4, stride=3, origin=(1, 2))
    expected = [(r, c) for r in range(1, 10 - 4 + 1, 3) for c in range(2, 13 - 4 + 1, 3)]
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == expected
    assert rows.dtype == np.int64 and cols.dtype == np.int64
    empty_rows, _ = window_grid((3, 3), size=4, stride=1)
    assert len(empty_rows) == 0
    with pytest.raises(ValueError, match="positive"):
        window_grid((10, 10), size=4, stride=0)


@pytest.mark.parametrize(
    "transform",
    [
        Affine(0.5, 0, 271460.0, 0, -0.5, 3290891.0),  # north-up UTM
        Affine(2.0, 0.3, 1000.0, -0.2, -2.0, 5000.0),  # rotated / sheared
    ],
)
def test_window_centres_are_the_transform_of_the_centre_pixel_corner(transform: Affine) -> None:
    rows, cols, size = np.array([0, 3, 10]), np.array([0, 7, 2]), 6
    x, y = window_centres(transform, rows, cols, size)
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        # the centre of a 6 px window is the corner shared by its pixels (r+2, c+2) and (r+3, c+3)
        ex, ey = transform * (c + size / 2, r + size / 2)
        assert (x[i], y[i]) == pytest.approx((ex, ey), abs=1e-9)
        # ... which is also the mean of the window's four outer corners
        corners = [transform * (c + dc, r + dr) for dr in (0, size) for dc in (0, size)]
        assert (x[i], y[i]) == pytest.approx(tuple(np.mean(corners, axis=0)), abs=1e-9)


def test_cut_windows_equals_slicing_and_checks_bounds() -> None:
    rng = np.random.default_rng(1)
    array = rng.normal(size=(3, 30, 40)).astype(np.float32)
    rows, cols, size = np.array([0, 5, 22, 22]), np.array([0, 31, 3, 3]), 8
    out = cut_windows(array, rows, cols, size)
    assert out.shape == (4, 3, 8, 8) and out.dtype == np.float32 and out.flags.c_contiguous
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        np.testing.assert_array_equal(out[i], array[:, r : r + size, c : c + size])
    out[0] += 1  # a copy, not a view into the tile
    assert array[0, 0, 0] != out[0, 0, 0, 0]
    with pytest.raises(ValueError, match="outside"):
        cut_windows(array, np.array([23]), np.array([0]), size)
    with pytest.raises(ValueError, match="outside"):
        cut_windows(array, np.array([0]), np.array([-1]), size)


def test_window_view_copies_nothing() -> None:
    array = np.arange(2 * 6 * 7).reshape(2, 6, 7)
    view = window_view(array, 3)
    assert view.shape == (2, 4, 5, 3, 3) and np.shares_memory(view, array)
    np.testing.assert_array_equal(view[:, 2, 4], array[:, 2:5, 4:7])
