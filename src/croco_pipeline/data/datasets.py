"""Kedro datasets of our own: GeoTIFF rasters, tile stacks, the raw scene source and model weights.

kedro-datasets' rioxarray GeoTIFF dataset shifts the transform on save (see NOTES.md), so geometry goes
through ``croco_pipeline.data.geo`` here, with a round-trip test. Every save is atomic (temporary + rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch
from kedro.io import AbstractDataset, DatasetError

from croco_pipeline.data.atomic import atomic_path
from croco_pipeline.data.geo import GeoRaster, read_geotiff, write_geotiff
from croco_pipeline.data.source import SceneSource
from croco_pipeline.data.stack import TileStack
from croco_pipeline.data.stack_file import read_stack, write_stack

_In = TypeVar("_In")
_Out = TypeVar("_Out")


class LocalFileDataset(AbstractDataset[_In, _Out]):
    """Base of the datasets kept in one local file: ``filepath``, ``metadata``, exists, describe."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class GeoTiffDataset(LocalFileDataset[GeoRaster, GeoRaster]):
    """One GeoTIFF as a ``GeoRaster`` (CRS, transform, nodata, dtype and band names preserved)."""

    def load(self) -> GeoRaster:
        return read_geotiff(self._filepath, require_crs=False)

    def save(self, data: GeoRaster) -> None:
        if not isinstance(data, GeoRaster):
            raise DatasetError(f"{self._filepath}: expected a GeoRaster, got {type(data).__name__}")
        write_geotiff(data, self._filepath)


class TileStackDataset(LocalFileDataset[TileStack, TileStack]):
    """A ``TileStack`` as one float32 GeoTIFF (``croco_pipeline.data.stack_file``): bands red,
    green, blue, <elevation channels>, valid; tile name and split as tags, so it reloads exactly as
    saved, and a stack without them raises ``CrocoInputError``.
    """

    def load(self) -> TileStack:
        return read_stack(self._filepath)

    def save(self, data: TileStack) -> None:
        write_stack(data, self._filepath)


class SceneSourceDataset(AbstractDataset[Any, SceneSource]):
    """The raw scene source, configured in the catalog (``source: dfc2018`` or ``raster_pair``).

    Loading returns a ``SceneSource`` handle (paths only, nothing is read); the ``synthesize`` node
    writes the synthetic release into a DFC2018 folder that is missing or synthetic, and the ingest
    node reads from the handle with windowed reads. The dataset itself never writes.
    """

    def __init__(
        self,
        source: str = "dfc2018",
        dfc2018: dict[str, Any] | None = None,
        raster_pair: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if source not in ("dfc2018", "raster_pair"):
            raise DatasetError(
                f"raw_source: source = {source!r}; expected 'dfc2018' or 'raster_pair'"
            )
        self._source = source
        self._dfc2018 = dfc2018 or {}
        self._raster_pair = raster_pair or {}
        self.metadata = metadata

    def load(self) -> SceneSource:
        if self._source == "dfc2018":
            if "root" not in self._dfc2018:
                raise DatasetError("raw_source: source is dfc2018 but 'dfc2018.root' is not set")
            return SceneSource("dfc2018", root=Path(self._dfc2018["root"]))
        rgb = self._raster_pair.get("rgb")
        elevation = self._raster_pair.get("elevation") or {}
        if not rgb or not elevation:
            raise DatasetError(
                "raw_source: source is raster_pair but 'raster_pair.rgb' or 'raster_pair.elevation' is not set"
            )
        return SceneSource(
            "raster_pair", rgb=Path(rgb), elevation={k: Path(v) for k, v in elevation.items()}
        )

    def save(self, data: Any) -> None:
        raise DatasetError(
            "raw_source is read-only: the synthesize pipeline's node writes the synthetic release "
            "into it, and a user's own data is never written"
        )

    def _exists(self) -> bool:
        src = self.load()
        paths = [src.root] if src.root is not None else [src.rgb, *src.elevation.values()]
        return all(p is not None and p.exists() for p in paths)

    def _describe(self) -> dict[str, Any]:
        return {"source": self._source, "dfc2018": self._dfc2018, "raster_pair": self._raster_pair}


class TorchModelDataset(LocalFileDataset[dict[str, Any], dict[str, Any]]):
    """A trained model as ``{"config": {...}, "state_dict": {...}, ...}``, loadable with weights_only."""

    def load(self) -> dict[str, Any]:
        if not self._filepath.exists():
            raise DatasetError(
                f"model file not found: {self._filepath} (run the train pipeline first)"
            )
        return torch.load(self._filepath, map_location="cpu", weights_only=True)

    def save(self, data: dict[str, Any]) -> None:
        with atomic_path(self._filepath) as tmp:
            torch.save(data, tmp)
