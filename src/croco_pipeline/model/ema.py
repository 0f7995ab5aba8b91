"""An exponential moving average of a model's weights (``train.ema_decay``).

After every optimiser step each floating-point tensor of the average moves towards the model's:
``avg = d * avg + (1 - d) * weight``; integer buffers (BatchNorm's batch counter) are copied. The
decay warms up as ``min(decay, (1 + t) / (10 + t))`` after ``t`` updates, so the first steps do not
keep the random initialisation; the warm-up term reaches 0.99 only after 890 updates, so in shorter
runs the average spans about the last ninth of the updates made, whatever the decay. Validation, the
best epoch and the saved model then use the average, which moves less from batch to batch than the
trained weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from croco_pipeline.model.runtime import cpu_state


def warmed_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (0-based): ``(1 + t) / (10 + t)`` until it reaches
    ``decay``."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightAverage:
    """The averaged copy of ``model`` (``module``), on the model's device, in eval mode."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), not {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards ``model``'s current weights."""
        d = warmed_decay(self.decay, self.updates)
        own = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = own[name]
            if target.is_floating_point():
                target.lerp_(value.detach(), 1.0 - d)
            else:
                target.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """What ``load_state_dict`` restores exactly (weights on the CPU, update count)."""
        return {"weights": cpu_state(self.module), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved (onto the average's own device)."""
        self.module.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
