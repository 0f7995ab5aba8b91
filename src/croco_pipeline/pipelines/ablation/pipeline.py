"""``kedro run --pipelines=ablation``: one namespace per configuration, then the study tables.

Kedro's ``find_pipelines`` calls ``create_pipeline()`` with no arguments and before the config
loader exists, so the configuration and study NAMES are read here from
``conf/base/parameters_ablation.yml`` (a small, documented exception). Their contents (overrides,
profiles, published numbers) arrive at run time as ``params:ablation``, so ``--params`` applies.
"""

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.project import settings
from kedro.pipeline import Pipeline, node

from .nodes import run_configuration, summarise_ablation

SHARED_INPUTS = {"ingested_rasters", "ingest_manifest"}
SHARED_PARAMS = {"params:preprocess", "params:train", "params:evaluate", "params:ablation"}


def _ablation_conf(start: Path | None = None) -> dict[str, Any]:
    """``ablation`` from the nearest ``<conf>/base/parameters_ablation.yml`` at or above the cwd."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / str(settings.CONF_SOURCE) / "base" / "parameters_ablation.yml"
        if path.is_file():
            return dict((yaml.safe_load(path.read_text()) or {}).get("ablation") or {})
    return {}


def _configuration_runner(name: str) -> Callable[..., dict[str, Any]]:
    """``run_configuration`` with ``name`` bound, named ``run_<name>`` for Kedro and viz."""
    run = functools.partial(run_configuration, name)
    run.__name__ = run.__qualname__ = f"run_{name}"  # type: ignore[attr-defined]
    run.__module__ = run_configuration.__module__
    return run


def create_pipeline(**kwargs: Any) -> Pipeline:
    conf = _ablation_conf()
    names = list(conf.get("configurations") or {})
    studies = list(conf.get("studies") or {})
    if not names:
        return Pipeline([])
    per_configuration = [
        Pipeline(
            [
                node(
                    _configuration_runner(name),
                    inputs=[
                        "ingested_rasters",
                        "ingest_manifest",
                        "params:preprocess",
                        "params:train",
                        "params:evaluate",
                        "params:ablation",
                    ],
                    outputs="result",
                    name="run_configuration",
                )
            ],
            inputs=SHARED_INPUTS,
            parameters=SHARED_PARAMS,
            namespace=f"ablation.{name}",
        )
        for name in names
    ]
    outputs = {
        "results": "ablation_results",
        "tables": "ablation_tables",
        "markdown": "ablation_report",
        **{f"plot_{study}": f"ablation_plot_{study}" for study in studies},
    }
    summary = node(
        summarise_ablation,
        inputs=["params:ablation", *(f"ablation.{name}.result" for name in names)],
        outputs=outputs,
        name="summarise_ablation",
        namespace="ablation",
    )
    return sum(per_configuration, Pipeline([])) + Pipeline([summary])
