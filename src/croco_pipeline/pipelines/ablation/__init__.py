"""``kedro run --pipelines=ablation``: the paper's studies and our recipe switches as tracked runs."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
