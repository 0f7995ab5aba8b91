"""The ``evaluate`` parameters as one checked object; its protocol part is what ``evaluate_all``
takes in place of a list of arguments."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt

from croco_pipeline.params import StrictParams


class ProtocolSettings(StrictParams):
    """How both retrieval protocols run: localisation strides, k values, queries, batch size.

    ``radii_m`` (None: one and two strides) are the localisation hit radii.
    """

    section: ClassVar[str] = "evaluate"

    strides_m: list[PositiveFloat] = Field(default=[2.0, 4.0], min_length=1)
    radii_m: list[PositiveFloat] | None = None
    ks: list[PositiveInt] = Field(default=[1, 5, 10], min_length=1)
    n_queries: int = Field(default=500, ge=1)
    seed: int = Field(default=0, ge=0)
    min_valid_fraction: float = Field(default=0.9, ge=0.0, le=1.0)
    batch_size: int = Field(default=256, ge=1)


class BaselineParams(StrictParams):
    """The classical baseline: NCC of gradient magnitudes (``evaluation.baseline.BaselineModel``)."""

    section: ClassVar[str] = "evaluate.baseline"

    elevation_channel: int = Field(default=0, ge=0)
    downsample: int = Field(default=1, ge=1)
    sigma: float = Field(default=0.0, ge=0.0)  # Gaussian smoothing (px) before the gradient
    gradient: Literal["magnitude", "abs_components"] = "magnitude"


class BaselineSweepParams(StrictParams):
    """``evaluate.baseline_sweep``: the classical baseline's own best setting, searched on the
    validation tiles over every combination (``evaluation.baseline_sweep``).

    Attributes:
        enabled: false skips the sweep (metrics.json then has no ``baseline_best``).
        coarsen: integer GSD factors (1: the tiles' GSD; 2: twice as coarse, ...); a factor that
            does not divide the patch size and grid is skipped.
        sigmas_px: Gaussian smoothing before the gradient, in pixels of the (coarsened) tiles.
        downsamples: average pooling of the gradient image.
        gradients: ``magnitude`` and/or ``abs_components``.
    """

    section: ClassVar[str] = "evaluate.baseline_sweep"

    enabled: bool = True
    coarsen: list[PositiveInt] = Field(default=[1, 2], min_length=1)
    sigmas_px: list[float] = Field(default=[0.0, 1.0], min_length=1)
    downsamples: list[PositiveInt] = Field(default=[1, 2], min_length=1)
    gradients: list[Literal["magnitude", "abs_components"]] = Field(
        default=["magnitude", "abs_components"], min_length=1
    )


class FigureParams(StrictParams):
    """How many heatmaps (Fig. 5) and failures (Fig. 8) to draw."""

    section: ClassVar[str] = "evaluate.figures"

    n_heatmaps: int = Field(default=3, ge=1)
    n_failures: int = Field(default=8, ge=0)


class EvaluateConfig(ProtocolSettings):
    """``evaluate.*``: the protocol settings plus where it runs, the area and the figures.

    ``localisation_area_m``: side of the centred window of each test tile the localisation
    galleries cover (None: whole tiles).
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    localisation_area_m: float | None = Field(default=None, gt=0)
    baseline: BaselineParams = BaselineParams()
    baseline_sweep: BaselineSweepParams = BaselineSweepParams()
    figures: FigureParams = FigureParams()
