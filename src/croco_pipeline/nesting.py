"""Nested parameter and metric dictionaries as flat ``{"a.b.c": value}`` maps (MLflow, hashing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(nested: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"train": {"model": {"stem": "fast"}}}`` -> ``{"train.model.stem": "fast"}``.

    Lists and scalars are kept as values; ``prefix`` is put in front of every key.
    """
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name, sep))
        else:
            flat[name] = value
    return flat
