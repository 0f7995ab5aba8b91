"""The localisation map: RGB patch embeddings of an ortho on a stride lattice, in a FAISS index.

``build_map`` streams the ortho block by block (bounded memory); under ``torch.distributed`` the
blocks are shared out by rank and every rank ends with the same map, sorted by lattice position.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from affine import Affine
from tqdm import tqdm

from croco_pipeline.data.splits import metres_to_pixels
from croco_pipeline.data.stack import normalise_rgb
from croco_pipeline.data.windows import cut_windows, window_centres, window_valid_fraction
from croco_pipeline.errors import CrocoInputError
from croco_pipeline.evaluation.retrieval import MapIndex, embed_patches
from croco_pipeline.localisation.ortho import Block, OrthoSource, iter_blocks
from croco_pipeline.model import distributed

log = logging.getLogger(__name__)
CENTRE_COLUMNS = ("lattice_row", "lattice_col", "x", "y", "valid_fraction")
HUBNESS_COLUMN = "hubness"  # optional: each patch's centred hubness (``localisation.hubness``)


@dataclass(frozen=True)
class MapSpec:
    """What the map is made of: the working grid, patch, stride, channels, model and normalisation."""

    gsd: float
    patch_px: int
    stride_px: int
    channels: tuple[str, ...]
    normalisation: dict[str, Any]
    model_checksum: str


@dataclass
class LocalisationMap:
    """A searchable map: ``index`` row i is the patch in ``centres`` row i; ``metadata`` says how."""

    index: MapIndex
    centres: pd.DataFrame
    metadata: dict[str, Any]
    source: str = "<memory>"

    @property
    def lattice_transform(self) -> Affine:
        """Affine from (lattice col, lattice row) to the map coordinates of that patch's centre."""
        m = self.metadata
        step = m["stride_px"] * m["gsd"]
        return Affine(step, 0.0, m["lattice_origin"][0], 0.0, -step, m["lattice_origin"][1])

    @functools.cached_property
    def mean_vector(self) -> np.ndarray:
        """The mean of the map's unit embeddings (D,), read once."""
        total = sum((block.sum(axis=0, dtype=np.float64) for block in self.vector_blocks()), 0.0)
        return np.asarray(total / max(len(self.index), 1), dtype=np.float32)

    @functools.cached_property
    def hubness(self) -> np.ndarray | None:
        """Each patch's centred hubness (index order), None for a map built without it."""
        if HUBNESS_COLUMN not in self.centres:
            return None
        return self.centres[HUBNESS_COLUMN].to_numpy(dtype=np.float32)

    def vector_blocks(self, size: int = 16384) -> Iterator[np.ndarray]:
        """The map's unit embeddings in index (= ``centres``) order, ``size`` rows at a time."""
        for start in range(0, len(self.index), size):
            yield self.index.vectors(start, start + size)


def model_checksum(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a model's weights (names and values, in name order)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _block_windows(
    block: Block, shape: tuple[int, int], spec: MapSpec, core: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lattice windows whose top-left lies in the block's core (so each window has one block)."""
    s, p = spec.stride_px, spec.patch_px
    r0, c0 = -(-block.row // s) * s, -(-block.col // s) * s
    rows = np.arange(r0, min(block.row + core, shape[0] - p + 1), s)
    cols = np.arange(c0, min(block.col + core, shape[1] - p + 1), s)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return rr.ravel().astype(np.int64), cc.ravel().astype(np.int64)


def _embed_block(
    model: Any, source: OrthoSource, block: Block, spec: MapSpec, core: int, opts: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, valid fractions, embeddings) of the kept windows of one block."""
    rows, cols = _block_windows(block, source.grid.shape, spec, core)
    empty = (rows[:0], cols[:0], np.zeros(0), np.zeros((0, 0), np.float32))
    if not len(rows):
        return empty
    rgb, valid = source.read(block)
    lr, lc = rows - block.row, cols - block.col
    frac = window_valid_fraction(valid, lr, lc, spec.patch_px)
    keep = frac >= opts["min_valid_fraction"] - 1e-9
    if not keep.any():
        return empty
    lr, lc, bs = lr[keep], lc[keep], opts["batch_size"]
    batches = (
        normalise_rgb(cut_windows(rgb, lr[i : i + bs], lc[i : i + bs], spec.patch_px))
        for i in range(0, len(lr), bs)
    )
    emb = embed_patches(model.embed_rgb, batches, bs, opts["device"])
    return rows[keep], cols[keep], frac[keep], emb


def _gather(parts: list[tuple[np.ndarray, ...]]) -> list[tuple[np.ndarray, ...]]:
    """Every rank's block results on every rank (identity when not distributed)."""
    if not distributed.is_distributed():
        return parts
    everyone: list[Any] = [None] * distributed.world_size()
    dist.all_gather_object(everyone, parts)
    return [p for rank_parts in everyone for p in rank_parts]


def embed_ortho(
    model: Any, source: OrthoSource, spec: MapSpec, opts: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Embed every kept lattice window of the ortho -> (rows, cols, valid fractions, (N, D)).

    Blocks are dealt round-robin to the ranks; results come back sorted by (row, col).
    """
    core = opts["block_px"] - opts["block_px"] % spec.stride_px or spec.stride_px
    blocks = iter_blocks(source.grid.shape, core, spec.patch_px)
    mine = blocks[distributed.rank() :: distributed.world_size()]
    bar = tqdm(mine, desc="build_map", disable=None if opts.get("progress") else True)
    parts: list[tuple[np.ndarray, ...]] = []
    with torch.inference_mode():
        for block in bar:
            part = _embed_block(model, source, block, spec, core, opts)
            if len(part[0]):
                parts.append(part)
    parts = _gather(parts)
    if not parts:
        raise CrocoInputError(
            f"ortho {source.description}: no window has a valid share >= "
            f"{opts['min_valid_fraction']} (parameter 'build_map.min_valid_fraction')"
        )
    rows, cols, frac, emb = (np.concatenate([p[i] for p in parts]) for i in range(4))
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], frac[order], emb[order]


def make_index(
    vectors: np.ndarray, approximate_above: int, nlist: int | None, nprobe: int
) -> MapIndex:
    """Exact flat index up to ``approximate_above`` vectors, IVF beyond it."""
    if len(vectors) <= approximate_above:
        index = MapIndex(vectors.shape[1], "flat")
    else:
        cells = nlist or max(16, int(4 * math.sqrt(len(vectors))))
        index = MapIndex(vectors.shape[1], "ivf", nlist=cells, nprobe=nprobe)
    index.add(vectors)
    return index


def build_map(
    model: Any, source: OrthoSource, spec: MapSpec, opts: dict[str, Any]
) -> LocalisationMap:
    """Embed ``source`` and index it: the map with its centres (map CRS) and metadata."""
    rows, cols, frac, emb = embed_ortho(model, source, spec, opts)
    t = source.grid.transform
    x, y = window_centres(t, rows, cols, spec.patch_px)
    centres = pd.DataFrame(
        {"lattice_row": rows // spec.stride_px, "lattice_col": cols // spec.stride_px,
         "x": x, "y": y, "valid_fraction": frac}
    )  # fmt: skip
    index = make_index(emb, opts["approximate_above"], opts.get("nlist"), opts["nprobe"])
    origin = window_centres(t, np.zeros(1), np.zeros(1), spec.patch_px)
    metadata = {
        "model_checksum": spec.model_checksum,
        "gsd": spec.gsd,
        "patch_px": spec.patch_px,
        "patch_size_m": spec.patch_px * spec.gsd,
        "stride_px": spec.stride_px,
        "stride_m": spec.stride_px * spec.gsd,
        "channels": list(spec.channels),
        "normalisation": dict(spec.normalisation),
        "crs": source.grid.crs.to_wkt(),
        "grid_transform": list(t)[:6],
        "grid_shape": list(source.grid.shape),
        "lattice_origin": [float(origin[0][0]), float(origin[1][0])],
        "lattice_shape": [
            (source.grid.shape[0] - spec.patch_px) // spec.stride_px + 1,
            (source.grid.shape[1] - spec.patch_px) // spec.stride_px + 1,
        ],
        "index_kind": index.kind,
        "nprobe": int(opts["nprobe"]),
        "n_patches": len(index),
        "embedding_dim": int(emb.shape[1]),
        "ortho": source.description,
    }
    log.info("build_map: %d patches (%s index) from %s", len(index), index.kind, source.description)
    return LocalisationMap(index, centres, metadata)


def check_map(lmap: LocalisationMap, expected: MapSpec) -> None:
    """Refuse a map made with another model or working grid than the one localising with it.

    Raises:
        CrocoInputError: naming the map folder and every mismatching key (model checksum, gsd, patch
            size, channels, normalisation).
    """
    m = lmap.metadata
    wanted = {
        "model_checksum": expected.model_checksum,
        "gsd": expected.gsd,
        "patch_px": expected.patch_px,
        "channels": list(expected.channels),
        "normalisation": dict(expected.normalisation),
    }
    bad = [
        f"{key}: map has {m.get(key)!r}, now {value!r}"
        for key, value in wanted.items()
        if not _same(m.get(key), value)
    ]
    if bad:
        raise CrocoInputError(
            f"map {lmap.source} does not match the model or parameters it is used with "
            f"({'; '.join(bad)}); rebuild it with `kedro run --pipelines=build_map`"
        )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def map_spec(
    bundle: dict[str, Any],
    preprocess: dict[str, Any],
    stats: dict[str, Any],
    stride_m: float | None,
) -> MapSpec:
    """The map a model bundle and the preprocessing parameters call for (stride: a quarter patch)."""
    gsd = float(preprocess["gsd"])
    patch_px = metres_to_pixels(float(preprocess["patch_size_m"]), gsd, "preprocess.patch_size_m")
    stride = stride_m if stride_m is not None else float(preprocess["patch_size_m"]) / 4
    stride_px = metres_to_pixels(stride, gsd, "build_map.stride_m")
    channels = tuple(bundle.get("channels") or preprocess["channels"])
    return MapSpec(
        gsd, patch_px, stride_px, channels, dict(stats), model_checksum(bundle["state_dict"])
    )


def check_ortho(lmap: LocalisationMap, source: OrthoSource) -> None:
    """Refuse an ortho whose working grid is not the one the map was built on."""
    got = list(source.grid.transform)[:6]
    same = all(
        math.isclose(a, b, abs_tol=1e-6)
        for a, b in zip(got, lmap.metadata["grid_transform"], strict=True)
    )
    if not same or list(source.grid.shape) != list(lmap.metadata["grid_shape"]):
        raise CrocoInputError(
            f"map {lmap.source} was built on another ortho grid than {source.description} "
            f"({lmap.metadata['grid_transform']} vs {got}); rebuild it with `kedro run --pipelines=build_map`"
        )
