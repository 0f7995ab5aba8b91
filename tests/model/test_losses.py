"""The contrastive losses against slow references, symmetry, closed forms and precision."""

import math

import pytest
import torch
import torch.nn.functional as F

from croco_pipeline.model.losses import cross_modal_info_nce, nt_xent


def _nt_xent_reference(z_a: torch.Tensor, z_b: torch.Tensor, tau: float) -> float:
    z = F.normalize(torch.cat([z_a, z_b]).double(), dim=1)
    n = z_a.shape[0]
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        denominator = sum(math.exp(float(z[i] @ z[j]) / tau) for j in range(2 * n) if j != i)
        total += -math.log(math.exp(float(z[i] @ z[positive]) / tau) / denominator)
    return total / (2 * n)


def _info_nce_reference(z_a: torch.Tensor, z_b: torch.Tensor, tau: float) -> float:
    a, b = F.normalize(z_a.double(), dim=1), F.normalize(z_b.double(), dim=1)
    n = a.shape[0]
    total = 0.0
    for queries, keys in ((a, b), (b, a)):
        for i in range(n):
            row = [math.exp(float(queries[i] @ keys[j]) / tau) for j in range(n)]
            total += -math.log(row[i] / sum(row))
    return total / (2 * n)


@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("dim", [2, 16])
@pytest.mark.parametrize("tau", [0.07, 0.1, 1.0])
def test_losses_match_slow_reference(n: int, dim: int, tau: float) -> None:
    g = torch.Generator().manual_seed(n * 100 + dim)
    z_a, z_b = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    assert nt_xent(z_a, z_b, tau).item() == pytest.approx(
        _nt_xent_reference(z_a, z_b, tau), rel=1e-4
    )
    assert cross_modal_info_nce(z_a, z_b, tau).item() == pytest.approx(
        _info_nce_reference(z_a, z_b, tau), rel=1e-4
    )


@pytest.mark.parametrize("loss", [nt_xent, cross_modal_info_nce])
def test_symmetric_under_swapping_modalities(loss) -> None:
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    assert loss(z_a, z_b).item() == pytest.approx(loss(z_b, z_a).item(), rel=1e-6)


@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_closed_form_for_aligned_orthonormal_embeddings(n: int, tau: float) -> None:
    z = torch.eye(8)[:n]
    # Positive similarity 1, every negative 0: 2N - 2 negatives for NT-Xent, N - 1 for InfoNCE.
    assert nt_xent(z, z, tau).item() == pytest.approx(
        math.log(1 + (2 * n - 2) * math.exp(-1 / tau)), rel=1e-5, abs=1e-6
    )
    assert cross_modal_info_nce(z, z, tau).item() == pytest.approx(
        math.log(1 + (n - 1) * math.exp(-1 / tau)), rel=1e-5, abs=1e-6
    )


def test_inputs_are_normalised_internally() -> None:
    g = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    assert nt_xent(3 * z_a, 0.5 * z_b).item() == pytest.approx(nt_xent(z_a, z_b).item(), rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss", [nt_xent, cross_modal_info_nce])
def test_low_precision_inputs_give_finite_float32_loss(dtype, loss) -> None:
    g = torch.Generator().manual_seed(2)
    z_a, z_b = torch.randn(64, 128, generator=g), torch.randn(64, 128, generator=g)
    low = loss(z_a.to(dtype), z_b.to(dtype), 0.07)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert low.item() == pytest.approx(loss(z_a, z_b, 0.07).item(), rel=2e-2)


def test_gradients_flow_to_both_inputs() -> None:
    z_a = torch.randn(4, 8, requires_grad=True)
    z_b = torch.randn(4, 8, requires_grad=True)
    nt_xent(z_a, z_b).backward()
    assert z_a.grad is not None and z_b.grad is not None and torch.isfinite(z_a.grad).all()


@pytest.mark.parametrize("tau", [0.0, -0.1, float("nan")])
@pytest.mark.parametrize("loss", [nt_xent, cross_modal_info_nce])
def test_bad_temperature_raises(loss, tau: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        loss(torch.randn(2, 4), torch.randn(2, 4), tau)


@pytest.mark.parametrize("shapes", [((2, 4), (3, 4)), ((2, 4), (2, 5)), ((8,), (8,))])
def test_bad_shapes_raise(shapes) -> None:
    with pytest.raises(ValueError, match="shape"):
        nt_xent(torch.randn(*shapes[0]), torch.randn(*shapes[1]))


def _nt_xent_queue_reference(z_a, z_b, q_a, q_b, tau: float) -> float:
    """Every anchor's denominator: the batch's 2N - 1 others plus all 2Q queued embeddings."""
    z = F.normalize(torch.cat([z_a, z_b]).double(), dim=1)
    q = F.normalize(torch.cat([q_a, q_b]).double(), dim=1)
    n = z_a.shape[0]
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        others = [float(z[i] @ z[j]) for j in range(2 * n) if j != i]
        others += [float(z[i] @ q[j]) for j in range(len(q))]
        denominator = sum(math.exp(s / tau) for s in others)
        total += -math.log(math.exp(float(z[i] @ z[positive]) / tau) / denominator)
    return total / (2 * n)


def _info_nce_queue_reference(z_a, z_b, q_a, q_b, tau: float) -> float:
    """An a anchor's candidates: the batch's N b embeddings then the queued b ones (and vice versa)."""
    a, b = F.normalize(z_a.double(), dim=1), F.normalize(z_b.double(), dim=1)
    qa, qb = F.normalize(q_a.double(), dim=1), F.normalize(q_b.double(), dim=1)
    n = a.shape[0]
    total = 0.0
    for queries, keys, queued in ((a, b, qb), (b, a, qa)):
        for i in range(n):
            row = [math.exp(float(queries[i] @ keys[j]) / tau) for j in range(n)]
            extra = [math.exp(float(queries[i] @ queued[j]) / tau) for j in range(len(queued))]
            total += -math.log(row[i] / (sum(row) + sum(extra)))
    return total / (2 * n)


@pytest.mark.parametrize("loss", [nt_xent, cross_modal_info_nce])
@pytest.mark.parametrize("empty", ["none", "zero_rows"])
def test_empty_queue_gives_exactly_todays_loss_and_gradients(loss, empty: str) -> None:
    g = torch.Generator().manual_seed(3)
    z_a = torch.randn(6, 16, generator=g, requires_grad=True)
    z_b = torch.randn(6, 16, generator=g, requires_grad=True)
    plain = loss(z_a, z_b, 0.1)
    (grad_a, grad_b) = torch.autograd.grad(plain, (z_a, z_b))
    q = None if empty == "none" else torch.empty(0, 16)
    queued = loss(z_a, z_b, 0.1, queue_a=q, queue_b=q)
    (qgrad_a, qgrad_b) = torch.autograd.grad(queued, (z_a, z_b))
    assert torch.equal(plain, queued)
    assert torch.equal(grad_a, qgrad_a) and torch.equal(grad_b, qgrad_b)


@pytest.mark.parametrize("n, q", [(1, 1), (4, 3), (5, 12)])
@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_queued_negatives_match_slow_reference(n: int, q: int, tau: float) -> None:
    g = torch.Generator().manual_seed(n * 10 + q)
    z_a, z_b = torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g)
    q_a, q_b = torch.randn(q, 8, generator=g), torch.randn(q, 8, generator=g)
    got = nt_xent(z_a, z_b, tau, queue_a=q_a, queue_b=q_b).item()
    assert got == pytest.approx(_nt_xent_queue_reference(z_a, z_b, q_a, q_b, tau), rel=1e-4)
    got = cross_modal_info_nce(z_a, z_b, tau, queue_a=q_a, queue_b=q_b).item()
    assert got == pytest.approx(_info_nce_queue_reference(z_a, z_b, q_a, q_b, tau), rel=1e-4)


def test_queued_orthogonal_negatives_closed_form() -> None:
    # Aligned orthonormal batch, queue orthogonal to it: each queued item adds e^0 = 1 to the
    # denominator beside the positive's e^(1/tau), so InfoNCE = log(1 + (N - 1 + Q) e^(-1/tau)).
    n, q, tau = 3, 4, 0.2
    z, queue = torch.eye(8)[:n], torch.eye(8)[n : n + q]
    got = cross_modal_info_nce(z, z, tau, queue_a=queue, queue_b=queue).item()
    assert got == pytest.approx(math.log(1 + (n - 1 + q) * math.exp(-1 / tau)), rel=1e-5)


def test_no_gradient_flows_into_the_queue() -> None:
    q = torch.randn(3, 8, requires_grad=True)
    z_a = torch.randn(4, 8, requires_grad=True)
    cross_modal_info_nce(z_a, torch.randn(4, 8), 0.1, queue_a=q, queue_b=q).backward()
    assert q.grad is None and z_a.grad is not None


def test_queue_of_the_wrong_width_raises() -> None:
    with pytest.raises(ValueError, match="queue_b must be"):
        cross_modal_info_nce(torch.randn(2, 4), torch.randn(2, 4), 0.1, queue_b=torch.randn(3, 5))
