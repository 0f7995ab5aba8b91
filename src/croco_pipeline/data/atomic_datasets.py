"""Kedro's file datasets with atomic saves, and a partitioned dataset that knows when it is complete.

kedro-datasets write JSON, CSV, parquet, text and figures straight into the target file, so a run
killed mid-save leaves a truncated file that the next run loads as if finished. These subclasses
write through ``croco_pipeline.data.atomic.atomic_path`` (a temporary beside the target, renamed
over it when complete). ``CompletePartitionedDataset`` writes a ``_COMPLETE.json`` marker listing its
partitions after the last one is saved and refuses to load a folder without it (an interrupted save).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import DatasetError
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset
from kedro_datasets.partitions import PartitionedDataset
from kedro_datasets.text import TextDataset

from croco_pipeline.data.atomic import atomic_folder, atomic_path, atomic_write_json

COMPLETE_MARKER = "_COMPLETE.json"


class _AtomicSave:
    """Mixin for a kedro file dataset: ``save`` goes to a temporary file renamed over the target.

    Only unversioned local files are redirected; object stores replace whole objects anyway.
    """

    _filepath: PurePosixPath
    _protocol: str

    def save(self, data: Any) -> None:
        parent_save = super().save  # type: ignore[misc]
        inner = getattr(parent_save, "__wrapped__", None)  # skip kedro's wrapper: ours applies
        if self._protocol != "file" or getattr(self, "_version", None) is not None or not inner:
            parent_save(data)
            return
        target = self._filepath
        try:
            with atomic_path(target) as tmp:
                self._filepath = PurePosixPath(tmp)
                inner(self, data)
        finally:
            self._filepath = target
        self._invalidate_cache()  # type: ignore[attr-defined]


class AtomicJSONDataset(_AtomicSave, JSONDataset):
    """``json.JSONDataset`` with an atomic save."""


class AtomicCSVDataset(_AtomicSave, CSVDataset):
    """``pandas.CSVDataset`` with an atomic save."""


class AtomicParquetDataset(_AtomicSave, ParquetDataset):
    """``pandas.ParquetDataset`` with an atomic save."""


class AtomicTextDataset(_AtomicSave, TextDataset):
    """``text.TextDataset`` with an atomic save."""


class AtomicMatplotlibDataset(_AtomicSave, MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` with an atomic save: one figure to a file, or a dict (or
    list) of figures to a folder written beside the target and swapped in whole."""

    def save(self, data: Any) -> None:
        if not isinstance(data, dict | list) or self._protocol != "file":
            super().save(data)
            return
        target = Path(str(self._filepath))
        try:
            with atomic_folder(target) as tmp:
                self._filepath = PurePosixPath(tmp)
                MatplotlibDataset.save.__wrapped__(self, data)  # type: ignore[attr-defined]
        finally:
            self._filepath = PurePosixPath(target)
        self._invalidate_cache()


class CompletePartitionedDataset(PartitionedDataset):
    """A ``PartitionedDataset`` that is either completely written or refused.

    Each partition is saved through its own (atomic) dataset; after the last one a marker file
    ``_COMPLETE.json`` lists every partition. Saving removes the marker first, so a run killed
    part-way leaves a folder without it, which ``load`` refuses with the command that rebuilds it.

    Args:
        written_by: the pipeline that writes this dataset, named in the error (e.g. ``ingest``).
        **kwargs: ``PartitionedDataset``'s arguments; the path must be a local folder.
    """

    def __init__(self, *, written_by: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._written_by = written_by

    @property
    def _marker(self) -> Path:
        return Path(self._filesystem._strip_protocol(self._normalized_path)) / COMPLETE_MARKER

    def save(self, data: dict[str, Any]) -> None:
        self._marker.unlink(missing_ok=True)
        super().save(data)
        atomic_write_json(self._marker, {"partitions": sorted(data)}, indent=1)

    def load(self) -> dict[str, Any]:
        rebuild = (
            f"kedro run --pipelines={self._written_by}" if self._written_by else "its pipeline"
        )
        if not self._marker.exists():
            raise DatasetError(
                f"partitioned dataset at {self._path} is incomplete (no {COMPLETE_MARKER}: the run "
                f"that wrote it was interrupted, or it predates the marker); rebuild it with "
                f"`{rebuild}`"
            )
        partitions = super().load()
        recorded = sorted(json.loads(self._marker.read_text())["partitions"])
        if sorted(partitions) != recorded:
            extra = sorted(set(partitions) - set(recorded))
            lost = sorted(set(recorded) - set(partitions))
            raise DatasetError(
                f"partitioned dataset at {self._path} does not match its {COMPLETE_MARKER} "
                f"(unexpected {extra[:5]}, missing {lost[:5]}); rebuild it with `{rebuild}`"
            )
        return partitions

    def _exists(self) -> bool:
        return self._marker.exists() and super()._exists()
