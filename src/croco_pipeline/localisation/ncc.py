"""Masked normalised cross-correlation (NCC) of gradient magnitudes: a scan's height gradients
against a map's grey gradients, at every offset at once by FFT (three correlations per template,
the map's spectra cached). The gradient is ``evaluation.baseline.gradient_magnitude`` (the
patch-retrieval baseline's). Used by the whole-scan baseline, the gradient refinement and the
classical check of candidate fixes.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
import torch

from croco_pipeline.evaluation.baseline import LUMA, gradient_magnitude

EPS = 1e-9


def gradient_image(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of one (H, W) image -> float64 (H - 2, W - 2) (border dropped)."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    return gradient_magnitude(t)[0].numpy().astype(np.float64)


def gradient_valid(valid: np.ndarray) -> np.ndarray:
    """Where a (H - 2, W - 2) gradient is valid: the cell and its four neighbours are."""
    v = np.asarray(valid, dtype=bool)
    return v[1:-1, 1:-1] & v[:-2, 1:-1] & v[2:, 1:-1] & v[1:-1, :-2] & v[1:-1, 2:]


def grey(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) RGB -> (H, W) luma, float64."""
    return np.einsum("chw,c->hw", np.asarray(rgb, dtype=np.float64), np.asarray(LUMA))


class GradientNccMap:
    """A map's grey gradient, ready for masked NCC of any template at every offset.

    ``ncc(template, mask)[i, j]`` is the Pearson correlation, over the template's masked cells, of
    the template and the map window whose top-left is (i, j) (offsets where the template lies wholly
    inside the map); offsets where less than ``min_overlap`` of those cells fall on valid map are -1.
    """

    def __init__(self, rgb: np.ndarray, valid: np.ndarray, min_overlap: float = 0.5) -> None:
        self.image = gradient_image(grey(rgb))
        self.valid = gradient_valid(valid)
        self.image[~self.valid] = 0.0
        self.min_overlap = min_overlap
        self._spectra: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}

    def _map_spectra(self, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
        if shape not in self._spectra:
            self._spectra.clear()  # one padded size at a time bounds memory
            self._spectra[shape] = tuple(
                sfft.rfft2(a, shape) for a in (self.image, self.image**2, self.valid.astype(float))
            )
        return self._spectra[shape]

    def ncc(self, template: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Masked NCC surface, shape (H - h + 1, W - w + 1) of the map and template gradients."""
        h, w = template.shape
        big_h, big_w = self.image.shape
        if h > big_h or w > big_w:
            raise ValueError(f"template {template.shape} larger than the map {self.image.shape}")
        m = np.asarray(mask, dtype=float)
        n = m.sum()
        if n < 2:
            return np.full((big_h - h + 1, big_w - w + 1), -1.0)
        t = np.where(m > 0, template - (template * m).sum() / n, 0.0)
        t_norm = float(np.sqrt((t * t).sum()))
        # pad to a fast size: rounding up to a bucket keeps the cached map spectra reusable
        shape = tuple(
            sfft.next_fast_len(s + 64 * -(-k // 64))
            for s, k in zip((big_h, big_w), (h, w), strict=True)
        )
        f_img, f_sq, f_valid = self._map_spectra(shape)  # type: ignore[arg-type]

        def corr(spectrum: np.ndarray, kernel: np.ndarray) -> np.ndarray:
            full = sfft.irfft2(spectrum * sfft.rfft2(kernel[::-1, ::-1], shape), shape)
            return full[h - 1 : big_h, w - 1 : big_w]

        num, s1, s2 = corr(f_img, t), corr(f_img, m), corr(f_sq, m)
        var = np.maximum(s2 - s1 * s1 / n, 0.0)
        out = num / np.maximum(np.sqrt(var) * t_norm, EPS)
        overlap = corr(f_valid, m) / n
        out[(overlap < self.min_overlap) | (var <= EPS * n) | (t_norm <= EPS)] = -1.0
        return np.clip(out, -1.0, 1.0)
