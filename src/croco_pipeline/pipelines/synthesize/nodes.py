"""Node of the ``synthesize`` pipeline."""

from typing import Any

from croco_pipeline.synthetic import SyntheticConfig


def plan_synthetic_release(synthetic: dict[str, Any]) -> SyntheticConfig:
    """Validate the ``synthetic`` parameters into the release config.

    The release itself is written lazily by the ``raw_source`` dataset, tile by tile, only where the
    source is a DFC2018 folder that does not already hold this exact synthetic release.
    """
    return SyntheticConfig.from_params(synthetic)
