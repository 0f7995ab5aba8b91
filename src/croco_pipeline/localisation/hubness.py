"""Hubness of map patches: how close each RGB patch lies to elevation patches in general.

Some RGB patches (uniform roofs, lawns, asphalt) are near many elevation embeddings and so draw
votes from everywhere. Cross-domain similarity local scaling (CSLS) measures that with a bank of
elevation embeddings: a patch's hubness is the mean cosine of its ``k`` nearest bank embeddings,
and localisation subtracts ``localize.hubness_weight`` x that (centred over the map) from every
similarity that patch scores. The bank is cut from the training tiles, never from the queries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.data.windows import window_grid, window_valid_fraction
from croco_pipeline.evaluation.retrieval import embed_elevation_queries, unit_rows
from croco_pipeline.localisation.mapping import HUBNESS_COLUMN, LocalisationMap

log = logging.getLogger(__name__)

#: bank windows need this share of valid pixels (the training sampler's default)
BANK_MIN_VALID = 0.8


def bank_windows(
    stacks: Sequence[TileStack], patch_px: int, max_size: int, seed: int = 0
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(stack position, rows, cols) of the bank's windows: every half patch of the training tiles
    with enough valid pixels, at most ``max_size`` in all (a seeded draw when there are more)."""
    ids, rows, cols = [], [], []
    for i, stack in enumerate(stacks):
        if stack.split != "train":
            continue
        r, c = window_grid(stack.shape, patch_px, max(1, patch_px // 2))
        keep = window_valid_fraction(stack.valid, r, c, patch_px) >= BANK_MIN_VALID
        ids.append(np.full(int(keep.sum()), i))
        rows.append(r[keep])
        cols.append(c[keep])
    stack_of = np.concatenate(ids) if ids else np.zeros(0, int)
    if not len(stack_of):
        raise ValueError(
            f"no training tile holds a {patch_px} px window with {BANK_MIN_VALID:.0%} valid pixels "
            "for the hubness bank (set build_map.hubness_k: 0 to build the map without it)"
        )
    all_rows, all_cols = np.concatenate(rows), np.concatenate(cols)
    if len(stack_of) > max_size:
        pick = np.sort(np.random.default_rng(seed).choice(len(stack_of), max_size, replace=False))
        stack_of, all_rows, all_cols = stack_of[pick], all_rows[pick], all_cols[pick]
    return [(int(i), all_rows[stack_of == i], all_cols[stack_of == i]) for i in np.unique(stack_of)]


def elevation_bank(
    model: Any,
    stacks: Sequence[TileStack],
    stats: NormalisationStats,
    patch_px: int,
    opts: dict[str, Any],
) -> np.ndarray:
    """Unit elevation embeddings (B, D) of the training tiles' windows (``bank_windows``)."""
    parts = [
        embed_elevation_queries(
            model, stacks[i], rows, cols, patch_px, stats, int(opts["batch_size"]), opts["device"]
        )  # fmt: skip
        for i, rows, cols in bank_windows(stacks, patch_px, int(opts["hubness_bank"]))
    ]
    return unit_rows(np.concatenate(parts))


def hubness_scores(blocks: Iterable[np.ndarray], bank: np.ndarray, k: int) -> np.ndarray:
    """Each map vector's mean cosine with its ``k`` nearest bank embeddings, less the map's mean.

    Args:
        blocks: the map's unit vectors (n_i, D), block after block, in index order.
        bank: unit elevation embeddings (B, D); ``k`` is capped at B.
    """
    if k < 1:
        raise ValueError(f"hubness k must be >= 1, got {k}")
    k = min(k, len(bank))
    first = len(bank) - k  # the k largest cosines of a row sit from here on after partitioning
    scores = np.concatenate(
        [np.partition(b @ bank.T, first, axis=1)[:, first:].mean(axis=1, dtype=np.float64)
         for b in blocks]
    )  # fmt: skip
    return (scores - scores.mean()).astype(np.float32)


def with_hubness(
    lmap: LocalisationMap,
    model: Any,
    stacks: Sequence[TileStack],
    stats: NormalisationStats,
    opts: dict[str, Any],
) -> LocalisationMap:
    """``lmap`` with each patch's centred hubness (``opts``: ``hubness_k``, ``hubness_bank``,
    ``batch_size``, ``device``) from a bank of the training ``stacks``' elevation windows."""
    bank = elevation_bank(model, stacks, stats, int(lmap.metadata["patch_px"]), opts)
    k = int(opts["hubness_k"])
    scores = hubness_scores(lmap.vector_blocks(), bank, k)
    centres = lmap.centres.assign(**{HUBNESS_COLUMN: scores})
    metadata = lmap.metadata | {"hubness": {"k": min(k, len(bank)), "bank_size": len(bank)}}
    log.info("build_map: hubness of %d patches against %d training windows (k %d, spread %.4f)",
             len(scores), len(bank), k, float(scores.std()) if len(scores) else 0.0)  # fmt: skip
    return LocalisationMap(lmap.index, centres, metadata, lmap.source)
