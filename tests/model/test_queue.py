"""The embedding queue: FIFO order, detached unit rows, exact state round trip."""

import pytest
import torch
import torch.nn.functional as F

from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.model.queue import EmbeddingQueue


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
