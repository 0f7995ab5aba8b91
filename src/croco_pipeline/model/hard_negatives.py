"""Geographic hard negatives: training batches made of groups of nearby, non-overlapping windows.

Random batches mostly pair a window with far-away, easy negatives, while the paper protocol asks the
model to tell a patch from its neighbours on the same tile. A ``hard_geo`` batch is built from
anchors: each anchor window is followed by up to ``group_size - 1`` windows whose centres lie within
``radius_m`` of the anchor's; no two windows of a batch overlap (an overlapping pair would be a
near-duplicate scored as a negative).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from croco_pipeline.data.windows import window_fraction
from croco_pipeline.params import StrictParams


class HardNegatives(StrictParams):
    """``train.hard_negatives``: used when ``train.sampling`` is ``hard_geo``.

    Attributes:
        radius_m: largest distance in metres between a group's anchor centre and its members'.
        group_size: windows per group (the anchor included); a batch holds batch_size / group_size
            groups, fewer windows in a group where its neighbourhood has no room left.
    """

    section: ClassVar[str] = "train.hard_negatives"

    radius_m: float = Field(default=96.0, gt=0)
    group_size: int = Field(default=8, ge=1)


def _overlaps(rows: list[int], cols: list[int], r: int, c: int, size: int) -> bool:
    if not rows:
        return False
    dr = np.abs(np.asarray(rows) - r)
    dc = np.abs(np.asarray(cols) - c)
    return bool(((dr < size) & (dc < size)).any())


def _group(
    rng: np.random.Generator,
    table: np.ndarray,
    span: np.ndarray,
    anchor: tuple[int, int],
    taken: tuple[list[int], list[int]],
    want: int,
    radius_px: float,
    size: int,
    min_valid_fraction: float,
) -> list[tuple[int, int]]:
    """The anchor and up to ``want - 1`` windows within ``radius_px`` of it that overlap no window
    already ``taken`` on the tile (rows, cols; extended in place)."""
    r, c = anchor
    # candidates uniform in the disc around the anchor, kept inside the tile and valid enough
    k = 16 * want
    radius = radius_px * np.sqrt(rng.random(k))
    angle = rng.random(k) * 2 * np.pi
    cr = np.rint(r + radius * np.sin(angle)).astype(np.int64)
    cc = np.rint(c + radius * np.cos(angle)).astype(np.int64)
    inside = (cr >= 0) & (cc >= 0) & (cr <= span[0]) & (cc <= span[1])
    cr, cc = cr[inside], cc[inside]
    ok = window_fraction(table, cr, cc, size) >= min_valid_fraction
    rows, cols = taken
    members = [(r, c)]
    rows.append(r)
    cols.append(c)
    for r2, c2 in zip(cr[ok].tolist(), cc[ok].tolist(), strict=True):
        if len(members) >= want:
            break
        if np.hypot(r2 - r, c2 - c) <= radius_px and not _overlaps(rows, cols, r2, c2, size):
            members.append((r2, c2))
            rows.append(r2)
            cols.append(c2)
    return members


def hard_geo_windows(
    rng: np.random.Generator,
    valid_tables: list[np.ndarray],
    size: int,
    n: int,
    radius_px: float,
    group_size: int,
    min_valid_fraction: float,
    max_anchor_tries: int = 2000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` windows in groups of nearby windows, pairwise non-overlapping within each tile.

    Args:
        rng: the batch's generator (the batch is a pure function of its state).
        valid_tables: per tile, the summed-area table (H + 1, W + 1) of its valid mask.
        size: window side in pixels.
        n: windows wanted.
        radius_px: largest anchor-to-member distance, in pixels, between window centres.
        group_size: windows per group, the anchor included.
        min_valid_fraction: least share of valid pixels in a window.
        max_anchor_tries: anchors drawn before giving up.

    Returns:
        tile, row, col (top-left) and group id of each window, int64 arrays of length ``n``.

    Raises:
        ValueError: fewer than ``n`` such windows fit (tiles too small or too empty).
    """
    # largest top-left row and col per tile (a table is one row and column larger than its tile)
    spans = np.array([(t.shape[0] - 1 - size, t.shape[1] - 1 - size) for t in valid_tables])
    weights = np.clip(spans + 1, 0, None).prod(axis=1).astype(np.float64)
    if weights.sum() == 0:
        raise ValueError(f"every tile is smaller than the {size} px window")
    taken: dict[int, tuple[list[int], list[int]]] = {t: ([], []) for t in range(len(spans))}
    out: list[tuple[int, int, int, int]] = []
    group = 0
    for _ in range(max_anchor_tries):
        if len(out) >= n:
            break
        t = int(rng.choice(len(spans), p=weights / weights.sum()))
        r, c = (int(x) for x in rng.integers(0, spans[t] + 1))
        fraction = window_fraction(valid_tables[t], np.array([r]), np.array([c]), size)[0]
        if fraction < min_valid_fraction or _overlaps(*taken[t], r, c, size):
            continue
        want = min(group_size, n - len(out))
        members = _group(rng, valid_tables[t], spans[t], (r, c), taken[t], want, radius_px, size,
                         min_valid_fraction)  # fmt: skip
        out += [(t, rr, cc_, group) for rr, cc_ in members]
        group += 1
    if len(out) < n:
        raise ValueError(
            f"hard_geo sampling placed only {len(out)} of {n} non-overlapping {size} px windows "
            f"with valid fraction >= {min_valid_fraction}: lower train.batch_size or use "
            "train.sampling: random on tiles this small"
        )
    arr = np.array(out[:n], dtype=np.int64)
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
