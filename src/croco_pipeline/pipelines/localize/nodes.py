"""Nodes of the ``localize`` pipeline (wiring only: the work is in ``croco_pipeline.localisation``)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from rasterio.crs import CRS

from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.localisation.mapping import LocalisationMap, check_map, check_ortho, map_spec
from croco_pipeline.localisation.ortho import open_ortho, overview
from croco_pipeline.localisation.outputs import footprints_geojson, overview_figure, results_table
from croco_pipeline.localisation.params import LocalizeParams
from croco_pipeline.localisation.service import Context, localise_folder
from croco_pipeline.model.runtime import load_model, resolve_device
from croco_pipeline.pipelines.utils import materialise


def localize_queries(
    croco_model: dict[str, Any],
    localisation_map: LocalisationMap,
    aligned_stacks: dict[str, Callable[[], TileStack]],
    map_ortho: Path | None,
    normalisation_stats: dict[str, Any],
    localisation_queries: Path,
    preprocess: dict[str, Any],
    localize: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, GeoRaster]]:
    """Locate every scan and track of the query folder; one row per scan, a heatmap per query."""
    params = LocalizeParams.from_params(localize)
    meta = localisation_map.metadata
    spec = map_spec(croco_model, preprocess, normalisation_stats, float(meta["stride_m"]))
    check_map(localisation_map, spec)
    device = resolve_device(params.device, "localize.device")
    stacks = lambda: list(materialise(aligned_stacks).values())  # noqa: E731
    source = open_ortho(map_ortho, stacks, spec.gsd, meta["crs"], params.ortho_in_memory_max_px)
    check_ortho(localisation_map, source)
    ctx = Context(
        load_model(croco_model).to(device),
        localisation_map,
        source,
        NormalisationStats.from_dict(normalisation_stats),
        params,
        device,
    )
    rows, heatmaps = localise_folder(ctx, localisation_queries)
    return results_table(rows), heatmaps


def localisation_figures(
    localisations: pd.DataFrame,
    localisation_map: LocalisationMap,
    aligned_stacks: dict[str, Callable[[], TileStack]],
    map_ortho: Path | None,
) -> tuple[dict[str, Any], Figure]:
    """The GeoJSON of estimated footprints and the overview of every query on the ortho."""
    meta = localisation_map.metadata
    crs = CRS.from_wkt(meta["crs"]).to_string()
    stacks = lambda: list(materialise(aligned_stacks).values())  # noqa: E731
    source = open_ortho(map_ortho, stacks, float(meta["gsd"]), meta["crs"])
    image, transform = overview(source)
    return footprints_geojson(localisations, crs), overview_figure(image, transform, localisations)
