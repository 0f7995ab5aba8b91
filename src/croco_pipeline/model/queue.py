"""A FIFO memory of earlier batches' embeddings, used as extra negatives in the contrastive losses.

MoCo (He et al., CVPR 2020) keeps a queue of keys; cross-batch memory (Wang et al., CVPR 2020) keeps
the encoder's own recent embeddings without a momentum encoder. This is the latter: after each step
the batch's (RGB, elevation) embeddings, detached and L2-normalised in float32, replace the oldest
entries. Its state (buffers, write pointer, fill count) goes into the trainer's checkpoint so a
resumed run sees exactly the negatives an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from croco_pipeline.errors import bad_param


class EmbeddingQueue:
    """Ring buffer of the last ``size`` (RGB, elevation) embedding pairs; ``size`` 0 is off.

    Args:
        size: number of pairs kept (``train.queue_size``); 0 keeps none and ``negatives`` returns
            ``(None, None)``, so the losses are computed exactly as without a queue.
    """

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise bad_param("train.queue_size", size, "a non-negative integer (0: no queue)")
        self.size = size
        self.rgb: Tensor | None = None  # (size, D), allocated at the first enqueue
        self.elevation: Tensor | None = None
        self.pointer = 0  # next row to overwrite
        self.filled = 0  # rows holding an embedding

    def __len__(self) -> int:
        return self.filled

    def negatives(self) -> tuple[Tensor | None, Tensor | None]:
        """The queued (RGB, elevation) embeddings as (Q, D) each, or ``(None, None)`` when empty."""
        if self.rgb is None or self.elevation is None or self.filled == 0:
            return None, None
        return self.rgb[: self.filled], self.elevation[: self.filled]

    @torch.no_grad()
    def enqueue(self, z_rgb: Tensor, z_elevation: Tensor) -> None:
        """Store a batch's (N, D) embedding pairs, overwriting the oldest; no gradient is kept.

        Under DDP pass the gathered global batch, so every rank holds the same queue.
        """
        if self.size == 0:
            return
        if z_rgb.ndim != 2 or z_rgb.shape != z_elevation.shape:
            raise ValueError(
                f"expected two (N, D) tensors of equal shape, "
                f"got {tuple(z_rgb.shape)} and {tuple(z_elevation.shape)}"
            )
        rgb = F.normalize(z_rgb.detach().float(), dim=1)[-self.size :]
        elev = F.normalize(z_elevation.detach().float(), dim=1)[-self.size :]
        if self.rgb is None or self.elevation is None:
            self.rgb = rgb.new_zeros((self.size, rgb.shape[1]))
            self.elevation = rgb.new_zeros((self.size, rgb.shape[1]))
        elif self.rgb.shape[1] != rgb.shape[1]:
            raise ValueError(f"queue holds {self.rgb.shape[1]}-d embeddings, got {rgb.shape[1]}-d")
        rows = (self.pointer + torch.arange(len(rgb))) % self.size
        self.rgb[rows.to(self.rgb.device)] = rgb.to(self.rgb.device)
        self.elevation[rows.to(self.elevation.device)] = elev.to(self.elevation.device)
        self.pointer = int((self.pointer + len(rgb)) % self.size)
        self.filled = min(self.size, self.filled + len(rgb))

    def state_dict(self) -> dict[str, Any]:
        """Buffers (on CPU, ``weights_only``-loadable), pointer and fill count."""
        return {
            "size": self.size,
            "pointer": self.pointer,
            "filled": self.filled,
            "rgb": None if self.rgb is None else self.rgb.detach().to("cpu", copy=True),
            "elevation": None
            if self.elevation is None
            else self.elevation.detach().to("cpu", copy=True),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        """Restore a ``state_dict``; its size must match this queue's."""
        if int(state["size"]) != self.size:
            raise bad_param(
                "train.queue_size", self.size, f"{state['size']} as in the checkpoint being resumed"
            )
        self.pointer, self.filled = int(state["pointer"]), int(state["filled"])
        self.rgb = None if state["rgb"] is None else state["rgb"].to(device)
        self.elevation = None if state["elevation"] is None else state["elevation"].to(device)
