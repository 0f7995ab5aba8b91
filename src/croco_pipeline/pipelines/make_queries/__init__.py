"""``make_queries``: cut LiDAR scans and tracks with known truth from a large point cloud."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
