"""Nodes of the ``make_queries`` pipeline (wiring only: the work is in ``localisation.query_maker``)."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from croco_pipeline.data.stack import TileStack
from croco_pipeline.localisation.query_datasets import QuerySet
from croco_pipeline.localisation.query_maker import (
    Area,
    QueryRequest,
    ScanRules,
    make_query_scans,
    open_source,
    restrict,
    split_boxes,
    stack_bounds,
)
from croco_pipeline.localisation.query_params import MakeQueriesParams
from croco_pipeline.pipelines.utils import materialise

log = logging.getLogger(__name__)


def make_queries(
    query_lidar_source: Path,
    tile_splits: dict[str, str],
    aligned_stacks: dict[str, Callable[[], TileStack]],
    make_queries: dict[str, Any],
) -> QuerySet:
    """Plan scans and tracks inside the allowed area; the folder dataset cuts and writes them."""
    p = MakeQueriesParams.from_params(make_queries)
    source = open_source(query_lidar_source, p.assume_crs, p.tiles)
    if p.splits is None:
        boxes: tuple = (source.bounds,)
    else:
        stacks = materialise(aligned_stacks).values()
        bounds = stack_bounds(stacks)
        boxes = split_boxes(tile_splits, bounds, list(p.splits))
        source = restrict(source, boxes)
    rules = ScanRules(p.size_m, p.min_points, p.min_coverage, p.step_m, p.max_turn_deg)
    area = Area(boxes, tuple(p.polygon) if p.polygon else None)
    request = QueryRequest(area, p.n_single, dict(p.tracks), rules, p.seed)
    scans = make_query_scans(source, request, p.coverage_cell_m, p.max_points_in_memory)
    n_tracks = sum(p.tracks.values())
    log.info("make_queries: %d single scans and %d tracks planned", p.n_single, n_tracks)
    provenance = {"source": str(query_lidar_source), "params": p.model_dump(mode="json")}
    return QuerySet(scans, provenance)
