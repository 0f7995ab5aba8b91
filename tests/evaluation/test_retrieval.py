"""Tests of patch embedding and exact cosine top-k search (both backends)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS
from torch import Tensor, nn

from croco_pipeline.data.stack import (
    NormalisationStats,
    TileStack,
    extract_patches,
    normalise_elevation,
    normalise_rgb,
)
from croco_pipeline.evaluation import retrieval
from croco_pipeline.evaluation.retrieval import (
    embed_elevation_queries,
    embed_patches,
    embed_rgb_gallery,
    iter_rgb_batches,
    similarity_to_gallery,
    topk_cosine,
)


class MeanModel(nn.Module):
    """Stand-in model: embeds a patch by its per-channel means (L2-normalised); records batches."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []
        self.inference: list[bool] = []

    def _embed(self, x: Tensor) -> Tensor:
        self.batch_sizes.append(len(x))
        self.inference.append(torch.is_inference_mode_enabled())
        feats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1) + 1e-3
        return nn.functional.normalize(feats, dim=1)

    def embed_rgb(self, x: Tensor) -> Tensor:
        return self._embed(x)

    def embed_elevation(self, x: Tensor) -> Tensor:
        return self._embed(x)


@pytest.fixture
def stack() -> TileStack:
    rng = np.random.default_rng(0)
    return TileStack(
        name="t0",
        rgb=rng.integers(0, 256, (3, 40, 48), dtype=np.uint8),
        elevation=rng.normal(10, 3, (2, 40, 48)).astype(np.float32),
        valid=np.ones((40, 48), bool),
        crs=CRS.from_epsg(26915),
        transform=Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0),
        channels=("dsm", "dem"),
        split="test",
    )


def _brute_force(q: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    return np.argsort(-(qn @ gn.T), axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 203, 1000])
@pytest.mark.parametrize("k", [1, 5])
def test_backends_agree_with_brute_force(chunk_size: int, k: int) -> None:
    rng = np.random.default_rng(chunk_size + k)
    q = rng.normal(size=(31, 16)).astype(np.float32)
    g = (rng.normal(size=(203, 16)) * rng.uniform(0.1, 5, (203, 1))).astype(np.float32)
    expected = _brute_force(q, g, k)
    s_t, i_t = topk_cosine(q, g, k, backend="torch", chunk_size=chunk_size)
    s_f, i_f = topk_cosine(q, g, k, backend="faiss")
    np.testing.assert_array_equal(i_t, expected)
    np.testing.assert_array_equal(i_f, expected)
    np.testing.assert_allclose(s_t, s_f, atol=1e-5)
    assert s_t.shape == (31, k) and i_t.dtype == np.int64
    assert np.all(np.diff(s_t, axis=1) <= 1e-7)  # best first


def test_torch_backend_memory_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    unit = retrieval._unit

    def spy(x: Tensor) -> Tensor:
        seen.append(len(x))
        return unit(x)

    monkeypatch.setattr(retrieval, "_unit", spy)
    rng = np.random.default_rng(1)
    topk_cosine(rng.normal(size=(5, 8)), rng.normal(size=(1001, 8)), 10, chunk_size=100)
    # first call normalises the queries; every gallery block holds at most chunk_size rows
    assert seen[0] == 5 and max(seen[1:]) == 100 and sum(seen[1:]) == 1001


def test_inputs_are_normalised_inside() -> None:
    rng = np.random.default_rng(2)
    q, g = rng.normal(size=(4, 6)), rng.normal(size=(50, 6))
    s, i = topk_cosine(q * 7.0, g * rng.uniform(0.01, 100, (50, 1)), 3)
    s_ref, i_ref = topk_cosine(q, g, 3, backend="faiss")
    np.testing.assert_array_equal(i, i_ref)
    assert np.all(np.abs(s) <= 1 + 1e-5)


@pytest.mark.parametrize(
    ("q_shape", "g_shape", "k", "match"),
    [
        ((3, 4), (10, 4), 0, "k must"),
        ((3, 4), (10, 4), 11, "k must"),
        ((3, 4), (10, 5), 1, "share D"),
        ((4,), (10, 4), 1, "share D"),
    ],
)
def test_bad_arguments_raise(q_shape: tuple, g_shape: tuple, k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        topk_cosine(np.ones(q_shape), np.ones(g_shape), k)


def test_bad_backend_and_chunk_raise() -> None:
    with pytest.raises(ValueError, match="backend"):
        topk_cosine(np.ones((2, 3)), np.ones((4, 3)), 1, backend="annoy")
    with pytest.raises(ValueError, match="chunk_size"):
        topk_cosine(np.ones((2, 3)), np.ones((4, 3)), 1, chunk_size=0)


def test_similarity_to_gallery_matches_topk() -> None:
    rng = np.random.default_rng(3)
    q, g = rng.normal(size=8), rng.normal(size=(40, 8))
    sims = similarity_to_gallery(q, g)
    s, i = topk_cosine(q[None], g, 5)
    np.testing.assert_allclose(sims[i[0]], s[0], atol=1e-5)
    with pytest.raises(ValueError, match="query must be"):
        similarity_to_gallery(g, g)


def test_embed_patches_array_and_iterable_agree() -> None:
    model = MeanModel()
    x = np.random.default_rng(4).random((23, 3, 8, 8)).astype(np.float32)
    whole = embed_patches(model.embed_rgb, x, batch_size=10)
    assert model.batch_sizes == [10, 10, 3] and all(model.inference)
    parts = embed_patches(model.embed_rgb, (x[i : i + 4] for i in range(0, 23, 4)))
    np.testing.assert_allclose(whole, parts, atol=1e-6)
    assert whole.dtype == np.float32 and whole.shape == (23, 6)
    with pytest.raises(ValueError, match="batch_size"):
        embed_patches(model.embed_rgb, x, batch_size=0)


def test_stack_helpers_match_direct_extraction(stack: TileStack) -> None:
    rows, cols = np.array([0, 5, 24, 3, 10]), np.array([0, 7, 32, 30, 1])
    stats = NormalisationStats("global_minmax", 0.0, 20.0, 1.0)
    rgb, elev = extract_patches(stack, rows, cols, 16)
    model = MeanModel()
    got_rgb = embed_rgb_gallery(model, stack, rows, cols, 16, batch_size=2)
    assert model.batch_sizes == [2, 2, 1]  # never more than one batch of patches at a time
    got_elev = embed_elevation_queries(model, stack, rows, cols, 16, stats, batch_size=3)
    ref_rgb = model.embed_rgb(torch.from_numpy(normalise_rgb(rgb))).numpy()
    ref_elev = model.embed_elevation(torch.from_numpy(normalise_elevation(elev, stats))).numpy()
    np.testing.assert_allclose(got_rgb, ref_rgb, atol=1e-6)
    np.testing.assert_allclose(got_elev, ref_elev, atol=1e-6)
    batches = list(iter_rgb_batches(stack, rows, cols, 16, batch_size=4))
    assert [b.shape for b in batches] == [(4, 3, 16, 16), (1, 3, 16, 16)]
    assert batches[0].dtype == np.float32 and batches[0].max() <= 1.0


def test_map_index_ivf_visiting_every_cell_is_exact_and_bad_kind_raises() -> None:
    from croco_pipeline.evaluation.retrieval import MapIndex

    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(600, 16)).astype(np.float32)
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    _, exact = topk_cosine(queries, gallery, 5, backend="torch")
    index = MapIndex(16, "ivf", nlist=8, nprobe=8)
    index.add(gallery)
    assert len(index) == 600
    _, idx = index.search(queries, 5)
    np.testing.assert_array_equal(idx, exact)
    with pytest.raises(ValueError, match="kind"):
        MapIndex(16, "hnsw")


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_map_index_gives_back_its_unit_vectors_in_insertion_order(kind: str) -> None:
    from croco_pipeline.evaluation.retrieval import MapIndex

    gallery = np.random.default_rng(5).normal(size=(300, 8)).astype(np.float32) * 3.0
    index = MapIndex(8, kind, nlist=4, nprobe=1)
    index.add(gallery, chunk_size=128)
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    np.testing.assert_allclose(index.vectors(), unit, rtol=1e-6)
    np.testing.assert_allclose(index.vectors(100, 130), unit[100:130], rtol=1e-6)
    assert index.vectors(290, 1000).shape == (10, 8)  # clipped at the end
    again = MapIndex.from_bytes(index.to_bytes(), nprobe=1)  # a map read back from disk
    np.testing.assert_allclose(again.vectors(250), unit[250:], rtol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        index.vectors(200, 100)
