"""Provenance of ingested data: what the ingest manifest records and what later stages check.

A later stage that finds ingested data from another source (another environment, an edited catalog,
other channels) says which dataset is stale and the command that rebuilds it, instead of failing deep
inside alignment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from croco_pipeline.data.source import SceneSource
from croco_pipeline.errors import CrocoInputError

REBUILD_INGEST = "kedro run --pipelines=ingest,preprocess"


def describe_source(source: SceneSource) -> dict[str, Any]:
    """The source configuration as plain JSON: the kind and every path read."""
    if source.kind == "dfc2018":
        return {"kind": source.kind, "root": str(source.root), "synthetic": source.is_synthetic}
    return {
        "kind": source.kind,
        "rgb": str(source.rgb),
        "elevation": {name: str(path) for name, path in sorted(source.elevation.items())},
    }


def ingest_manifest(
    source: SceneSource, tiles: list[str], channels: Iterable[str], gsd: float
) -> dict[str, Any]:
    """The ``ingest_manifest`` dataset: which scene was ingested, from where, with what channels."""
    return {
        "kind": source.kind,
        "tiles": list(tiles),
        "channels": list(channels),
        "gsd": float(gsd),
        "source": describe_source(source),
    }


def _stale(reason: str, manifest: dict[str, Any]) -> CrocoInputError:
    where = manifest.get("source", {"kind": manifest.get("kind", "unknown")})
    return CrocoInputError(
        f"dataset 'ingested_rasters' is stale or from another source: {reason} (ingested from "
        f"{where}); rebuild it with `{REBUILD_INGEST}` in this environment (add --env <name> "
        "when it is not the default one)"
    )


def check_ingested(
    manifest: dict[str, Any], raster_keys: Iterable[str], channels: Iterable[str]
) -> None:
    """Raise when the ingested rasters cannot serve ``channels`` for every tile of ``manifest``.

    Args:
        manifest: the ``ingest_manifest`` dataset.
        raster_keys: partition keys of ``ingested_rasters`` (``<tile>/rgb``, ``<tile>/<channel>``).
        channels: the elevation channels this run wants (``preprocess.channels``).

    Raises:
        CrocoInputError: channels the scene was not ingested with, or missing partitions; the
            message names the stale dataset, its source and the command that rebuilds it.
    """
    wanted = list(channels)
    ingested = list(manifest.get("channels", []))
    absent = [c for c in wanted if c not in ingested]
    if absent:
        raise _stale(
            f"parameter 'preprocess.channels' = {wanted} asks for {absent}, but the scene was "
            f"ingested with channels {ingested}",
            manifest,
        )
    keys = set(raster_keys)
    missing = [
        f"{tile}/{name}"
        for tile in manifest.get("tiles", [])
        for name in ("rgb", *wanted)
        if f"{tile}/{name}" not in keys
    ]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise _stale(f"partitions listed by 'ingest_manifest' are missing: {shown}", manifest)
