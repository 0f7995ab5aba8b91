"""The aligned tile stack: RGB and elevation channels on one grid, plus elevation normalisation.

``TileStack`` is the in-memory contract between preprocessing, training, evaluation and localisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from croco_pipeline.data.geo import OnGrid
from croco_pipeline.data.windows import cut_windows
from croco_pipeline.errors import bad_param

NORMALISATIONS = ("global_minmax", "relative")
#: elevation channels whose name starts with this hold LiDAR return intensity, not heights
INTENSITY_PREFIX = "intensity"


def is_intensity(channel: str) -> bool:
    """Whether an elevation channel holds return intensity (normalised apart from the heights)."""
    return channel.lower().startswith(INTENSITY_PREFIX)


@dataclass
class TileStack(OnGrid):
    """One tile on one grid.

    Attributes:
        name: tile id (e.g. ``271460_3290290`` or ``block_r0_c1``).
        rgb: uint8 (3, H, W).
        elevation: float32 (C, H, W), metres, holes filled.
        valid: bool (H, W), False where any elevation channel was nodata before filling or the
            RGB does not cover the pixel.
        crs, transform: the shared grid of ``rgb``, ``elevation`` and ``valid``.
        channels: names of the elevation channels.
        split: ``train``, ``val`` or ``test``.
    """

    name: str
    rgb: np.ndarray
    elevation: np.ndarray
    valid: np.ndarray
    crs: CRS
    transform: Affine
    channels: tuple[str, ...]
    split: str = "train"

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[2])


@dataclass(frozen=True)
class NormalisationStats:
    """Elevation scaling statistics, computed on the training split only.

    ``global_minmax`` (the original code's): one min and one max over all training tiles and channels.
    ``relative``: heights relative to each patch's minimum, divided by ``height_range`` metres.
    Intensity channels (``intensity_channels``, indexes) in either mode: each patch's mean
    subtracted, divided by ``intensity_spread`` (the training tiles' 5-95 % range), plus 0.5, so
    uncalibrated offsets between flight lines or sensors cancel and contrast keeps its scale.
    """

    mode: str
    minimum: float
    maximum: float
    height_range: float
    intensity_channels: tuple[int, ...] = ()
    intensity_spread: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in NORMALISATIONS:
            raise bad_param("preprocess.normalisation", self.mode, f"one of {NORMALISATIONS}")

    def to_dict(self) -> dict[str, float | str | list[int]]:
        return {
            "mode": self.mode,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "height_range": self.height_range,
            "intensity_channels": list(self.intensity_channels),
            "intensity_spread": self.intensity_spread,
        }

    @classmethod
    def from_dict(cls, d: dict) -> NormalisationStats:
        return cls(
            str(d["mode"]),
            float(d["minimum"]),
            float(d["maximum"]),
            float(d["height_range"]),
            tuple(int(i) for i in d.get("intensity_channels", ())),
            float(d.get("intensity_spread", 1.0)),
        )


def normalise_elevation(patches: np.ndarray, stats: NormalisationStats) -> np.ndarray:
    """Scale elevation patches of shape (..., C, h, w) to roughly [0, 1] as float32."""
    x = patches.astype(np.float32, copy=False)
    if not stats.intensity_channels:
        return _normalise_heights(x, stats)
    out = np.empty(x.shape, dtype=np.float32)
    intensity = list(stats.intensity_channels)
    heights = [c for c in range(x.shape[-3]) if c not in stats.intensity_channels]
    if heights:
        out[..., heights, :, :] = _normalise_heights(x[..., heights, :, :], stats)
    values = x[..., intensity, :, :]
    centred = values - values.mean(axis=(-2, -1), keepdims=True)
    out[..., intensity, :, :] = centred / max(stats.intensity_spread, 1e-6) + 0.5
    return out


def _normalise_heights(x: np.ndarray, stats: NormalisationStats) -> np.ndarray:
    if stats.mode == "global_minmax":
        span = max(stats.maximum - stats.minimum, 1e-6)
        return (x - stats.minimum) / span
    floor = x.min(axis=(-3, -2, -1), keepdims=True)
    return (x - floor) / max(stats.height_range, 1e-6)


def normalise_rgb(patches: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3, h, w) to float32 in [0, 1]."""
    return patches.astype(np.float32) / 255.0


def extract_patches(
    stack: TileStack, rows: np.ndarray, cols: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``size`` x ``size`` windows with top-left pixels (rows[i], cols[i]) from a tile.

    Returns:
        (rgb uint8 (N, 3, size, size), elevation float32 (N, C, size, size)), unnormalised.
    """
    rgb = cut_windows(stack.rgb, rows, cols, size)
    elevation = cut_windows(stack.elevation, rows, cols, size)
    return rgb, elevation.astype(np.float32, copy=False)


def crop_stack(stack: TileStack, size_m: float) -> TileStack:
    """The centred ``size_m`` x ``size_m`` window of a tile (the whole tile if it is smaller).

    The transform moves with the window, so map coordinates of every pixel are unchanged.
    """
    h, w = stack.shape
    side = int(round(size_m / stack.gsd))
    if side <= 0:
        raise bad_param("size_m", size_m, "a positive number of metres")
    r0, c0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    r1, c1 = min(h, r0 + side), min(w, c0 + side)
    return TileStack(
        name=stack.name,
        rgb=stack.rgb[:, r0:r1, c0:c1],
        elevation=stack.elevation[:, r0:r1, c0:c1],
        valid=stack.valid[r0:r1, c0:c1],
        crs=stack.crs,
        transform=stack.transform * Affine.translation(c0, r0),
        channels=stack.channels,
        split=stack.split,
    )
