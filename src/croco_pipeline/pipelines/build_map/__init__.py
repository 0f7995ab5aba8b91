"""``kedro run --pipelines=build_map``: embed the orthophoto into a searchable localisation map."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
