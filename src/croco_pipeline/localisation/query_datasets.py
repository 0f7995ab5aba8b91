"""Kedro datasets of the query maker: the point-cloud source (a path) and the query folder it writes.

The query folder is written whole into a hidden sibling folder and renamed into place, and only
over a folder this dataset made (``QUERIES.json`` marker): a user's own scans are never replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import laspy
from kedro.io import AbstractDataset, DatasetError

from croco_pipeline.data.atomic import atomic_folder
from croco_pipeline.errors import CrocoInputError

MARKER = "QUERIES.json"
INDEX = "index.json"


@dataclass
class QuerySet:
    """Scans to write (relative file, points, truth row), lazily produced, and what made them."""

    scans: Iterable[tuple[str, laspy.LasData, dict[str, Any]]]
    provenance: dict[str, Any] = field(default_factory=dict)


def write_query_folder(data: QuerySet, folder: str | Path) -> list[dict[str, Any]]:
    """Write scans, ``index.json`` (all truth rows) and, per track sub-folder, its own ``index.json``
    (file names relative to it); return the truth rows.

    Raises:
        CrocoInputError: ``folder`` exists, is not empty, and was not made by the query maker.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).is_file():
        raise CrocoInputError(
            f"refusing to write queries into {folder}: it holds files and no {MARKER} (your own "
            "scans?); choose another folder for the query maker"
        )
    with atomic_folder(folder) as tmp:
        rows = []
        for rel, las, row in data.scans:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            las.write(str(tmp / rel))
            rows.append(row)
        (tmp / INDEX).write_text(json.dumps(rows, indent=1))
        tracks: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row.get("track"):
                local = dict(row, file=Path(row["file"]).name)
                tracks.setdefault(str(row["track"]), []).append(local)
        for track, local_rows in tracks.items():
            (tmp / track / INDEX).write_text(json.dumps(local_rows, indent=1))
        (tmp / MARKER).write_text(json.dumps(data.provenance, indent=2, default=str))
    return rows


class _LoadsAsPath:
    """Kedro plumbing of the two datasets below: built from a ``path``, loaded as that ``Path`` once
    the subclass's ``_exists`` holds, else ``CrocoInputError(MISSING)`` (``{path}`` filled in)."""

    MISSING = "{path} not found"

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _exists(self) -> bool:
        raise NotImplementedError

    def load(self) -> Path:
        if not self._exists():
            raise CrocoInputError(self.MISSING.format(path=self._path))
        return self._path

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class QueryFolderDataset(_LoadsAsPath, AbstractDataset[QuerySet, Path]):
    """A folder of LAS/LAZ queries: loads as its ``Path``; saves a ``QuerySet`` atomically."""

    MISSING = (
        "query folder not found: {path} (set it with --params "
        "localize.queries=<folder>, or make one with `kedro run --pipelines=make_queries`)"
    )

    def save(self, data: QuerySet) -> None:
        if not isinstance(data, QuerySet):
            raise DatasetError(f"{self._path}: expected a QuerySet, got {type(data).__name__}")
        write_query_folder(data, self._path)

    def _exists(self) -> bool:
        return self._path.is_dir()


class PointCloudSourceDataset(_LoadsAsPath, AbstractDataset[None, Path]):
    """A LAS/LAZ file or a folder of them (read-only), handed to a node as a ``Path``."""

    MISSING = "point-cloud source not found: {path}"

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._path} is a read-only point-cloud source")

    def _exists(self) -> bool:
        return self._path.exists()
