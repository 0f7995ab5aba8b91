"""On-the-fly pair sampling: determinism, grid positions, valid-fraction rejection, joint augmentation."""

import numpy as np
import pandas as pd
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS
from torch.utils.data import DataLoader

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.model.sampling import Augmentation, PairSampler

SIZE, PATCH = 40, 8
STATS = NormalisationStats("global_minmax", 0.0, 255.0, 50.0)


def _stack(name: str, seed: int) -> TileStack:
    """A tile whose elevation encodes each pixel's position and whose RGB repeats one random pattern."""
    rng = np.random.default_rng(seed)
    pattern = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    elevation = np.stack([pattern.astype(np.float32), rows, cols])
    return TileStack(
        name=name,
        rgb=np.stack([pattern] * 3),
        elevation=elevation,
        valid=np.ones((SIZE, SIZE), bool),
        crs=CRS.from_epsg(26915),
        transform=Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0),
        channels=("dsm", "row", "col"),
    )


def _index(stacks: list[TileStack], stride: int = PATCH) -> pd.DataFrame:
    records = [
        {"tile": s.name, "split": "train", "row": r, "col": c, "size_px": PATCH,
         "x": 1000.0 + 0.5 * c, "y": 2000.0 - 0.5 * r, "valid_fraction": 1.0}
        for s in stacks
        for r in range(0, SIZE - PATCH + 1, stride)
        for c in range(0, SIZE - PATCH + 1, stride)
    ]  # fmt: skip
    return pd.DataFrame.from_records(records)


@pytest.fixture()
def stacks() -> list[TileStack]:
    return [_stack("a", 0), _stack("b", 1)]


def _batches(
    sampler: PairSampler, epoch: int = 0, workers: int = 0
) -> list[tuple[torch.Tensor, ...]]:
    sampler.set_epoch(epoch)
    return list(DataLoader(sampler, batch_size=None, num_workers=workers))


def test_batches_have_shapes_and_dtype(stacks) -> None:
    sampler = PairSampler(stacks, _index(stacks), STATS, batch_size=10)
    assert len(sampler) == 50 // 10
    rgb, elev = _batches(sampler)[0]
    assert rgb.shape == (10, 3, PATCH, PATCH) and elev.shape == (10, 3, PATCH, PATCH)
    assert rgb.dtype == elev.dtype == torch.float32
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0


@pytest.mark.parametrize("mode", ["grid", "random"])
def test_same_seed_same_batches_and_epochs_differ(stacks, mode: str) -> None:
    make = lambda: PairSampler(stacks, _index(stacks), STATS, 10, mode=mode, seed=3)  # noqa: E731
    first, again = _batches(make()), _batches(make())
    for (r1, e1), (r2, e2) in zip(first, again, strict=True):
        assert torch.equal(r1, r2) and torch.equal(e1, e2)
    other_epoch = _batches(make(), epoch=1)
    assert not torch.equal(first[0][1], other_epoch[0][1])


def test_grid_mode_visits_each_index_position_once_per_pass(stacks) -> None:
    index = _index(stacks)
    sampler = PairSampler(stacks, index, STATS, batch_size=10, mode="grid")
    seen = []
    for rgb, elev in _batches(sampler):
        # Channels 1 and 2 hold each pixel's row and column (global min-max scaled by 255).
        rows = (elev[:, 1, 0, 0] * 255).round().long()
        cols = (elev[:, 2, 0, 0] * 255).round().long()
        seen += list(zip(rows.tolist(), cols.tolist(), strict=True))
        assert torch.equal(rgb[:, 0], elev[:, 0])
    expected = list(zip(index["row"], index["col"], strict=True))
    assert sorted(seen) == sorted(expected)


def test_random_mode_rejects_windows_with_too_few_valid_pixels(stacks) -> None:
    for s in stacks:
        s.valid[:, : SIZE // 2] = False
    sampler = PairSampler(stacks, _index(stacks), STATS, 16, mode="random", min_valid_fraction=1.0,
                          steps_per_epoch=3)  # fmt: skip
    batches = _batches(sampler)
    assert len(batches) == 3
    for _, elev in batches:
        cols = (elev[:, 2, 0, 0] * 255).round()
        assert (cols >= SIZE // 2).all()
        torch.testing.assert_close(
            elev[:, 2, :, 1] - elev[:, 2, :, 0], torch.full((16, PATCH), 1 / 255)
        )


def test_joint_rotation_and_flip_keep_modalities_aligned(stacks) -> None:
    plain = PairSampler(stacks, _index(stacks), STATS, 25, seed=5)
    augmented = PairSampler(stacks, _index(stacks), STATS, 25, seed=5,
                            augmentation=Augmentation(rotate_flip=True))  # fmt: skip
    changed = 0
    for (rgb_p, _), (rgb, elev) in zip(_batches(plain), _batches(augmented), strict=True):
        # RGB and elevation channel 0 carry the same asymmetric pattern: they must still coincide.
        for ch in range(3):
            assert torch.equal(rgb[:, ch], elev[:, 0])
        changed += int((rgb != rgb_p).flatten(1).any(1).sum())
        for i in range(len(rgb)):
            variants = [torch.rot90(rgb_p[i], k, (1, 2)) for k in range(4)]
            variants += [v.flip(-1) for v in variants]
            assert any(torch.equal(rgb[i], v) for v in variants)
    assert changed > 25


def test_colour_and_height_jitter(stacks) -> None:
    aug = Augmentation(colour_jitter=0.4, height_offset=0.1, height_scale=0.2)
    plain = _batches(PairSampler(stacks, _index(stacks), STATS, 10, seed=1))[0]
    jittered = _batches(PairSampler(stacks, _index(stacks), STATS, 10, seed=1, augmentation=aug))[0]
    assert not torch.equal(plain[0], jittered[0]) and not torch.equal(plain[1], jittered[1])
    assert 0.0 <= jittered[0].min() and jittered[0].max() <= 1.0
    # Height jitter is affine per sample: differences between pixels scale, they do not reshuffle.
    ratio = (jittered[1][:, 1, -1, 0] - jittered[1][:, 1, 0, 0]) / (
        plain[1][:, 1, -1, 0] - plain[1][:, 1, 0, 0]
    )
    assert ((ratio > 0.79) & (ratio < 1.21)).all()


def test_workers_give_the_same_batches(stacks) -> None:
    sampler = PairSampler(stacks, _index(stacks), STATS, 10, mode="random", seed=2, steps_per_epoch=5,
                          augmentation=Augmentation(rotate_flip=True, colour_jitter=0.2))  # fmt: skip
    single, multi = _batches(sampler, epoch=1), _batches(sampler, epoch=1, workers=2)
    assert len(multi) == 5
    for (r1, e1), (r2, e2) in zip(single, multi, strict=True):
        assert torch.equal(r1, r2) and torch.equal(e1, e2)


def test_ranks_take_disjoint_slices_of_the_global_batch(stacks) -> None:
    aug = Augmentation(rotate_flip=True, height_offset=0.1)
    full = _batches(PairSampler(stacks, _index(stacks), STATS, 10, seed=4, augmentation=aug))
    parts = [
        _batches(
            PairSampler(
                stacks, _index(stacks), STATS, 10, seed=4, augmentation=aug, rank=r, world_size=2
            )
        )  # fmt: skip
        for r in range(2)
    ]
    for k, (rgb, elev) in enumerate(full):
        assert torch.equal(torch.cat([parts[0][k][0], parts[1][k][0]]), rgb)
        assert torch.equal(torch.cat([parts[0][k][1], parts[1][k][1]]), elev)


def test_bad_arguments(stacks) -> None:
    with pytest.raises(ValueError, match="train.sampling"):
        PairSampler(stacks, _index(stacks), STATS, 10, mode="sliding")
    with pytest.raises(ValueError, match="train.batch_size"):
        PairSampler(stacks, _index(stacks), STATS, 500)
    with pytest.raises(ValueError, match="train.augmentation.colour_jitter"):
        Augmentation(colour_jitter=1.5)


def test_channel_dropout_flattens_the_other_channels_of_some_samples(stacks) -> None:
    plain = _batches(PairSampler(stacks, _index(stacks), STATS, 48, seed=2))[0]
    aug = Augmentation(channel_dropout=0.5)
    dropped = _batches(PairSampler(stacks, _index(stacks), STATS, 48, seed=2, augmentation=aug))[0]
    # the same windows; the first channel and the RGB untouched
    assert torch.equal(plain[0], dropped[0]) and torch.equal(plain[1][:, 0], dropped[1][:, 0])
    flat = (dropped[1][:, 1:].amax(dim=(-2, -1)) == dropped[1][:, 1:].amin(dim=(-2, -1))).all(1)
    assert 12 < int(flat.sum()) < 36  # about half of 48 samples
    kept = ~flat
    assert torch.equal(plain[1][kept], dropped[1][kept])
    # a flattened channel holds its patch mean (row / col indices: never flat unless dropped)
    means = plain[1][flat, 1:].mean(dim=(-2, -1))
    torch.testing.assert_close(dropped[1][flat, 1:, 0, 0], means)
