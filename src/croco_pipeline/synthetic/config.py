"""Configuration of the synthetic DFC2018-shaped release (``SyntheticConfig``) and its validation.

Every field has a default; ``from_params`` builds one from a Kedro ``params:`` dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from croco_pipeline.data.dfc2018 import MOSAIC_GSD
from croco_pipeline.errors import bad_param

DFC_ORIGIN_X = 271460  # lower-left corner of the real release's west-most tiles
DFC_ORIGIN_Y = 3289689  # ... and of its south row


@dataclass(frozen=True)
class SyntheticConfig:
    """How to build the synthetic release. Lengths in metres, angles in degrees.

    Tile sizes must be whole metres so that tile names (lower-left corners) are exact integers.
    ``rgb_gsd`` must divide the 0.5 m LiDAR grid into a whole number of photo pixels.
    """

    seed: int = 2018
    rgb_gsd: float = 0.25
    tile_width_m: float = 596.0
    tile_height_m: float = 601.0
    n_rows: int = 2
    n_cols: int = 7
    write_las: bool = False
    las_points_per_m2: float = 2.0
    sun_azimuth_deg: float = 135.0
    sun_elevation_deg: float = 45.0
    flight_height_m: float = 3000.0  # 30 m roof at 300 m from nadir leans 3 m
    misregistration_px_min: float = 1.0  # photo vs LiDAR offset, in 0.5 m pixels
    misregistration_px_max: float = 2.0
    car_occupancy: float = 0.55  # chance a parking stall holds a car at either acquisition
    car_persistence: float = 0.35  # chance a car seen by the LiDAR is still parked in the photo
    foliage_change_rate: float = 0.3  # share of trees that look different (season) in the photo
    dropouts_per_ha: float = 1.5  # small LiDAR nodata specks in the DSM
    ground_level_m: float = -22.0  # ellipsoidal height of the ground, like the real release
    terrain_relief_m: float = 2.5
    sensor_noise_dn: float = 2.5
    blur_px: float = 0.6

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def scale(self) -> int:
        """Photo pixels per 0.5 m LiDAR pixel, along one axis."""
        return int(round(MOSAIC_GSD / self.rgb_gsd))

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> SyntheticConfig:
        """Build from a ``synthetic`` params dict; unknown keys and bad values raise CrocoConfigError."""
        params = dict(params or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            if key not in fields:
                raise bad_param(f"synthetic.{key}", value, f"one of {sorted(fields)}")
            default = fields[key].default
            try:
                if isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise TypeError
                    kwargs[key] = value
                elif isinstance(default, int):
                    if isinstance(value, bool) or float(value) != int(value):
                        raise TypeError
                    kwargs[key] = int(value)
                else:
                    kwargs[key] = float(value)
            except (TypeError, ValueError):
                kind = type(default).__name__
                raise bad_param(f"synthetic.{key}", value, f"a {kind}") from None
        return cls(**kwargs)


def _validate(cfg: SyntheticConfig) -> None:
    """Raise CrocoConfigError naming the first invalid field."""

    def need(ok: bool, name: str, expected: str) -> None:
        if not ok:
            raise bad_param(f"synthetic.{name}", getattr(cfg, name), expected)

    need(0 < cfg.rgb_gsd <= MOSAIC_GSD, "rgb_gsd", "a pixel size in metres in (0, 0.5]")
    ratio = MOSAIC_GSD / cfg.rgb_gsd if cfg.rgb_gsd > 0 else 0.0
    need(
        abs(ratio - round(ratio)) < 1e-6,
        "rgb_gsd",
        "0.5 m divided by a whole number (0.25, 0.1, 0.05...)",
    )
    for name in ("tile_width_m", "tile_height_m"):
        value = getattr(cfg, name)
        need(value >= 8 and float(value).is_integer(), name, "whole metres, at least 8")
    need(cfg.n_rows >= 1, "n_rows", "at least 1")
    need(cfg.n_cols >= 1, "n_cols", "at least 1")
    need(cfg.las_points_per_m2 > 0, "las_points_per_m2", "a positive density")
    need(0 < cfg.sun_elevation_deg <= 90, "sun_elevation_deg", "an angle in (0, 90]")
    need(cfg.flight_height_m >= 100, "flight_height_m", "at least 100 m")
    need(cfg.misregistration_px_min >= 0, "misregistration_px_min", ">= 0")
    need(
        cfg.misregistration_px_max >= cfg.misregistration_px_min,
        "misregistration_px_max",
        ">= misregistration_px_min",
    )
    for name in ("car_occupancy", "car_persistence", "foliage_change_rate"):
        need(0 <= getattr(cfg, name) <= 1, name, "a probability in [0, 1]")
    need(cfg.dropouts_per_ha >= 0, "dropouts_per_ha", ">= 0")
    need(cfg.terrain_relief_m >= 0, "terrain_relief_m", ">= 0")
    need(cfg.sensor_noise_dn >= 0, "sensor_noise_dn", ">= 0")
    need(cfg.blur_px >= 0, "blur_px", ">= 0")
