"""A tiny two-branch model and a two-tile scene for fast training tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from croco_pipeline.data.stack import TileStack
from fixtures_geo import make_stack, patch_grid

SIDE, PATCH = 32, 8


class TinyPair(torch.nn.Module):
    """Two small conv branches with batch norm, standing in for the ResNet18s."""

    def __init__(self) -> None:
        super().__init__()
        self.rgb, self.elev = self._branch(3), self._branch(1)

    @staticmethod
    def _branch(c: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(
            torch.nn.Conv2d(c, 8, 3, stride=2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, 16),
        )  # fmt: skip

    def forward(self, rgb: torch.Tensor, elev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(self.rgb(rgb), dim=1), F.normalize(self.elev(elev), dim=1)


def fresh_tiny_pair() -> TinyPair:
    """A ``TinyPair`` with the same initial weights every time."""
    torch.manual_seed(0)
    return TinyPair()


def tiny_scene() -> tuple[list[TileStack], pd.DataFrame]:
    """Two 32 px training tiles whose photo and heights share a random pattern, and their 8 px
    windows on a 4 px grid."""
    stacks = []
    for i in range(2):
        pattern = np.random.default_rng(i).integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
        stack = make_stack(f"t{i}", (SIDE, SIDE), elevation=pattern[None].astype(np.float32))
        stack.rgb = np.stack([pattern] * 3)
        stacks.append(stack)
    index = pd.concat([patch_grid(s, PATCH, 4, split="train") for s in stacks], ignore_index=True)
    return stacks, index
