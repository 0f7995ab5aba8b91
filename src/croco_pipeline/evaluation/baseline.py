"""Classical, learning-free baseline: normalised cross-correlation of gradient-magnitude images.

Written as an embedding (z-scored gradient magnitude / sqrt(n)) so cosine similarity equals the NCC and
the same retrieval protocols run on it and on the learned model.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ITU-R BT.601 luma weights for the RGB -> grey conversion
LUMA = (0.299, 0.587, 0.114)


def gradient_magnitude(images: Tensor) -> Tensor:
    """Central-difference gradient magnitude of (N, h, w) images -> (N, h - 2, w - 2).

    The one-pixel border is dropped so no padding convention leaks into the correlation.
    """
    if images.ndim != 3 or images.shape[-1] < 3 or images.shape[-2] < 3:
        raise ValueError(
            f"images must be (N, h, w) with h, w >= 3, got shape {tuple(images.shape)}"
        )
    gx = images[:, 1:-1, 2:] - images[:, 1:-1, :-2]
    gy = images[:, 2:, 1:-1] - images[:, :-2, 1:-1]
    return torch.sqrt(gx * gx + gy * gy)


def ncc_descriptor(images: Tensor, downsample: int = 1) -> Tensor:
    """Unit-norm descriptor whose dot products are the NCC of the images' gradient magnitudes.

    Args:
        images: float (N, h, w).
        downsample: integer average-pooling factor applied to the gradient magnitude, to bound the
            descriptor length ((h - 2) * (w - 2) / downsample**2).

    Returns:
        float32 (N, n); a flat image (no gradient variation) maps to the zero vector.
    """
    if downsample < 1:
        raise ValueError(f"downsample must be an integer >= 1, got {downsample}")
    grad = gradient_magnitude(images.float())
    if downsample > 1:
        grad = F.avg_pool2d(grad[:, None], downsample)[:, 0]
    flat = grad.flatten(1)
    z = flat - flat.mean(dim=1, keepdim=True)
    std = z.pow(2).mean(dim=1, keepdim=True).sqrt()
    # z / std has squared norm n, so dividing by sqrt(n) makes cosine similarity exactly the NCC.
    return torch.where(std > 1e-12, z / std.clamp_min(1e-12), 0.0) / flat.shape[1] ** 0.5


def _as_tensor(x: np.ndarray | Tensor) -> Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 4:
        raise ValueError(f"patches must be (N, C, s, s), got shape {tuple(t.shape)}")
    return t.float()


def baseline_embed_rgb(rgb_patches: np.ndarray | Tensor, downsample: int = 1) -> Tensor:
    """Baseline descriptor of RGB patches (N, 3, s, s), uint8 or normalised float -> (N, n)."""
    rgb = _as_tensor(rgb_patches)
    if rgb.shape[1] != 3:
        raise ValueError(f"rgb_patches must have 3 channels, got shape {tuple(rgb.shape)}")
    weights = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device)
    grey = torch.einsum("nchw,c->nhw", rgb, weights)
    return ncc_descriptor(grey, downsample)


def baseline_embed_elevation(
    elevation_patches: np.ndarray | Tensor, channel: int = 0, downsample: int = 1
) -> Tensor:
    """Baseline descriptor of elevation patches (N, C, s, s), raw or normalised -> (N, n).

    Gradient magnitude then z-scoring is invariant to any per-patch affine height scaling, so raw
    metres and both ``NormalisationStats`` modes give the same descriptor.
    """
    elev = _as_tensor(elevation_patches)
    if not 0 <= channel < elev.shape[1]:
        raise ValueError(f"channel must be in [0, {elev.shape[1]}), got {channel}")
    return ncc_descriptor(elev[:, channel], downsample)


class BaselineModel(nn.Module):
    """The baseline behind the model's interface: ``embed_rgb`` / ``embed_elevation`` on tensors."""

    def __init__(self, elevation_channel: int = 0, downsample: int = 1) -> None:
        super().__init__()
        if downsample < 1:
            raise ValueError(f"downsample must be an integer >= 1, got {downsample}")
        self.elevation_channel = elevation_channel
        self.downsample = downsample

    def embed_rgb(self, x: Tensor) -> Tensor:
        """(N, 3, s, s) float in [0, 1] -> unit-norm (N, n)."""
        return baseline_embed_rgb(x, self.downsample)

    def embed_elevation(self, x: Tensor) -> Tensor:
        """(N, C, s, s) normalised heights -> unit-norm (N, n)."""
        return baseline_embed_elevation(x, self.elevation_channel, self.downsample)
