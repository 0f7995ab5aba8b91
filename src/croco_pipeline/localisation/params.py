"""Checked parameters of the ``build_map`` and ``localize`` pipelines (unknown keys refused, errors
naming the key path, as every parameter group of the project: ``croco_pipeline.params``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from croco_pipeline.params import StrictParams


class BuildMapParams(StrictParams):
    """``build_map``: how the orthophoto is embedded into a searchable map."""

    section = "build_map"

    stride_m: float | None = Field(
        default=None, gt=0, description="null: a quarter of the patch size"
    )
    min_valid_fraction: float = Field(default=0.5, ge=0, le=1)
    batch_size: int = Field(default=256, ge=1)
    block_px: int = Field(default=1024, ge=16, description="ortho block read at a time (streaming)")
    approximate_above: int = Field(
        default=200_000, ge=1, description="patches above which IVF is used"
    )
    nlist: int | None = Field(
        default=None, ge=1, description="IVF cells; null: about 4 * sqrt(patches)"
    )
    nprobe: int = Field(default=32, ge=1)
    crs: str | None = Field(default=None, description="map CRS for an ortho GeoTIFF; null: its own")
    hubness_k: int = Field(
        default=10, ge=0, description="bank neighbours of each patch's hubness; 0: none computed"
    )
    hubness_bank: int = Field(
        default=5_000, ge=1, description="most training-tile elevation windows in the bank"
    )
    device: str = "auto"
    progress: bool = True


class RefineParams(StrictParams):
    """Precision step around the winning vote cell."""

    section = "localize.refine"

    method: Literal["embedding", "gradient_ncc", "none"] = "embedding"
    radius_m: float | None = Field(default=None, gt=0, description="null: one map stride")
    max_tiles: int | None = Field(
        default=None, ge=1, description="query tiles correlated at each shift (null: all)"
    )


class RerankParams(StrictParams):
    """The top vote peaks checked by the classical gradient correlation before refinement."""

    section = "localize.rerank"

    candidates: int = Field(default=5, ge=1, description="vote peaks checked (the top ones)")
    weight: float = Field(
        default=0.0, ge=0, description="peak score = support / best support + weight * NCC"
    )
    refine_candidates: int = Field(default=0, ge=0, description="vote peaks refined before ranking")
    refine_weight: float = Field(default=0.0, ge=0, description="+ this x refinement score")


class ConfidenceParams(StrictParams):
    """Logistic mapping of the confidence features to [0, 1] (fit on validation data)."""

    section = "localize.confidence"

    bias: float = -3.0
    weights: dict[str, float] = Field(
        default_factory=lambda: {"peak_margin": 3.0, "vote_share": 6.0, "refine_score": 0.0}
    )


class LocalizeParams(StrictParams):
    """``localize``: how queries are read, rasterised, searched, fused and refined."""

    section = "localize"

    queries: str | None = Field(
        default=None, description="read by the catalog (localisation_queries)"
    )
    native_gsd_m: float = Field(
        default=0.5, gt=0, description="GSD of the source DSM before averaging"
    )
    assume_crs: str | None = None
    channel_products: dict[str, Literal["surface", "ground", "ground_building"]] = Field(
        default_factory=dict
    )
    exclude: list[str] = Field(default_factory=list, description="file name globs to skip")
    max_points: int = Field(default=5_000_000, ge=1, description="clouds above are skipped")
    truth: Literal["index", "coords"] = Field(
        default="index", description="index: index.json beside the scans; coords: their own coords"
    )
    displace_km: float | None = Field(
        default=None, gt=0, description="move clouds 1..this km (seeded, per query) before search"
    )
    displace_seed: int = 0
    k: Annotated[int, Field(ge=1)] | Literal["all"] = Field(
        default=50,
        description="candidates per query tile that vote; all: every map patch votes with its "
        "cosine above the tile's mean cosine over the map (exact; time grows with the map)",
    )
    hubness_weight: float = Field(
        default=0.0,
        ge=0,
        description="subtract this x each map patch's hubness from its similarities (0: off; "
        "the map needs build_map.hubness_k > 0)",
    )
    tile_stride_m: float | None = Field(
        default=None,
        gt=0,
        description="null: a quarter of the patch (a multiple of the map stride)",
    )
    min_valid_fraction: float = Field(default=0.5, ge=0, le=1)
    top_candidates: int = Field(default=5, ge=1)
    ortho_in_memory_max_px: int = Field(
        default=100_000_000, ge=0, description="an ortho GeoTIFF up to this size is read once"
    )
    batch_size: int = Field(default=256, ge=1)
    device: str = "auto"
    rerank: RerankParams = Field(default_factory=lambda: RerankParams())
    refine: RefineParams = Field(default_factory=lambda: RefineParams())
    confidence: ConfidenceParams = Field(default_factory=lambda: ConfidenceParams())
