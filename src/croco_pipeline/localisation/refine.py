"""Precision after voting: match the query at one-pixel shifts around the winning lattice cell.

``embedding``: the query tiles' elevation embeddings against RGB embeddings of the map cut at every
shift (dense embedding correlation). ``gradient_ncc``: the classical normalised cross-correlation of
height and grey gradient magnitudes over the whole query. Both end with a parabolic sub-pixel peak.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from croco_pipeline.data.stack import normalise_rgb
from croco_pipeline.data.windows import cut_windows
from croco_pipeline.evaluation.retrieval import embed_patches
from croco_pipeline.localisation.ncc import GradientNccMap, gradient_image, gradient_valid
from croco_pipeline.localisation.ortho import Block, OrthoSource


def subpixel_peak(surface: np.ndarray) -> tuple[float, float, float]:
    """(row, col) of the maximum of a 2-D score surface with parabolic sub-pixel offsets, and the max."""
    a, b = np.unravel_index(int(np.argmax(surface)), surface.shape)

    def offset(m: float, c: float, p: float) -> float:
        denom = m - 2 * c + p
        return float(np.clip(0.5 * (m - p) / denom, -0.5, 0.5)) if denom < 0 else 0.0

    da = (
        offset(surface[a - 1, b], surface[a, b], surface[a + 1, b])
        if 0 < a < surface.shape[0] - 1
        else 0.0
    )
    db = (
        offset(surface[a, b - 1], surface[a, b], surface[a, b + 1])
        if 0 < b < surface.shape[1] - 1
        else 0.0
    )
    return a + da, b + db, float(surface[a, b])


class _ShiftScorer:
    """Mean cosine between the query tiles and the map's RGB patches at given shifts of the query."""

    def __init__(self, model: Any, rgb: np.ndarray, tiles: tuple[np.ndarray, np.ndarray],
                 tile_embeddings: np.ndarray, patch_px: int, radius: int, opts: dict[str, Any]) -> None:  # fmt: skip
        self.model, self.rgb, self.tiles, self.patch_px = model, rgb, tiles, patch_px
        self.radius, self.opts = radius, opts
        self.q = tile_embeddings / np.linalg.norm(tile_embeddings, axis=1, keepdims=True)

    def __call__(self, shifts: np.ndarray) -> np.ndarray:
        rows, cols = self.tiles
        pos_r = (rows[:, None] + shifts[None, :, 0] + self.radius).ravel()  # block pixels
        pos_c = (cols[:, None] + shifts[None, :, 1] + self.radius).ravel()
        uniq, inverse = np.unique(np.stack([pos_r, pos_c], 1), axis=0, return_inverse=True)
        patches = normalise_rgb(cut_windows(self.rgb, uniq[:, 0], uniq[:, 1], self.patch_px))
        with torch.inference_mode():
            emb = embed_patches(
                self.model.embed_rgb, patches, self.opts["batch_size"], self.opts["device"]
            )
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        per_tile = emb[inverse.ravel()].reshape(len(rows), len(shifts), -1)
        return np.einsum("td,tsd->s", self.q, per_tile) / len(rows)


def _grid(offsets: np.ndarray) -> np.ndarray:
    dr, dc = np.meshgrid(offsets, offsets, indexing="ij")
    return np.stack([dr.ravel(), dc.ravel()], 1)


def refine_embedding(
    model: Any,
    source: OrthoSource,
    top_left: tuple[int, int],
    tiles: tuple[np.ndarray, np.ndarray],
    tile_embeddings: np.ndarray,
    patch_px: int,
    radius: int,
    opts: dict[str, Any],
) -> tuple[float, float, float]:
    """Best (row shift, col shift, mean cosine) of the query's top-left around ``top_left`` (map px).

    Coarse to fine, so few RGB patches are embedded: shifts every 2 px over +-``radius``, then every
    pixel around the best, then a parabolic sub-pixel peak.
    """
    rows, cols = tiles
    h, w = int(rows.max()) + patch_px, int(cols.max()) + patch_px
    block = Block(
        top_left[0] - radius - 1, top_left[1] - radius - 1, h + 2 * radius + 2, w + 2 * radius + 2
    )
    rgb, _ = source.read(block)
    score = _ShiftScorer(model, rgb, tiles, tile_embeddings, patch_px, radius + 1, opts)
    coarse = _grid(np.arange(-radius, radius + 1, 2))
    best = coarse[int(np.argmax(score(coarse)))]
    fine = best + _grid(np.arange(-1, 2))
    a, b, top = subpixel_peak(score(fine).reshape(3, 3))
    return best[0] + a - 1, best[1] + b - 1, top


def refine_gradient_ncc(
    source: OrthoSource,
    top_left: tuple[int, int],
    elevation: np.ndarray,
    valid: np.ndarray,
    radius: int,
) -> tuple[float, float, float]:
    """Best (row shift, col shift, NCC) of height vs grey gradient magnitudes around ``top_left``
    (every shift within ``radius`` px at once, by FFT; sub-pixel peak)."""
    h, w = valid.shape
    # one px more than the shifts need on each side: the gradient drops the block's border
    block = Block(
        top_left[0] - radius - 1, top_left[1] - radius - 1, h + 2 * radius + 2, w + 2 * radius + 2
    )
    rgb, ok = source.read(block)
    surface = GradientNccMap(rgb, ok, min_overlap=0.0).ncc(
        gradient_image(elevation[0]), gradient_valid(valid)
    )
    # surface[i, j]: the query's top-left at top_left + (i - radius - 1, j - radius - 1)
    a, b, best = subpixel_peak(surface[1:-1, 1:-1])
    return a - radius, b - radius, best
