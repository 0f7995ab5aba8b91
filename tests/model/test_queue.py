"""The embedding queue: FIFO order, detached unit rows, exact state round trip."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.model.queue import EmbeddingQueue
from fixtures_train import TinyPair, fresh_tiny_pair, tiny_scene


def _batch(start: int, n: int, dim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    # row i of batch k is (start + i) * e0 + e1: distinct, identifiable after normalisation
    idx = torch.arange(start, start + n, dtype=torch.float32)
    rgb = torch.zeros(n, dim)
    rgb[:, 0], rgb[:, 1] = idx, 1.0
    return rgb, -rgb


def _ids(rows: torch.Tensor) -> list[int]:
    # invert the normalisation: x0 / x1 recovers the identifier
    return sorted(round(float(v)) for v in rows[:, 0] / rows[:, 1])


def test_size_zero_is_off() -> None:
    queue = EmbeddingQueue(0)
    queue.enqueue(*_batch(0, 5))
    assert queue.negatives() == (None, None) and len(queue) == 0


def test_keeps_the_most_recent_rows_normalised_and_detached() -> None:
    queue = EmbeddingQueue(5)
    assert queue.negatives() == (None, None)
    rgb, elev = _batch(1, 3)
    rgb.requires_grad_(True)
    queue.enqueue(rgb, elev)
    queue.enqueue(*_batch(4, 4))  # 7 rows seen, the oldest two dropped
    q_rgb, q_elev = queue.negatives()
    assert q_rgb is not None and q_elev is not None
    assert _ids(q_rgb) == [3, 4, 5, 6, 7] and _ids(-q_elev) == [3, 4, 5, 6, 7]
    assert not q_rgb.requires_grad and q_rgb.dtype == torch.float32
    torch.testing.assert_close(q_rgb.norm(dim=1), torch.ones(5))


def test_a_batch_larger_than_the_queue_keeps_its_last_rows() -> None:
    queue = EmbeddingQueue(3)
    queue.enqueue(*_batch(10, 7))
    q_rgb, _ = queue.negatives()
    assert q_rgb is not None and _ids(q_rgb) == [14, 15, 16]


def test_state_round_trip_is_exact() -> None:
    queue = EmbeddingQueue(6)
    for k in range(3):
        queue.enqueue(*_batch(4 * k, 4))
    restored = EmbeddingQueue(6)
    restored.load_state_dict(queue.state_dict())
    for q in (queue, restored):
        q.enqueue(*_batch(100, 2))
    a, b = queue.negatives(), restored.negatives()
    assert a[0] is not None and b[0] is not None and a[1] is not None and b[1] is not None
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert (restored.pointer, restored.filled) == (queue.pointer, queue.filled)


def test_resuming_with_another_size_raises() -> None:
    queue = EmbeddingQueue(4)
    queue.enqueue(*_batch(0, 2))
    with pytest.raises(CrocoConfigError, match="train.queue_size"):
        EmbeddingQueue(8).load_state_dict(queue.state_dict())


@pytest.mark.parametrize("size", [-1, 1.5, True])
def test_bad_size_raises(size) -> None:
    with pytest.raises(CrocoConfigError, match="train.queue_size"):
        EmbeddingQueue(size)


def test_unit_rows_equal_normalised_input() -> None:
    g = torch.Generator().manual_seed(0)
    rgb, elev = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    queue = EmbeddingQueue(3)
    queue.enqueue(rgb, elev)
    q_rgb, q_elev = queue.negatives()
    assert q_rgb is not None and q_elev is not None
    torch.testing.assert_close(q_rgb, F.normalize(rgb, dim=1))
    torch.testing.assert_close(q_elev, F.normalize(elev, dim=1))


# --- the queue inside the trainer: checkpointed, restored exactly, and really used ------------


class _Interrupted(Exception):
    """Stands in for a crash after the first epoch's checkpoint."""


def _crash_after_first_epoch(epoch: int, record: dict[str, float]) -> None:
    raise _Interrupted


def _train(tmp: Path | None, on_epoch_end=None, **kw):
    from croco_pipeline.data.stack import NormalisationStats
    from croco_pipeline.model.trainer import TrainConfig, train

    stacks, index = tiny_scene()
    params = {"epochs": 2, "batch_size": 8, "steps_per_epoch": 3, "optimizer": "adam", "lr": 1e-2,
              "device": "cpu", "progress": False, "seed": 3, "loss": "info_nce",
              "sampling": "random", "checkpoint_dir": str(tmp) if tmp else None, **kw}  # fmt: skip
    stats = NormalisationStats("global_minmax", 0.0, 255.0, 50.0)
    return train(fresh_tiny_pair() if not kw.get("resume") else TinyPair(), stacks, index, stats,
                 TrainConfig.from_params(params), on_epoch_end=on_epoch_end)  # fmt: skip


def test_resume_with_the_queue_on_gives_identical_weights(tmp_path: Path) -> None:
    straight = _train(tmp_path / "a", queue_size=20)
    with pytest.raises(_Interrupted):
        _train(tmp_path / "b", _crash_after_first_epoch, queue_size=20)
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["queue"]
    assert saved["filled"] == 20 and saved["pointer"] == (3 * 8) % 20  # 3 steps of 8 pairs
    torch.manual_seed(99)  # everything must come from last.pt, the queue included
    resumed = _train(tmp_path / "b", queue_size=20, resume=True)
    for key, value in straight.last_state.items():
        assert torch.equal(value, resumed.last_state[key]), key
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]


def test_a_resume_that_drops_the_queue_would_diverge(tmp_path: Path) -> None:
    # the control for the test above: with the queue's state lost, weights differ
    straight = _train(tmp_path / "a", queue_size=20)
    with pytest.raises(_Interrupted):
        _train(tmp_path / "b", _crash_after_first_epoch, queue_size=20)
    ckpt = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    ckpt["queue"] = EmbeddingQueue(20).state_dict()
    torch.save(ckpt, tmp_path / "b" / "last.pt")
    resumed = _train(tmp_path / "b", queue_size=20, resume=True)
    assert any(not torch.equal(v, resumed.last_state[k]) for k, v in straight.last_state.items())


def test_queue_size_zero_trains_exactly_as_without_a_queue_and_a_queue_changes_training() -> None:
    default = _train(None)
    off = _train(None, queue_size=0)
    on = _train(None, queue_size=16)
    assert all(torch.equal(v, off.last_state[k]) for k, v in default.last_state.items())
    assert default.history[0]["loss"] != on.history[0]["loss"]


def test_init_from_starts_from_saved_weights(tmp_path: Path) -> None:
    first = _train(tmp_path / "a", epochs=1)
    torch.save({"config": {}, "state_dict": first.last_state}, tmp_path / "model.pt")
    from croco_pipeline.model.trainer import load_initial_weights

    model = TinyPair()
    load_initial_weights(model, str(tmp_path / "model.pt"))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in first.last_state.items())
    load_initial_weights(model, str(tmp_path / "a" / "last.pt"))  # a checkpoint works too
    with pytest.raises(CrocoConfigError, match="train.init_from"):
        load_initial_weights(model, str(tmp_path / "missing.pt"))
    torch.save({"state_dict": {"other": torch.zeros(1)}}, tmp_path / "bad.pt")
    with pytest.raises(CrocoConfigError, match="same architecture"):
        load_initial_weights(model, str(tmp_path / "bad.pt"))
    # another channel count: the elevation stem keeps its own weights, the rest is loaded
    other = dict(first.last_state, **{"elev.0.weight": torch.ones(8, 3, 3, 3)})
    torch.save({"state_dict": other}, tmp_path / "three_channels.pt")
    fresh = TinyPair()
    stem = fresh.state_dict()["elev.0.weight"].clone()
    load_initial_weights(fresh, str(tmp_path / "three_channels.pt"))
    assert torch.equal(fresh.state_dict()["elev.0.weight"], stem)
    assert torch.equal(fresh.state_dict()["rgb.0.weight"], first.last_state["rgb.0.weight"])


def test_init_lr_scale_slows_only_the_loaded_weights(tmp_path: Path) -> None:
    first = _train(None, epochs=1)
    # another channel count: the elevation stem is not loaded and learns at the full rate
    other = dict(first.last_state, **{"elev.0.weight": torch.ones(8, 3, 3, 3)})
    torch.save({"state_dict": other}, tmp_path / "init.pt")
    runs = {
        scale: _train(None, epochs=1, init_from=str(tmp_path / "init.pt"), init_lr_scale=scale)
        for scale in (1.0, 1e-6)
    }
    for scale, run in runs.items():
        moved = [
            float((run.last_state[k] - first.last_state[k]).abs().max())
            for k in ("rgb.0.weight", "rgb.0.bias", "elev.0.bias")
        ]
        assert (min(moved) > 1e-3) if scale == 1.0 else (max(moved) < 1e-6), (scale, moved)
    stem = fresh_tiny_pair().state_dict()["elev.0.weight"]  # its own initialisation (same seed)
    assert float((runs[1e-6].last_state["elev.0.weight"] - stem).abs().max()) > 1e-3
