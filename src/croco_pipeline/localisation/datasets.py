"""Kedro datasets of the localisation pipelines: the map folder and the optional ortho GeoTIFF
(the query folder is ``query_datasets.QueryFolderDataset``).

The map folder (``index.faiss``, ``centres.parquet``, ``metadata.json``) is written whole into a
temporary sibling folder and renamed into place, so a failed save never leaves a half map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from croco_pipeline.data.atomic import atomic_folder
from croco_pipeline.errors import CrocoInputError
from croco_pipeline.evaluation.retrieval import MapIndex
from croco_pipeline.localisation.mapping import CENTRE_COLUMNS, HUBNESS_COLUMN, LocalisationMap
from croco_pipeline.model import distributed

MAP_FILES = ("index.faiss", "centres.parquet", "metadata.json")


def write_map(lmap: LocalisationMap, folder: str | Path) -> None:
    """Write the map folder atomically (a temporary folder renamed over the old one)."""
    with atomic_folder(folder) as tmp:
        (tmp / "index.faiss").write_bytes(lmap.index.to_bytes())
        lmap.centres.to_parquet(tmp / "centres.parquet", index=False)
        (tmp / "metadata.json").write_text(json.dumps(lmap.metadata, indent=2))


def read_map(folder: str | Path, nprobe: int | None = None) -> LocalisationMap:
    """Read a map folder written by ``write_map``; a clear error names a missing or broken part."""
    folder = Path(folder)
    missing = [name for name in MAP_FILES if not (folder / name).is_file()]
    if missing:
        raise CrocoInputError(
            f"map {folder} is missing {missing}; build it with `kedro run --pipelines=build_map`"
        )
    metadata = json.loads((folder / "metadata.json").read_text())
    centres = pd.read_parquet(folder / "centres.parquet")
    probe = nprobe or int(metadata.get("nprobe", 32))
    index = MapIndex.from_bytes((folder / "index.faiss").read_bytes(), nprobe=probe)
    columns = list(centres.columns)
    if len(index) != len(centres) or columns not in (
        list(CENTRE_COLUMNS),
        [*CENTRE_COLUMNS, HUBNESS_COLUMN],
    ):
        raise CrocoInputError(
            f"map {folder} is inconsistent: {len(index)} vectors, {len(centres)} centres"
        )
    return LocalisationMap(index, centres, metadata, source=str(folder))


class LocalisationMapDataset(AbstractDataset[LocalisationMap, LocalisationMap]):
    """A ``LocalisationMap`` as a folder; only rank 0 writes it under ``torchrun``."""

    def __init__(
        self, path: str, nprobe: int | None = None, metadata: dict[str, Any] | None = None
    ):
        self._path = Path(path)
        self._nprobe = nprobe
        self.metadata = metadata

    def load(self) -> LocalisationMap:
        return read_map(self._path, self._nprobe)

    def save(self, data: LocalisationMap) -> None:
        if not isinstance(data, LocalisationMap):
            raise DatasetError(
                f"{self._path}: expected a LocalisationMap, got {type(data).__name__}"
            )
        if distributed.rank() == 0:
            write_map(data, self._path)

    def _exists(self) -> bool:
        return all((self._path / name).is_file() for name in MAP_FILES)

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class OptionalRasterDataset(AbstractDataset[None, Path | None]):
    """An optional raster path (the map's ortho GeoTIFF): ``None`` when ``filepath`` is empty."""

    def __init__(self, filepath: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath) if filepath else None  # YAML null (kedro makes "" the project)
        self.metadata = metadata

    def load(self) -> Path | None:
        if self._path is not None and not self._path.is_file():
            raise CrocoInputError(f"ortho raster not found: {self._path}")
        return self._path

    def save(self, data: None) -> None:
        raise DatasetError("the ortho raster is a read-only input")

    def _exists(self) -> bool:
        return self._path is None or self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}
