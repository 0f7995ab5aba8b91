"""Project pipelines: each folder under ``pipelines/`` is one; ``__default__`` chains the full run."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

#: the full run, in order; the names of the pipeline folders
DEFAULT_CHAIN = ("synthesize", "ingest", "preprocess", "train", "evaluate")


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``pipelines/`` plus ``__default__`` (the full chain)."""
    pipelines = find_pipelines(raise_errors=True)
    # ingest reads the scene the synthesize node has made ready (a no-op for a real release or a
    # user's raster pair), so ``--pipelines=ingest`` alone runs in the right order too
    pipelines["ingest"] = pipelines["synthesize"] + pipelines["ingest"]
    pipelines["__default__"] = sum(
        (pipelines[name] for name in DEFAULT_CHAIN if name in pipelines), Pipeline([])
    )
    return pipelines
