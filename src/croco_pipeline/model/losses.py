"""Contrastive losses that pull co-located RGB and elevation embeddings together.

Both losses L2-normalise their inputs internally (normalising an already unit vector is a no-op), and
compute in float32 whatever the input dtype, so they stay stable under bf16/fp16 autocast. Both take
optional extra negatives (``queue_a``, ``queue_b``: detached embeddings of earlier batches, see
``model/queue.py``); with none, or an empty queue, the loss is computed exactly as without them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: optional (Q, D) earlier embeddings of one modality (extra negatives, no gradient flows into
#: them); None, or an empty queue, for none
Queue = Tensor | None


def _check_inputs(z_a: Tensor, z_b: Tensor, temperature: float) -> None:
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"expected two (N, D) tensors of equal shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.shape[0] < 1:
        raise ValueError("expected at least one pair, got an empty batch")


def _unit_float32(z: Tensor) -> Tensor:
    # Low-precision logits divided by a small temperature lose too many bits: work in float32.
    return F.normalize(z.float(), dim=1)


def _check_queue(queue: Queue, dim: int, name: str) -> Queue:
    """None for no extra negatives (absent or empty), else the queue as unit float32 rows."""
    if queue is None or queue.shape[0] == 0:
        return None
    if queue.ndim != 2 or queue.shape[1] != dim:
        raise ValueError(f"{name} must be (Q, {dim}), got shape {tuple(queue.shape)}")
    return _unit_float32(queue.detach())


def _checked(
    z_a: Tensor, z_b: Tensor, temperature: float, queue_a: Queue, queue_b: Queue
) -> tuple[Tensor, Tensor, Queue, Queue]:
    """Both losses' argument checks: the pair as unit float32 rows, then each queue (``_check_queue``)."""
    _check_inputs(z_a, z_b, temperature)
    dim = z_a.shape[1]
    return (
        _unit_float32(z_a),
        _unit_float32(z_b),
        _check_queue(queue_a, dim, "queue_a"),
        _check_queue(queue_b, dim, "queue_b"),
    )


def _append_negatives(
    logits: Tensor, anchors: Tensor, negatives: Queue, temperature: float
) -> Tensor:
    # Extra columns after the batch's: the positives' column indices (the targets) do not move.
    if negatives is None:
        return logits
    return torch.cat([logits, anchors @ negatives.T / temperature], dim=1)


def nt_xent(
    z_a: Tensor, z_b: Tensor, temperature: float = 0.1, queue_a: Queue = None, queue_b: Queue = None
) -> Tensor:
    """SimCLR's NT-Xent loss over the 2N embeddings of N positive pairs.

    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
    as used by CroCo (ISPRS Annals 2022). Each of the 2N embeddings is an anchor; its positive is its
    partner in the other modality and its 2N - 2 negatives are every other embedding, including those
    of its own modality. The anchor's similarity to itself is excluded by setting that logit to -inf.

    The library the original CroCo code used excluded the self-similarity by subtracting e^1 from the
    softmax denominator, which is only right for temperature 1: the self-term is e^(1/tau), so with
    tau = 0.1 about e^10 - e^1 of spurious mass stayed in every denominator. This is the correct loss.

    Args:
        z_a: (N, D) embeddings of modality a (e.g. RGB); normalised internally.
        z_b: (N, D) embeddings of modality b (e.g. elevation), row i paired with ``z_a[i]``.
        temperature: softmax temperature tau > 0.
        queue_a, queue_b: optional (Q, D) earlier embeddings of each modality (no gradient flows
            into them); all 2Q of them join every anchor's negatives, as the batch's own do.

    Returns:
        Scalar float32 tensor: mean over the 2N anchors of -log softmax(positive).
    """
    a, b, queue_a, queue_b = _checked(z_a, z_b, temperature, queue_a, queue_b)
    n = z_a.shape[0]
    z = torch.cat([a, b], dim=0)  # (2N, D)
    logits = z @ z.T / temperature  # (2N, 2N)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    queues = [q for q in (queue_a, queue_b) if q is not None]
    if queues:
        logits = _append_negatives(logits, z, torch.cat(queues), temperature)
    # Anchor i in [0, N) pairs with i + N, and anchor i + N with i.
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def cross_modal_info_nce(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float = 0.07,
    queue_a: Queue = None,
    queue_b: Queue = None,
) -> Tensor:
    """Symmetric cross-modal InfoNCE (CLIP-style) using only the a <-> b similarities.

    Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021;
    van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018. Unlike
    NT-Xent, same-modality pairs are not negatives: for each RGB anchor the candidates are the N
    elevation embeddings, and vice versa, which matches the retrieval task (elevation query, RGB gallery).

    Args:
        z_a: (N, D) embeddings of modality a; normalised internally.
        z_b: (N, D) embeddings of modality b, row i paired with ``z_a[i]``.
        temperature: softmax temperature tau > 0.
        queue_a, queue_b: optional (Q, D) earlier embeddings of modality a / b (no gradient flows
            into them): queued b embeddings are extra candidates for every a anchor and vice versa
            (MoCo, He et al. CVPR 2020; cross-batch memory, Wang et al. CVPR 2020).

    Returns:
        Scalar float32 tensor: (CE(a -> b) + CE(b -> a)) / 2, each a mean over N anchors.
    """
    a, b, queue_a, queue_b = _checked(z_a, z_b, temperature, queue_a, queue_b)
    logits = a @ b.T / temperature  # (N, N)
    targets = torch.arange(z_a.shape[0], device=logits.device)
    a_to_b = _append_negatives(logits, a, queue_b, temperature)
    b_to_a = _append_negatives(logits.T, b, queue_a, temperature)
    return 0.5 * (F.cross_entropy(a_to_b, targets) + F.cross_entropy(b_to_a, targets))


LOSSES = {"nt_xent": nt_xent, "info_nce": cross_modal_info_nce}
