"""Helpers shared by pipeline nodes (Kedro plumbing only, no domain logic)."""

from collections.abc import Callable, Mapping
from typing import Any

from kedro.pipeline import Node, node


def materialise(partitions: Mapping[str, Any]) -> dict[str, Any]:
    """Load every partition of a PartitionedDataset (values may already be loaded), sorted by key."""
    return {k: (v() if callable(v) else v) for k, v in sorted(partitions.items())}


def require(params: Mapping[str, Any], key: str, prefix: str) -> Any:
    """``params[key]``, or a clear error naming the missing parameter ``prefix.key``."""
    from croco_pipeline.errors import CrocoConfigError

    if key not in params:
        raise CrocoConfigError(f"parameter '{prefix}.{key}' is missing")
    return params[key]


def _names(names: str) -> str | list[str]:
    """Whitespace-separated dataset names: one name as a plain string, several as a list."""
    split = names.split()
    return split[0] if len(split) == 1 else split


def wire(
    func: Callable[..., Any], inputs: str, outputs: str, name: str | None = None, **kwargs: Any
) -> Node:
    """``node(func, inputs, outputs, name=...)`` with the dataset names whitespace-separated.

    A single name stays a plain string (for outputs: the function returns that one value), several
    become a list; ``name`` defaults to ``func.__name__``; ``kwargs`` (``namespace``...) go to
    ``kedro.pipeline.node`` unchanged.
    """
    return node(func, _names(inputs), _names(outputs), name=name or func.__name__, **kwargs)
