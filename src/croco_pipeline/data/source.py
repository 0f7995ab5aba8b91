"""Where a scene's raw data lies: a DFC2018 Phase 2 folder, or one RGB raster + named elevation rasters.

A plain handle (paths only): the ``raw_source`` catalog entry loads one, the ``synthesize`` node
fills a DFC2018 folder with the synthetic release, and the ``ingest`` node reads from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SYNTHETIC_MARKER = "SYNTHETIC.json"


@dataclass(frozen=True)
class SceneSource:
    """``kind`` is ``dfc2018`` (``root`` set) or ``raster_pair`` (``rgb`` and ``elevation`` set)."""

    kind: str
    root: Path | None = None
    rgb: Path | None = None
    elevation: dict[str, Path] = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        """Whether ``root`` holds a synthetic release (it carries the ``SYNTHETIC.json`` marker)."""
        return self.root is not None and (self.root / SYNTHETIC_MARKER).exists()
