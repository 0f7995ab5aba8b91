"""Optional exclusion masks: areas a user rules out explicitly (water, a land-cover class).

The ``exclusion_mask`` catalog entry names a raster in any CRS: either a mask (non-zero = excluded)
or a class raster with the class values to exclude. Excluded pixels become invalid in the aligned
stacks, so patch selection and the coverage checks treat them like nodata.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError
from rasterio.enums import Resampling
from rasterio.warp import reproject

from croco_pipeline.data.geo import GeoRaster, read_geotiff
from croco_pipeline.data.stack import TileStack


@dataclass(frozen=True)
class ExclusionMask:
    """A raster and the values that exclude a pixel (``None``: every non-zero value)."""

    raster: GeoRaster
    classes: tuple[float, ...] | None = None

    def excluded(self) -> np.ndarray:
        """uint8 (rows, cols) on the mask's own grid: 1 = excluded."""
        band = self.raster.data[0]
        hit = np.isin(band, self.classes) if self.classes is not None else band != 0
        if self.raster.nodata is not None and self.classes is None:
            hit &= band != self.raster.nodata
        return hit.astype(np.uint8)

    def on_grid(self, stack: TileStack) -> np.ndarray:
        """Bool (rows, cols) on ``stack``'s grid: True where excluded (nearest neighbour).

        Outside the mask's footprint nothing is excluded.
        """
        out = np.zeros(stack.shape, dtype=np.uint8)
        reproject(
            self.excluded(),
            out,
            src_transform=self.raster.transform,
            src_crs=self.raster.crs,
            dst_transform=stack.transform,
            dst_crs=stack.crs,
            resampling=Resampling.nearest,
        )
        return out.astype(bool)


def apply_exclusion(stack: TileStack, mask: ExclusionMask | None) -> TileStack:
    """``stack`` with excluded pixels marked invalid (unchanged when there is no mask)."""
    if mask is None:
        return stack
    return dataclasses.replace(stack, valid=stack.valid & ~mask.on_grid(stack))


class ExclusionMaskDataset(AbstractDataset[None, ExclusionMask | None]):
    """The optional ``exclusion_mask``: ``filepath: null`` (the default) loads ``None``.

    Args:
        filepath: a single-band raster (GeoTIFF or anything GDAL reads) with a CRS, or null.
        classes: values that exclude a pixel (a class raster); null = every non-zero value.
    """

    def __init__(
        self,
        filepath: str | None = None,
        classes: list[float] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath) if filepath else None
        self._classes = tuple(float(c) for c in classes) if classes is not None else None
        self.metadata = metadata

    def load(self) -> ExclusionMask | None:
        if self._filepath is None:
            return None
        raster = read_geotiff(self._filepath)  # a clear CrocoInputError when missing or CRS-less
        return ExclusionMask(raster, self._classes)

    def save(self, data: None) -> None:
        raise DatasetError("exclusion_mask is an input: it is read, never written")

    def _exists(self) -> bool:
        return self._filepath is None or self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "classes": self._classes}
