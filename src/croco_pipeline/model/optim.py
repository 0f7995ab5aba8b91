"""Optimisers and the learning-rate schedule: LARS, Adam/AdamW, batch-size scaling, warm-up + cosine.

Biases and normalisation-layer parameters get neither weight decay nor LARS adaptation (SimCLR, BYOL).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

OPTIMIZERS = ("lars", "adam", "adamw")
LR_SCALINGS = ("linear", "sqrt", "none")
_NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


class LARS(Optimizer):
    """Layer-wise Adaptive Rate Scaling around SGD with momentum.

    You, Gitman and Ginsburg, "Large Batch Training of Convolutional Networks", arXiv:1708.03888, 2017.
    For each parameter tensor w with gradient g in a group with ``lars=True``, the update direction is
    ``(g + wd * w) * eta * ||w|| / (||g|| + wd * ||w||)`` (trust ratio 1 when either norm is zero);
    groups with ``lars=False`` (biases, norm layers) take the plain ``g + wd * w`` (wd is 0 there).
    The direction then feeds SGD momentum: ``buf = momentum * buf + d``, ``w -= lr * buf``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
    ) -> None:
        if not lr > 0.0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if not eta > 0.0:
            raise ValueError(f"eta (trust coefficient) must be > 0, got {eta!r}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eta": eta,
            "lars": True,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            wd, eta = group["weight_decay"], group["eta"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                direction = grad.add(p, alpha=wd) if wd != 0.0 else grad.clone()
                if group["lars"]:
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(grad)
                    trust = eta * w_norm / (g_norm + wd * w_norm)
                    # A zero-norm weight (fresh init) or gradient gives no scale information.
                    trust = torch.where((w_norm > 0) & (g_norm > 0), trust, torch.ones_like(trust))
                    direction.mul_(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = direction.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(direction)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def _is_excluded(module: nn.Module, param_name: str, param: nn.Parameter) -> bool:
    return isinstance(module, _NORM_LAYERS) or param_name == "bias" or param.ndim <= 1


def param_groups(
    model: nn.Module, weight_decay: float, lr_scale: Mapping[int, float] | None = None
) -> list[dict[str, Any]]:
    """Split parameters into [decayed + LARS-adapted, excluded (biases, norm layers)].

    Each parameter appears once even when a module (e.g. a shared head) is reachable twice.
    ``lr_scale`` maps ``id(parameter)`` to a learning-rate factor (1 where absent): parameters with
    another factor come in two more groups of the same kinds, carrying it as ``lr_scale``.
    """
    seen: set[int] = set()
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            scale = float((lr_scale or {}).get(id(param), 1.0))
            groups.setdefault((scale, _is_excluded(module, name, param)), []).append(param)
    scales = dict.fromkeys([1.0, *(scale for scale, _ in groups)])  # in order, 1 first
    return [
        {
            "params": groups.get((scale, excluded), []),
            "weight_decay": 0.0 if excluded else weight_decay,
            "lars": not excluded,
            "lr_scale": scale,
        }
        for scale in scales
        for excluded in (False, True)
    ]


def scaled_lr(
    lr: float, batch_size: int, base_batch_size: int = 256, scale_lr: str = "linear"
) -> float:
    """Learning rate for ``batch_size``: ``lr * bs / base`` (Goyal et al. 2017), ``lr * sqrt(bs / base)``
    (Krizhevsky 2014, suited to LARS / Adam) or unchanged."""
    if scale_lr not in LR_SCALINGS:
        raise ValueError(f"scale_lr must be one of {LR_SCALINGS}, got {scale_lr!r}")
    if batch_size < 1 or base_batch_size < 1:
        raise ValueError(f"batch sizes must be >= 1, got {batch_size!r} and {base_batch_size!r}")
    ratio = batch_size / base_batch_size
    if scale_lr == "linear":
        return lr * ratio
    if scale_lr == "sqrt":
        return lr * math.sqrt(ratio)
    return lr


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    batch_size: int,
    base_batch_size: int = 256,
    scale_lr: str = "linear",
    lr_scale: Mapping[int, float] | None = None,
) -> Optimizer:
    """LARS (SGD momentum 0.9, eta 0.001), Adam or AdamW over ``param_groups(model, weight_decay,
    lr_scale)``, each group at the (batch-scaled) ``lr`` times its ``lr_scale``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if not lr > 0.0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    lr = scaled_lr(lr, batch_size, base_batch_size, scale_lr)
    groups = param_groups(model, weight_decay, lr_scale)
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    if name == "lars":
        return LARS(groups, lr=lr, momentum=0.9, weight_decay=weight_decay, eta=0.001)
    # Adam/AdamW ignore the extra "lars" key; keeping it makes group layouts identical across optimisers.
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def warmup_cosine(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """Per-step schedule: linear warm-up then cosine decay (Loshchilov and Hutter, ICLR 2017).

    Factor of the base lr at step s (call ``scheduler.step()`` after every optimiser step):
    ``(s + 1) / warmup_steps`` for s < warmup_steps, then
    ``min + (1 - min) * (1 + cos(pi * (s - W) / (T - W))) / 2``, reaching ``min_lr_ratio`` at s = T.
    """
    if warmup_steps < 0 or total_steps < 1 or warmup_steps > total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps!r}, {total_steps!r}"
        )
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
