"""``kedro run --pipelines=localize``: locate LiDAR scans and tracks of a query folder on the map."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
