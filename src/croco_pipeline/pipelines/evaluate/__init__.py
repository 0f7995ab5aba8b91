"""The ``evaluate`` pipeline: see pipeline.py."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
