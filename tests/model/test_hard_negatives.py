"""Geographic hard-negative batches: groups within the radius, no two windows overlapping."""

import numpy as np
import pandas as pd
import pytest

from croco_pipeline.data.windows import summed_area_table
from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.model.hard_negatives import HardNegatives, hard_geo_windows

SIZE = 8


def _tables() -> list[np.ndarray]:
    a = np.ones((96, 96), bool)
    a[:, 60:] = False  # a nodata strip: no window may take more than a quarter of it
    b = np.ones((64, 80), bool)
    return [summed_area_table(a), summed_area_table(b)]


def _draw(seed: int, n: int = 40, radius: float = 20.0, group: int = 5, min_valid: float = 0.75):
    return hard_geo_windows(
        np.random.default_rng(seed), _tables(), SIZE, n, radius, group, min_valid
    )


@pytest.mark.parametrize("seed", range(5))
def test_groups_lie_within_the_radius_and_no_windows_overlap(seed: int) -> None:
    tiles, rows, cols, groups = _draw(seed)
    assert len(rows) == 40
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        anchor = members[0]
        assert len(set(tiles[members].tolist())) == 1  # a group stays on its anchor's tile
        dist = np.hypot(rows[members] - rows[anchor], cols[members] - cols[anchor])
        assert dist.max() <= 20.0
    for i in range(len(rows)):  # brute force over every pair
        for j in range(i + 1, len(rows)):
            if tiles[i] == tiles[j]:
                overlap = abs(rows[i] - rows[j]) < SIZE and abs(cols[i] - cols[j]) < SIZE
                assert not overlap, (i, j)


def test_windows_lie_inside_their_tile_with_enough_valid_pixels() -> None:
    tables = _tables()
    tiles, rows, cols, _ = _draw(1)
    for t, r, c in zip(tiles, rows, cols, strict=True):
        h, w = tables[t].shape[0] - 1, tables[t].shape[1] - 1
        assert 0 <= r <= h - SIZE and 0 <= c <= w - SIZE
        tab = tables[t]
        valid = tab[r + SIZE, c + SIZE] - tab[r, c + SIZE] - tab[r + SIZE, c] + tab[r, c]
        assert valid / SIZE**2 >= 0.75


def test_groups_are_filled_when_there_is_room() -> None:
    _, _, _, groups = _draw(2, n=20, radius=30.0, group=4)
    assert np.bincount(groups).max() == 4 and (np.bincount(groups) >= 2).mean() > 0.5


def test_same_generator_state_gives_the_same_batch() -> None:
    a, b = _draw(7), _draw(7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], _draw(8)[1])


def test_too_many_windows_for_the_tiles_raises() -> None:
    with pytest.raises(ValueError, match="placed only"):
        _draw(0, n=400)


def test_parameters_are_checked() -> None:
    with pytest.raises(CrocoConfigError, match="train.hard_negatives.radius_m"):
        HardNegatives(radius_m=0.0)
    with pytest.raises(CrocoConfigError, match="group_siz"):
        HardNegatives.from_params({"group_siz": 4})


def test_pair_sampler_hard_geo_batches_follow_the_rule() -> None:
    from croco_pipeline.data.stack import NormalisationStats
    from croco_pipeline.model.sampling import PairSampler
    from fixtures_geo import make_stack, patch_grid

    stacks = [make_stack(f"t{i}", (64, 64), gsd=2.0, split="train") for i in range(2)]
    index = pd.concat([patch_grid(s, SIZE, 4, split="train") for s in stacks], ignore_index=True)
    stats = NormalisationStats("global_minmax", 0.0, 1.0, 1.0)
    sampler = PairSampler(stacks, index, stats, 16, mode="hard_geo", seed=1, steps_per_epoch=2,
                          hard_negatives=HardNegatives(radius_m=40.0, group_size=4))  # fmt: skip
    rng = np.random.default_rng(5)
    tiles, rows, cols = sampler._hard_geo_windows(rng, 16)
    want = hard_geo_windows(np.random.default_rng(5), [summed_area_table(s.valid) for s in stacks],
                            SIZE, 16, 20.0, 4, sampler.min_valid_fraction)  # fmt: skip
    assert np.array_equal(rows, want[1]) and np.array_equal(cols, want[2])  # 40 m = 20 px at 2 m
    rgb, elev = next(iter(sampler))
    assert rgb.shape == (16, 3, SIZE, SIZE) and elev.shape == (16, 1, SIZE, SIZE)


def test_train_config_accepts_hard_geo_and_the_queue() -> None:
    from croco_pipeline.model.config import TrainConfig

    config = TrainConfig.from_params(
        {"sampling": "hard_geo", "hard_negatives": {"radius_m": 64, "group_size": 4},
         "queue_size": 256}
    )  # fmt: skip
    assert config.hard_negatives.radius_m == 64 and config.queue_size == 256
    with pytest.raises(CrocoConfigError, match="train.queue_size"):
        TrainConfig.from_params({"queue_size": -1})
