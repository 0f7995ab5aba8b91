"""Classical, learning-free baseline: normalised cross-correlation of gradient-magnitude images.

Written as an embedding (z-scored gradient magnitude / sqrt(n)) so cosine similarity equals the NCC and
the same retrieval protocols run on it and on the learned model. Options (swept on validation tiles by
``baseline_sweep.py``): Gaussian smoothing before the gradient, pooling of the gradient image, and the
gradient's absolute components (|gx|, |gy|) instead of its magnitude, which keeps edge orientation but
not its sign (a roof may be brighter or darker than the ground around it).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ITU-R BT.601 luma weights for the RGB -> grey conversion
LUMA = (0.299, 0.587, 0.114)
#: what the descriptor correlates: the gradient magnitude, or its absolute x and y components
GRADIENTS = ("magnitude", "abs_components")


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


def gaussian_smooth(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (N, h, w) images, kernel radius ceil(3 sigma), edges reflected.

    ``sigma`` 0 returns the images unchanged.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 pixels, got {sigma}")
    if sigma == 0:
        return images
    radius = min(int(math.ceil(3 * sigma)), min(images.shape[-2:]) - 1)
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = F.pad(images[:, None], (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1))
    return F.conv2d(out, kernel.view(1, 1, -1, 1))[:, 0]


def _gradient_channels(images: Tensor, gradient: str) -> Tensor:
    """(N, k, h - 2, w - 2): the magnitude (k = 1) or |gx| and |gy| (k = 2)."""
    if gradient == "magnitude":
        return gradient_magnitude(images)[:, None]
    if gradient != "abs_components":
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    gradient_magnitude(images[:1])  # the same shape check
    gx = images[:, 1:-1, 2:] - images[:, 1:-1, :-2]
    gy = images[:, 2:, 1:-1] - images[:, :-2, 1:-1]
    return torch.stack([gx.abs(), gy.abs()], dim=1)


def ncc_descriptor(
    images: Tensor, downsample: int = 1, sigma: float = 0.0, gradient: str = "magnitude"
) -> Tensor:
    """Unit-norm descriptor whose dot products are the NCC of the images' gradient images.

    Args:
        images: float (N, h, w).
        downsample: integer average-pooling factor applied to the gradient image, to bound the
            descriptor length ((h - 2) * (w - 2) / downsample**2 per gradient channel).
        sigma: Gaussian smoothing in pixels before the gradient (0: none).
        gradient: ``magnitude`` or ``abs_components`` (|gx| and |gy|, z-scored together).

    Returns:
        float32 (N, n); a flat image (no gradient variation) maps to the zero vector.
    """
    if downsample < 1:
        raise ValueError(f"downsample must be an integer >= 1, got {downsample}")
    grad = _gradient_channels(gaussian_smooth(images.float(), sigma), gradient)
    if downsample > 1:
        grad = F.avg_pool2d(grad, downsample)
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


def baseline_embed_rgb(
    rgb_patches: np.ndarray | Tensor,
    downsample: int = 1,
    sigma: float = 0.0,
    gradient: str = "magnitude",
) -> Tensor:
    """Baseline descriptor of RGB patches (N, 3, s, s), uint8 or normalised float -> (N, n)."""
    rgb = _as_tensor(rgb_patches)
    if rgb.shape[1] != 3:
        raise ValueError(f"rgb_patches must have 3 channels, got shape {tuple(rgb.shape)}")
    weights = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device)
    grey = torch.einsum("nchw,c->nhw", rgb, weights)
    return ncc_descriptor(grey, downsample, sigma, gradient)


def baseline_embed_elevation(
    elevation_patches: np.ndarray | Tensor,
    channel: int = 0,
    downsample: int = 1,
    sigma: float = 0.0,
    gradient: str = "magnitude",
) -> Tensor:
    """Baseline descriptor of elevation patches (N, C, s, s), raw or normalised -> (N, n).

    Gradient magnitude then z-scoring is invariant to any per-patch affine height scaling, so raw
    metres and both ``NormalisationStats`` modes give the same descriptor.
    """
    elev = _as_tensor(elevation_patches)
    if not 0 <= channel < elev.shape[1]:
        raise ValueError(f"channel must be in [0, {elev.shape[1]}), got {channel}")
    return ncc_descriptor(elev[:, channel], downsample, sigma, gradient)


class BaselineModel(nn.Module):
    """The baseline behind the model's interface: ``embed_rgb`` / ``embed_elevation`` on tensors."""

    def __init__(
        self,
        elevation_channel: int = 0,
        downsample: int = 1,
        sigma: float = 0.0,
        gradient: str = "magnitude",
    ) -> None:
        super().__init__()
        if downsample < 1:
            raise ValueError(f"downsample must be an integer >= 1, got {downsample}")
        if sigma < 0 or gradient not in GRADIENTS:
            raise ValueError(
                f"expected sigma >= 0 and gradient in {GRADIENTS}, got {sigma}, {gradient!r}"
            )
        self.elevation_channel = elevation_channel
        self.downsample = downsample
        self.sigma = float(sigma)
        self.gradient = gradient

    def embed_rgb(self, x: Tensor) -> Tensor:
        """(N, 3, s, s) float in [0, 1] -> unit-norm (N, n)."""
        return baseline_embed_rgb(x, self.downsample, self.sigma, self.gradient)

    def embed_elevation(self, x: Tensor) -> Tensor:
        """(N, C, s, s) normalised heights -> unit-norm (N, n)."""
        return baseline_embed_elevation(
            x, self.elevation_channel, self.downsample, self.sigma, self.gradient
        )
