"""The ``synthesize`` pipeline: the embedded synthetic DFC2018-shaped release."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
