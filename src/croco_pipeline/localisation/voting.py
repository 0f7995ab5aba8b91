"""Offset-consistent voting: each query tile's top-k map candidates vote for where the query lies.

A query tile at (r, c) pixels from the query's top-left whose candidate is map patch (i, j) on the
stride lattice votes for the query's first tile sitting at lattice cell (i - r / s, j - c / s); tiles
on a multiple of the map stride ``s`` therefore vote on the lattice itself, and one wrong tile only
adds a scattered vote that the consistent majority outweighs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter

from croco_pipeline.data.windows import window_grid, window_valid_fraction
from croco_pipeline.errors import CrocoInputError


@dataclass
class VoteGrid:
    """Vote mass per lattice cell of the query's first tile, padded by ``pad`` cells on each side.

    ``votes[a, b]`` is the support for that tile's centre at lattice (a - pad, b - pad).
    """

    votes: np.ndarray
    pad: int
    best_cells: np.ndarray  # (T, 2) padded cell each tile's best candidate votes for
    best_scores: np.ndarray  # (T,) that candidate's similarity
    gather: bool = True  # support sums each cell's 3 x 3 neighbourhood (False: the votes alone)

    def support(self) -> np.ndarray:
        """Votes summed over each cell's 3 x 3 neighbourhood: a query half a stride off the lattice
        splits its top-k votes between neighbouring cells, which this gathers again. A dense vote
        (every patch votes: each cell already holds the query's whole similarity there) is not
        gathered, which would add up nine cells' worth of the background that every cell has."""
        if not self.gather:
            return self.votes.copy()
        return uniform_filter(self.votes, size=3, mode="constant") * 9.0

    def contrast(self, row: int, col: int) -> float:
        """Standard deviations by which the support at lattice (row, col) exceeds the grid's mean."""
        work = self.support()
        spread = float(work.std())
        return (
            float((work[row + self.pad, col + self.pad] - work.mean()) / spread) if spread else 0.0
        )

    def agreeing_share(self, row: int, col: int) -> float:
        """Share of tiles whose best candidate votes within one cell of lattice (row, col)."""
        d = np.abs(self.best_cells - (np.array([row, col]) + self.pad)).max(axis=1)
        return float(np.mean(d <= 1)) if len(d) else 0.0

    def peaks(self, n: int, radius: int) -> list[tuple[int, int, float]]:
        """Up to ``n`` (lattice row, lattice col, support), best first, ``radius`` cells apart.

        Peaks are ranked by ``support``; each sits on the cell with the most raw votes of its
        3 x 3 neighbourhood.
        """
        work = self.support()
        out = []
        for _ in range(n):
            a, b = (int(v) for v in np.unravel_index(int(np.argmax(work)), work.shape))
            if work[a, b] <= 0:
                break
            a0, b0 = max(0, a - 1), max(0, b - 1)
            near = self.votes[a0 : a + 2, b0 : b + 2]
            da, db = np.unravel_index(int(np.argmax(near)), near.shape)
            out.append((int(a0 + da) - self.pad, int(b0 + db) - self.pad, float(work[a, b])))
            work[max(0, a - radius) : a + radius + 1, max(0, b - radius) : b + radius + 1] = 0
        return out


def query_tiles(
    valid: np.ndarray, patch_px: int, stride_px: int, min_valid_fraction: float, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left (rows, cols) of the query's tiles on a ``stride_px`` grid with enough valid pixels.

    Raises:
        CrocoInputError: the query is smaller than one patch, or no tile has enough data.
    """
    h, w = valid.shape
    if h < patch_px or w < patch_px:
        raise CrocoInputError(
            f"query {name} covers {h} x {w} px, smaller than one {patch_px} x {patch_px} px patch"
        )
    rows, cols = window_grid((h, w), patch_px, stride_px)
    keep = window_valid_fraction(valid, rows, cols, patch_px) >= min_valid_fraction - 1e-9
    if not keep.any():
        raise CrocoInputError(
            f"query {name}: no {patch_px} px tile has a share of cells with points >= "
            f"{min_valid_fraction} (parameter 'localize.min_valid_fraction')"
        )
    return rows[keep], cols[keep]


def vote_frame(
    lattice_shape: tuple[int, int], stride_px: int, query_shape: tuple[int, int]
) -> tuple[int, tuple[int, int]]:
    """(pad, padded shape) of the vote grid: the lattice with room for a query hanging off it."""
    pad = -(-max(query_shape) // stride_px) + 1
    return pad, (lattice_shape[0] + 2 * pad, lattice_shape[1] + 2 * pad)


def _check_tiles(tile_rows: np.ndarray, tile_cols: np.ndarray, stride_px: int) -> None:
    if (tile_rows % stride_px).any() or (tile_cols % stride_px).any():
        raise ValueError("query tiles must sit on multiples of the map stride")


def _cast(
    tile_rows: np.ndarray,
    tile_cols: np.ndarray,
    weight: np.ndarray,
    lattice_rc: np.ndarray,
    stride_px: int,
    frame: tuple[int, tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat vote mass of (T, m) candidates at (T | 1, m, 2) lattice cells, and their padded cells."""
    pad, shape = frame
    a = lattice_rc[..., 0] - (tile_rows // stride_px)[:, None] + pad
    b = lattice_rc[..., 1] - (tile_cols // stride_px)[:, None] + pad
    ok = (lattice_rc[..., 0] >= 0) & (a >= 0) & (a < shape[0]) & (b >= 0) & (b < shape[1])
    ok &= weight > 0
    mass = np.bincount(
        (a[ok] * shape[1] + b[ok]).astype(np.int64),
        weight[ok].astype(np.float64),
        minlength=shape[0] * shape[1],
    )
    return mass, a, b


def vote(
    tile_rows: np.ndarray,
    tile_cols: np.ndarray,
    scores: np.ndarray,
    lattice_rc: np.ndarray,
    lattice_shape: tuple[int, int],
    stride_px: int,
    query_shape: tuple[int, int],
) -> VoteGrid:
    """Accumulate the votes of every tile's candidates.

    Args:
        tile_rows, tile_cols: (T,) tile top-lefts in query pixels, multiples of ``stride_px``.
        scores: (T, k) similarities of each tile's candidates (negative ones do not vote).
        lattice_rc: (T, k, 2) lattice (row, col) of each candidate; rows with -1 are ignored.
        lattice_shape: the map lattice's (rows, cols).
        query_shape: the query raster's (H, W) pixels, which bounds how far off the map a vote lands.
    """
    _check_tiles(tile_rows, tile_cols, stride_px)
    frame = vote_frame(lattice_shape, stride_px, query_shape)
    weight = np.clip(scores, 0.0, None)
    mass, a, b = _cast(tile_rows, tile_cols, weight, lattice_rc, stride_px, frame)
    top = np.argmax(scores, axis=1)[:, None]  # each tile's best candidate (search returns it first)
    best = np.stack([np.take_along_axis(a, top, 1)[:, 0], np.take_along_axis(b, top, 1)[:, 0]], 1)
    return VoteGrid(
        mass.reshape(frame[1]), frame[0], best, np.take_along_axis(scores, top, 1)[:, 0]
    )


def dense_vote(
    tile_rows: np.ndarray,
    tile_cols: np.ndarray,
    embeddings: np.ndarray,
    mean_vector: np.ndarray,
    blocks: Iterable[np.ndarray],
    lattice_rc: np.ndarray,
    lattice_shape: tuple[int, int],
    stride_px: int,
    query_shape: tuple[int, int],
    penalty: np.ndarray | None = None,
) -> VoteGrid:
    """The vote's dense limit: every map patch votes for every tile with its cosine less the tile's
    mean cosine over the map, clipped at 0 (an embedding whose cosines are all high, such as one of
    non-negative features, would otherwise vote everywhere alike).

    Args:
        embeddings: (T, D) unit query-tile embeddings.
        mean_vector: (D,) the mean of the map's unit vectors (the tiles' mean cosine is its dot).
        blocks: the map's unit vectors (n_i, D) in index order, block after block (bounded memory).
        lattice_rc: (N, 2) lattice (row, col) of every map patch, in index order.
        penalty: (N,) subtracted from every cosine of that map patch (e.g. its weighted hubness,
            ``localisation.hubness``) before the floor and the clipping; None: nothing.
        The rest as in ``vote``.
    """
    _check_tiles(tile_rows, tile_cols, stride_px)
    frame = vote_frame(lattice_shape, stride_px, query_shape)
    mass = np.zeros(frame[1][0] * frame[1][1])
    best_sim = np.full(len(tile_rows), -np.inf)
    best = np.zeros((len(tile_rows), 2), np.int64)
    start, at, floor = 0, np.arange(len(tile_rows)), (embeddings @ mean_vector)[:, None]
    for block in blocks:
        sims = embeddings @ block.T  # (T, n)
        rc = lattice_rc[None, start : start + len(block)]
        excess = sims - floor
        if penalty is not None:
            excess -= penalty[None, start : start + len(block)]
        part, a, b = _cast(tile_rows, tile_cols, excess, rc, stride_px, frame)
        mass += part
        top = np.argmax(sims, axis=1)
        better = sims[at, top] > best_sim
        best_sim[better] = sims[at, top][better]
        best[better] = np.stack([a[better, top[better]], b[better, top[better]]], 1)
        start += len(block)
    if start != len(lattice_rc):
        raise ValueError(f"the map blocks hold {start} vectors, its lattice {len(lattice_rc)}")
    return VoteGrid(mass.reshape(frame[1]), frame[0], best, best_sim, gather=False)
