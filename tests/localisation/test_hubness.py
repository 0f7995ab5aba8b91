"""Hubness of map patches: scores against a slow reference, the training-tile bank, the vote's
penalty, and maps with and without the scores."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import STATS, scene_stack

from croco_pipeline.errors import CrocoInputError
from croco_pipeline.localisation.datasets import LocalisationMapDataset
from croco_pipeline.localisation.hubness import (
    BANK_MIN_VALID,
    bank_windows,
    hubness_scores,
    with_hubness,
)
from croco_pipeline.localisation.locate import hubness_penalty
from croco_pipeline.localisation.voting import dense_vote


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_hubness_is_the_mean_of_the_k_nearest_bank_cosines_centred() -> None:
    rng = np.random.default_rng(0)
    vectors, bank = _unit(rng.normal(size=(23, 6))), _unit(rng.normal(size=(9, 6)))
    got = hubness_scores([vectors[:10], vectors[10:]], bank, 3)  # block edges change nothing
    ref = np.array([np.mean(sorted(v @ b for b in bank)[-3:]) for v in vectors])
    np.testing.assert_allclose(got, ref - ref.mean(), atol=1e-6)
    assert abs(float(got.mean())) < 1e-6
    # k above the bank: every bank vector, i.e. the cosine with the bank's mean vector
    whole = hubness_scores([vectors], bank, 50)
    plain = vectors @ bank.mean(axis=0)
    np.testing.assert_allclose(whole, plain - plain.mean(), atol=1e-6)
    with pytest.raises(ValueError, match="k must be >= 1"):
        hubness_scores([vectors], bank, 0)


def test_the_bank_holds_only_valid_windows_of_training_tiles(heights) -> None:
    train, test = scene_stack(heights), scene_stack(heights)
    valid = np.ones(heights.shape, bool)
    valid[:, :100] = False  # the left part of the training tile holds no data
    train = replace(train, valid=valid, split="train")
    windows = bank_windows([test, train], 16, max_size=10**6)
    assert [i for i, _, _ in windows] == [1]  # the test tile gives nothing
    _, rows, cols = windows[0]
    assert (rows % 8 == 0).all() and (cols % 8 == 0).all()  # every half patch
    assert cols.min() >= 100 - 16 * (1 - BANK_MIN_VALID)  # at most 20 % of a window invalid
    capped = bank_windows([test, train], 16, max_size=7)
    assert len(capped[0][1]) == 7
    assert set(zip(capped[0][1], capped[0][2], strict=True)) <= set(zip(rows, cols, strict=True))
    again = bank_windows([test, train], 16, max_size=7)
    np.testing.assert_array_equal(capped[0][1], again[0][1])  # seeded
    with pytest.raises(ValueError, match="hubness_k: 0"):
        bank_windows([test], 16, max_size=10)


def test_the_penalty_is_subtracted_from_every_cosine_of_its_patch() -> None:
    rng = np.random.default_rng(4)
    lattice = np.stack(np.meshgrid(np.arange(6), np.arange(7), indexing="ij"), -1).reshape(-1, 2)
    gallery, emb = _unit(rng.normal(size=(len(lattice), 5)) + 1.0), _unit(rng.normal(size=(3, 5)))
    rows, cols = np.array([0, 4, 8]), np.array([0, 8, 4])
    penalty = rng.uniform(-0.1, 0.1, len(lattice))
    mean = gallery.mean(axis=0)
    blocks = [gallery[:10], gallery[10:]]
    got = dense_vote(rows, cols, emb, mean, blocks, lattice, (6, 7), 4, (12, 12), penalty)
    sims = emb @ gallery.T
    ref = np.zeros_like(got.votes)
    for t in range(3):
        for g, (i, j) in enumerate(lattice):
            excess = sims[t, g] - sims[t].mean() - penalty[g]
            ref[i - rows[t] // 4 + got.pad, j - cols[t] // 4 + got.pad] += max(excess, 0.0)
    np.testing.assert_allclose(got.votes, ref)
    plain = dense_vote(rows, cols, emb, mean, blocks, lattice, (6, 7), 4, (12, 12))
    assert not np.allclose(plain.votes, got.votes)


def test_a_region_of_hubs_loses_the_vote_to_the_truth_once_penalised() -> None:
    """A uniform region whose patches sit near every elevation embedding (a lawn, a car park)
    out-votes the truth on raw cosines; its hubness against a bank of such embeddings removes it."""
    rng = np.random.default_rng(1)
    d, stride = 16, 4
    hub = _unit(rng.normal(size=d))
    tiles = _unit(hub + 0.6 * _unit(rng.normal(size=(4, d))))  # every query tile is near the hub
    rows, cols = np.array([0, 0, 4, 4]), np.array([0, 4, 0, 4])
    lattice = np.stack(np.meshgrid(np.arange(10), np.arange(10), indexing="ij"), -1).reshape(-1, 2)
    gallery = _unit(rng.normal(size=(100, d)))  # unrelated ground
    at = {(int(i), int(j)): n for n, (i, j) in enumerate(lattice)}
    hubs = [at[i, j] for i in range(5, 9) for j in range(5, 9)]
    gallery[hubs] = _unit(hub + 0.05 * rng.normal(size=(len(hubs), d)))
    truth = (1, 2)
    for t in range(4):  # the true patches: each tile's own, noisy
        cell = at[truth[0] + rows[t] // stride, truth[1] + cols[t] // stride]
        gallery[cell] = _unit(tiles[t] + 1.2 * _unit(rng.normal(size=d)))
    bank = _unit(hub + 0.9 * _unit(rng.normal(size=(50, d))))  # elevation windows of the same kind
    bank = np.vstack([bank, _unit(rng.normal(size=(50, d)))])
    args = (rows, cols, tiles, gallery.mean(axis=0), [gallery], lattice, (10, 10), stride, (20, 20))
    raw = dense_vote(*args).peaks(1, 1)[0]
    assert 5 - 1 <= raw[0] <= 8 and 5 - 1 <= raw[1] <= 8  # the hub region wins on raw cosines
    penalty = 1.0 * hubness_scores([gallery], bank, 10)
    fixed = dense_vote(*args, penalty).peaks(1, 1)[0]
    assert fixed[:2] == truth


def test_maps_keep_their_hubness_and_a_weight_needs_it(tmp_path: Path, oracle, oracle_map,
                                                       heights) -> None:  # fmt: skip
    lmap, _ = oracle_map
    assert lmap.hubness is None and hubness_penalty(lmap, 0.0) is None
    with pytest.raises(CrocoInputError, match="localize.hubness_weight.*build_map.hubness_k"):
        hubness_penalty(lmap, 0.5)
    train = replace(scene_stack(heights), split="train")
    opts = {"hubness_k": 5, "hubness_bank": 40, "batch_size": 64, "device": "cpu"}
    hubbed = with_hubness(lmap, oracle, [train], STATS, opts)
    assert hubbed.metadata["hubness"] == {"k": 5, "bank_size": 40}
    assert len(hubbed.hubness) == len(lmap.index) and hubbed.hubness.std() > 0
    assert abs(float(hubbed.hubness.mean())) < 1e-5
    np.testing.assert_allclose(hubness_penalty(hubbed, 0.5), 0.5 * hubbed.hubness)
    dataset = LocalisationMapDataset(str(tmp_path / "map"))
    dataset.save(hubbed)
    np.testing.assert_array_equal(dataset.load().hubness, hubbed.hubness)
