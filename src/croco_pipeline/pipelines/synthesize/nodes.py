"""Node of the ``synthesize`` pipeline: the embedded synthetic DFC2018-shaped release."""

import logging
from typing import Any

from croco_pipeline.data.source import SceneSource
from croco_pipeline.synthetic import SyntheticConfig, ensure_synthetic_release

log = logging.getLogger(__name__)


def synthesize_release(synthetic: dict[str, Any], raw_source: SceneSource) -> SceneSource:
    """Write the synthetic release of the ``synthetic`` parameters into ``raw_source``'s folder.

    Only a DFC2018 folder that is missing or holds a synthetic release of another config is
    (re)written, tile by tile; the same config's release is reused. A real release or a user's
    raster pair is never touched.

    Returns:
        ``raw_source`` itself, as ``scene_source``: what the ingest node reads, once it is ready.
    """
    config = SyntheticConfig.from_params(synthetic)
    if raw_source.kind != "dfc2018" or raw_source.root is None:
        log.info("raw_source is a user's raster pair: no synthetic release written")
        return raw_source
    outcome = ensure_synthetic_release(raw_source.root, config, progress=log.info)
    messages = {
        "written": "synthetic DFC2018 release written to %s",
        "reused": "synthetic release at %s already matches the config: reused",
        "not synthetic": "raw_source %s holds a release that is not synthetic: left untouched",
    }
    log.info(messages[outcome], raw_source.root)
    return raw_source
