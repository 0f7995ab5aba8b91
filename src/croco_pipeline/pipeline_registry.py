"""Project pipelines: each folder under ``pipelines/`` is one; ``__default__`` chains the full run."""

from importlib import import_module

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

#: the full run, in order; the names of the pipeline folders
DEFAULT_CHAIN = (
    "synthesize", "ingest", "preprocess", "train", "evaluate",
    "build_map", "make_queries", "localize", "localize_eval",
)  # fmt: skip


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``pipelines/`` plus ``__default__`` (the full chain)."""
    pipelines = find_pipelines(raise_errors=True)
    # ingest reads the scene the synthesize node has made ready (a no-op for a real release or a
    # user's raster pair), so ``--pipelines=ingest`` alone runs in the right order too. Kedro 1.7
    # loads only the pipelines named on the command line, so synthesize is created here if absent.
    if "ingest" in pipelines:
        synthesize = (
            pipelines.get("synthesize")
            or import_module("croco_pipeline.pipelines.synthesize").create_pipeline()
        )
        pipelines["ingest"] = synthesize + pipelines["ingest"]
    pipelines["__default__"] = sum(
        (pipelines[name] for name in DEFAULT_CHAIN if name in pipelines), Pipeline([])
    )
    return pipelines
