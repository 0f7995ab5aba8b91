"""``localize_eval``: localisations scored against truth, beside the classical baseline."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
