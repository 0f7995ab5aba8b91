"""Multi-process helpers: process-group setup from torchrun's environment and an all-gather with grad.

Contrastive losses need every rank to see the global batch's negatives, hence ``gather_with_grad``.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a torch.distributed process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank, 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes, 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward returns this rank's slice of the summed gradient.

    Every rank computes a loss on the gathered (world * N, D) tensor; the gradient that reaches a rank's
    own N rows is the sum over ranks of each rank's loss gradient for those rows (an all-reduce).
    """

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:  # type: ignore[override]
        parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, z.contiguous())
        ctx.n, ctx.rank = z.shape[0], dist.get_rank()
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(z: Tensor) -> Tensor:
    """Concatenate (N, D) tensors from all ranks into (world * N, D), rank order, keeping gradients.

    Ranks must hold equal N. Identity when not distributed. With DDP (which averages gradients over
    ranks) and an identical loss on every rank, the resulting parameter gradients equal those of a
    single process on the global batch: each rank's rows get ``world`` times dL/dz, averaged over
    ``world`` ranks.
    """
    if not is_distributed() or world_size() == 1:
        return z
    return _GatherWithGrad.apply(z)  # type: ignore[no-any-return]


def setup_from_env(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's RANK / WORLD_SIZE / MASTER_ADDR variables.

    Args:
        backend: ``gloo`` or ``nccl``; default nccl when CUDA is available, else gloo.

    Returns:
        True when a group was (or already is) initialised, False when the variables are absent.
    """
    if is_distributed():
        return True
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        # Each process drives the GPU matching its local rank.
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")
    return True


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if is_distributed():
        dist.destroy_process_group()
