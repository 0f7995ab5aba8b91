"""Configuration of the synthetic DFC2018-shaped release (``SyntheticConfig``): the ``synthetic``
parameter group, checked by pydantic (unknown keys and bad values name ``synthetic.<key>``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from croco_pipeline.data.dfc2018 import MOSAIC_GSD
from croco_pipeline.params import StrictParams

DFC_ORIGIN_X = 271460  # lower-left corner of the real release's west-most tiles
DFC_ORIGIN_Y = 3289689  # ... and of its south row


class SyntheticConfig(StrictParams):
    """How to build the synthetic release. Lengths in metres, angles in degrees.

    Tile sizes must be whole metres so that tile names (lower-left corners) are exact integers.
    ``rgb_gsd`` must divide the 0.5 m LiDAR grid into a whole number of photo pixels.
    """

    section: ClassVar[str] = "synthetic"

    seed: int = 2018
    rgb_gsd: float = Field(0.25, gt=0.0, le=MOSAIC_GSD)
    tile_width_m: float = Field(596.0, ge=8.0)
    tile_height_m: float = Field(601.0, ge=8.0)
    n_rows: int = Field(2, ge=1)
    n_cols: int = Field(7, ge=1)
    write_las: bool = False
    las_points_per_m2: float = Field(2.0, gt=0.0)
    sun_azimuth_deg: float = 135.0
    sun_elevation_deg: float = Field(45.0, gt=0.0, le=90.0)
    flight_height_m: float = Field(3000.0, ge=100.0)  # 30 m roof at 300 m from nadir leans 3 m
    misregistration_px_min: float = Field(1.0, ge=0.0)  # photo vs LiDAR offset, 0.5 m pixels
    misregistration_px_max: float = 2.0
    car_occupancy: float = Field(0.55, ge=0.0, le=1.0)  # chance a stall holds a car at either time
    car_persistence: float = Field(0.35, ge=0.0, le=1.0)  # chance a LiDAR-time car is in the photo
    foliage_change_rate: float = Field(0.3, ge=0.0, le=1.0)  # share of trees that look different
    dropouts_per_ha: float = Field(1.5, ge=0.0)  # small LiDAR nodata specks in the DSM
    ground_level_m: float = -22.0  # ellipsoidal height of the ground, like the real release
    terrain_relief_m: float = Field(2.5, ge=0.0)
    sensor_noise_dn: float = Field(2.5, ge=0.0)
    blur_px: float = Field(0.6, ge=0.0)

    @field_validator("rgb_gsd")
    @classmethod
    def _divides_the_lidar_grid(cls, value: float) -> float:
        ratio = MOSAIC_GSD / value
        if abs(ratio - round(ratio)) >= 1e-6:
            raise ValueError("expected 0.5 m divided by a whole number (0.25, 0.1, 0.05...)")
        return value

    @field_validator("tile_width_m", "tile_height_m")
    @classmethod
    def _whole_metres(cls, value: float) -> float:
        if not float(value).is_integer():
            raise ValueError("expected whole metres, at least 8")
        return value

    @field_validator("misregistration_px_max")
    @classmethod
    def _max_not_below_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("misregistration_px_min", 0.0)
        if value < low:
            raise ValueError(f"expected >= misregistration_px_min ({low})")
        return value

    @property
    def scale(self) -> int:
        """Photo pixels per 0.5 m LiDAR pixel, along one axis."""
        return int(round(MOSAIC_GSD / self.rgb_gsd))
