"""The ``preprocess`` parameters (read by ingest and preprocess) as one checked object."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, get_args

from pydantic import Field

from croco_pipeline.data.stack import NORMALISATIONS
from croco_pipeline.params import StrictParams

Split = Literal["train", "val", "test"]
Normalisation = Literal["global_minmax", "relative"]
assert get_args(Normalisation) == NORMALISATIONS  # spelled out for the type checker


class BlockSplit(StrictParams):
    """How a single user scene is cut into geographic train/val/test blocks."""

    section: ClassVar[str] = "preprocess.blocks"

    block_size_m: float = Field(gt=0)
    buffer_m: float = Field(ge=0)  # at least patch_size_m: checked where blocks are cut
    fractions: dict[Split, float]
    seed: int = Field(ge=0)


def _default_split_minimums() -> dict[Split, int]:
    return {"train": 8, "val": 2, "test": 2}


class Coverage(StrictParams):
    """Sparse scenes: when a tile or block is dropped, and how many patches each split needs."""

    section: ClassVar[str] = "preprocess.coverage"

    min_patches_per_tile: int = Field(default=1, ge=1)  # usable non-overlapping patches
    min_patches_per_split: dict[Split, Annotated[int, Field(ge=1)]] = Field(
        default_factory=_default_split_minimums
    )


class PreprocessConfig(StrictParams):
    """``preprocess.*``: the working grid, elevation channels, normalisation, patches and splits."""

    section: ClassVar[str] = "preprocess"

    gsd: float = Field(gt=0)
    channels: list[str] = Field(min_length=1)
    cloud_gsd_m: float = Field(default=0.5, gt=0)  # LAS/LAZ channel sources rasterised at this GSD
    normalisation: Normalisation
    relative_height_range_m: float = Field(gt=0)
    patch_size_m: float = Field(gt=0)
    train_stride_m: float = Field(gt=0)
    eval_stride_m: float | None = Field(default=None, gt=0)  # None: the patch size
    max_nodata_fraction: float = Field(ge=0.0, le=1.0)
    split: dict[str, Split] | None = None  # DFC2018: None = the documented 8/2/4 split
    blocks: BlockSplit | None = None  # required for a single user scene
    coverage: Coverage = Field(default_factory=Coverage)
