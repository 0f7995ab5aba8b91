"""The patch index (where each training / gallery patch sits) and the elevation normalisation.

Patch positions are top-left pixels in their tile stack; centres are given in the map CRS.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from croco_pipeline.data.splits import metres_to_pixels, require_nonempty
from croco_pipeline.data.stack import NORMALISATIONS, NormalisationStats, TileStack, is_intensity
from croco_pipeline.data.windows import window_centres, window_grid, window_valid_fraction
from croco_pipeline.errors import CrocoConfigError, CrocoInputError, bad_param

COLUMNS = ("tile", "split", "row", "col", "size_px", "x", "y", "valid_fraction")
_DTYPES = {
    "tile": "str",
    "split": "str",
    "row": "int64",
    "col": "int64",
    "size_px": "int64",
    "x": "float64",
    "y": "float64",
    "valid_fraction": "float64",
}


def _tile_patches(
    stack: TileStack, patch_size_m: float, stride_m: float, max_nodata_fraction: float
) -> pd.DataFrame:
    size = metres_to_pixels(patch_size_m, stack.gsd, "preprocess.patch_size_m")
    stride = metres_to_pixels(stride_m, stack.gsd, "preprocess.stride_m")
    h, w = stack.shape
    if size > h or size > w:
        raise CrocoConfigError(
            f"parameter 'preprocess.patch_size_m' = {patch_size_m!r} ({size} px) is larger than tile "
            f"{stack.name} ({h} x {w} px at {stack.gsd:g} m)"
        )
    rows, cols = window_grid((h, w), size, stride)
    frac = window_valid_fraction(stack.valid, rows, cols, size)
    keep = frac >= 1.0 - max_nodata_fraction - 1e-9
    if not keep.any():
        raise CrocoInputError(
            f"tile {stack.name}: NaN-only patches; none of its {len(rows)} patches has at most "
            f"{max_nodata_fraction:g} nodata (best {frac.max():.2f} valid); check the elevation "
            "files or raise parameter 'preprocess.max_nodata_fraction'"
        )
    rows, cols, frac = rows[keep], cols[keep], frac[keep]
    x, y = window_centres(stack.transform, rows, cols, size)
    return pd.DataFrame(
        {
            "tile": stack.name,
            "split": stack.split,
            "row": rows.astype(np.int64),
            "col": cols.astype(np.int64),
            "size_px": np.int64(size),
            "x": x.astype(np.float64),
            "y": y.astype(np.float64),
            "valid_fraction": frac.astype(np.float64),
        }
    )


def patch_index(
    stacks: list[TileStack],
    patch_size_m: float,
    stride_m: float,
    max_nodata_fraction: float,
    splits: list[str] | tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """One row per kept patch over ``stacks`` (only those whose split is in ``splits`` when given).

    Returns:
        DataFrame with columns ``COLUMNS``: tile, split, row/col (top-left pixel), size_px, x/y (patch
        centre in the map CRS) and valid_fraction.

    Raises:
        CrocoConfigError: sizes not whole pixels, a patch larger than a tile, a bad nodata fraction.
        CrocoInputError: a tile whose patches are all (nearly) nodata.
    """
    if not 0.0 <= max_nodata_fraction <= 1.0:
        raise bad_param("preprocess.max_nodata_fraction", max_nodata_fraction, "a value in [0, 1]")
    chosen = [s for s in stacks if splits is None or s.split in splits]
    frames = [_tile_patches(s, patch_size_m, stride_m, max_nodata_fraction) for s in chosen]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in COLUMNS})
    return pd.concat(frames, ignore_index=True)


def compute_normalisation(
    stacks: list[TileStack], mode: str, height_range: float = 30.0
) -> NormalisationStats:
    """Elevation scaling statistics from the TRAIN stacks only, on valid (not hole-filled) pixels.

    ``global_minmax``: plain min and max over all training tiles and channels (the original code's).
    ``relative``: per-patch floor divided by ``height_range`` metres; global min/max are recorded too.
    Intensity channels (``stack.is_intensity``) are left out of the heights' min/max and give
    their own 5-95 % spread.

    Raises:
        CrocoConfigError: unknown mode or non-positive ``height_range``.
        CrocoInputError: no training stack, or no valid pixel in any of them.
    """
    if mode not in NORMALISATIONS:
        raise bad_param("preprocess.normalisation", mode, f"one of {NORMALISATIONS}")
    if not height_range > 0:
        raise bad_param("preprocess.height_range", height_range, "a positive height span in metres")
    train = require_nonempty(stacks, "train")
    intensity = [i for i, c in enumerate(train[0].channels) if is_intensity(c)]
    heights = [i for i in range(len(train[0].channels)) if i not in intensity] or [0]
    lows, highs, samples = [], [], []
    for s in train:
        if s.valid.any():
            values = s.elevation[heights][:, s.valid]
            lows.append(float(values.min()))
            highs.append(float(values.max()))
            for i in intensity:  # at most about 20,000 values a tile
                seen = s.elevation[i][s.valid]
                samples.append(seen[:: max(1, seen.size // 20000)])
    if not lows:
        raise CrocoInputError(
            f"no valid elevation pixel in the training tiles {[s.name for s in train]}"
        )
    spread = 1.0
    if samples:
        low, high = np.percentile(np.concatenate(samples), [5, 95])
        spread = max(float(high - low), 1e-6)
    return NormalisationStats(
        mode, min(lows), max(highs), float(height_range), tuple(intensity), spread
    )
