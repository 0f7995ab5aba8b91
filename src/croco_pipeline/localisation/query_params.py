"""Checked parameters of the ``make_queries`` and ``localize_eval`` pipelines (unknown keys refused)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from croco_pipeline.params import StrictParams


class MakeQueriesParams(StrictParams):
    """``make_queries``: how scans and tracks with known truth are cut from a point cloud."""

    section = "make_queries"

    seed: int = 0
    size_m: float = Field(64.0, gt=0, description="side of a square scan")
    n_single: int = Field(200, ge=0, description="single scans")
    tracks: dict[int, int] = Field(
        default_factory=lambda: {4: 50}, description="{scans per track: number of tracks}"
    )
    step_m: float | None = Field(None, gt=0, description="between a track's scans; null: size / 2")
    max_turn_deg: float = Field(30.0, ge=0, le=180)
    min_points: int = Field(1000, ge=1, description="scans with fewer points are refused")
    min_coverage: float = Field(0.9, ge=0, le=1, description="share of coverage cells with points")
    coverage_cell_m: float = Field(2.0, gt=0)
    splits: list[Literal["train", "val", "test"]] | None = Field(
        None, description="only inside these splits' tiles or blocks (tile_splits); null: anywhere"
    )
    tiles: list[str] | None = Field(None, description="only these source files (names w/o suffix)")
    polygon: list[tuple[float, float]] | None = Field(None, description="scan corners inside it")
    assume_crs: str | None = Field(None, description="CRS of a source without one")
    max_points_in_memory: int = Field(4_000_000, ge=100_000)


class LocalizeEvalParams(StrictParams):
    """``localize_eval``: scoring localisations against truth, beside the classical baseline."""

    section = "localize_eval"

    wrong_m: float = Field(8.0, gt=0, description="a fix further than this is wrong (confidence)")
    flag_target: float = Field(0.9, ge=0, le=1, description="share of wrong fixes to flag")
    keep_target: float = Field(0.9, ge=0, le=1, description="share of right fixes to keep")
    baseline_whole_scan: bool = True
    baseline_tiled: bool = True
    baseline_min_overlap: float = Field(0.5, ge=0, le=1)
    flat_spread_m: float = Field(
        1.0, gt=0, description="scans with a 10-90 % height spread up to this are reported as flat"
    )
