"""Kedro datasets of our own: GeoTIFF rasters, tile stacks, the raw scene source and model weights.

kedro-datasets' rioxarray GeoTIFF dataset shifts the transform on save (see NOTES.md), so geometry goes
through ``croco_pipeline.data.geo`` here, with a round-trip test. Every save is atomic (temporary + rename).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from kedro.io import AbstractDataset, DatasetError

from croco_pipeline.data.geo import GeoRaster, read_geotiff, write_geotiff
from croco_pipeline.data.stack import TileStack

log = logging.getLogger(__name__)


class GeoTiffDataset(AbstractDataset[GeoRaster, GeoRaster]):
    """One GeoTIFF as a ``GeoRaster`` (CRS, transform, nodata, dtype and band names preserved)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> GeoRaster:
        return read_geotiff(self._filepath, require_crs=False)

    def save(self, data: GeoRaster) -> None:
        if not isinstance(data, GeoRaster):
            raise DatasetError(f"{self._filepath}: expected a GeoRaster, got {type(data).__name__}")
        write_geotiff(data, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


VALID_BAND = "valid"
RGB_BANDS = ("red", "green", "blue")


class TileStackDataset(AbstractDataset[TileStack, TileStack]):
    """A ``TileStack`` as one float32 GeoTIFF: bands red, green, blue, <elevation channels>, valid.

    The tile name and split travel as GeoTIFF tags, so a stack reloads exactly as saved.
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> TileStack:
        raster = read_geotiff(self._filepath)
        with rasterio.open(self._filepath) as src:
            tags = src.tags()
        names = raster.band_names
        if names[:3] != RGB_BANDS or names[-1] != VALID_BAND:
            raise DatasetError(f"{self._filepath} is not a tile stack (bands {names})")
        data = raster.data
        return TileStack(
            name=tags.get("tile", self._filepath.stem),
            rgb=np.clip(np.rint(data[:3]), 0, 255).astype(np.uint8),
            elevation=np.ascontiguousarray(data[3:-1], dtype=np.float32),
            valid=data[-1] > 0.5,
            crs=raster.crs,
            transform=raster.transform,
            channels=tuple(names[3:-1]),
            split=tags.get("split", "train"),
        )

    def save(self, data: TileStack) -> None:
        bands = np.concatenate(
            [
                data.rgb.astype(np.float32),
                data.elevation.astype(np.float32),
                data.valid[None].astype(np.float32),
            ]
        )
        raster = GeoRaster(
            bands, data.crs, data.transform, None, RGB_BANDS + tuple(data.channels) + (VALID_BAND,)
        )
        write_geotiff(raster, self._filepath)
        with rasterio.open(self._filepath, "r+") as dst:
            dst.update_tags(tile=data.name, split=data.split)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


@dataclass(frozen=True)
class SceneSource:
    """Where the raw data lies: a DFC2018 Phase 2 folder or one RGB raster + named elevation rasters."""

    kind: str
    root: Path | None = None
    rgb: Path | None = None
    elevation: dict[str, Path] = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        return self.root is not None and (self.root / "SYNTHETIC.json").exists()


class SceneSourceDataset(AbstractDataset[Any, SceneSource]):
    """The raw scene source, configured in the catalog (``source: dfc2018`` or ``raster_pair``).

    Loading returns a ``SceneSource`` handle; the ingest pipeline reads from it with windowed reads.
    Saving takes a synthetic-release config from the ``synthesize`` pipeline and writes the release
    only where the source is a DFC2018 folder that is missing or synthetic with another config;
    a real release or a user's raster pair is never touched.
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
        from croco_pipeline.synthetic import SyntheticConfig, write_synthetic_release
        from croco_pipeline.synthetic.release import release_matches

        if not isinstance(data, SyntheticConfig):
            raise DatasetError(
                f"raw_source: can only save a SyntheticConfig, got {type(data).__name__}"
            )
        source = self.load()
        if source.kind != "dfc2018" or source.root is None:
            log.info("raw_source is a user's raster pair: no synthetic release written")
            return
        root = source.root
        marker = root / "SYNTHETIC.json"
        if root.exists() and not marker.exists():
            log.warning("raw_source %s holds a release that is not synthetic: left untouched", root)
            return
        if release_matches(root, data):
            log.info("synthetic release at %s already matches the config: reused", root)
            return
        log.info("writing the synthetic DFC2018 release to %s", root)
        write_synthetic_release(root, data, progress=log.info)

    def _exists(self) -> bool:
        src = self.load()
        paths = [src.root] if src.root is not None else [src.rgb, *src.elevation.values()]
        return all(p is not None and p.exists() for p in paths)

    def _describe(self) -> dict[str, Any]:
        return {"source": self._source, "dfc2018": self._dfc2018, "raster_pair": self._raster_pair}


class TorchModelDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """A trained model as ``{"config": {...}, "state_dict": {...}, ...}``, loadable with weights_only."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if not self._filepath.exists():
            raise DatasetError(
                f"model file not found: {self._filepath} (run the train pipeline first)"
            )
        return torch.load(self._filepath, map_location="cpu", weights_only=True)

    def save(self, data: dict[str, Any]) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self._filepath.name}.", dir=self._filepath.parent)
        os.close(fd)
        try:
            torch.save(data, tmp)
            os.replace(tmp, self._filepath)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
