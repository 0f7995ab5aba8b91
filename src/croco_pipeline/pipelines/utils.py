"""Helpers shared by pipeline nodes (Kedro plumbing only, no domain logic)."""

from collections.abc import Mapping
from typing import Any


def materialise(partitions: Mapping[str, Any]) -> dict[str, Any]:
    """Load every partition of a PartitionedDataset (values may already be loaded), sorted by key."""
    return {k: (v() if callable(v) else v) for k, v in sorted(partitions.items())}


def require(params: Mapping[str, Any], key: str, prefix: str) -> Any:
    """``params[key]``, or a clear error naming the missing parameter ``prefix.key``."""
    from croco_pipeline.errors import CrocoConfigError

    if key not in params:
        raise CrocoConfigError(f"parameter '{prefix}.{key}' is missing")
    return params[key]
