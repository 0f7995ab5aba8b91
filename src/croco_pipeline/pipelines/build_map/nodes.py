"""Nodes of the ``build_map`` pipeline (wiring only: the work is in ``croco_pipeline.localisation``)."""

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.localisation.hubness import with_hubness
from croco_pipeline.localisation.mapping import LocalisationMap, build_map, map_spec
from croco_pipeline.localisation.ortho import open_ortho
from croco_pipeline.localisation.params import BuildMapParams
from croco_pipeline.model import distributed
from croco_pipeline.model.runtime import load_model, resolve_device
from croco_pipeline.pipelines.utils import materialise


def build_localisation_map(
    croco_model: dict[str, Any],
    aligned_stacks: dict[str, Callable[[], TileStack]],
    map_ortho: Path | None,
    normalisation_stats: dict[str, Any],
    preprocess: dict[str, Any],
    build_map_params: dict[str, Any],
) -> LocalisationMap:
    """Embed the ortho (a GeoTIFF named in the catalog, else the scene's aligned RGB) into a map.

    Under ``torchrun`` the ortho's blocks are shared out across ranks and rank 0 writes the map.
    With ``build_map.hubness_k`` > 0 each patch also gets its hubness against a bank of the
    training tiles' elevation windows (``localisation.hubness``).
    """
    params = BuildMapParams.from_params(build_map_params)
    distributed.setup_from_env()
    device = resolve_device(params.device, "build_map.device")
    spec = map_spec(croco_model, preprocess, normalisation_stats, params.stride_m)
    stacks = functools.cache(lambda: list(materialise(aligned_stacks).values()))  # read once
    source = open_ortho(map_ortho, stacks, spec.gsd, params.crs)
    model = load_model(croco_model).to(device)
    opts = params.model_dump() | {"device": device}
    lmap = build_map(model, source, spec, opts)
    if not params.hubness_k:
        return lmap
    train = [s for s in stacks() if s.split == "train"]
    stats = NormalisationStats.from_dict(normalisation_stats)
    return with_hubness(lmap, model, train, stats, opts)
