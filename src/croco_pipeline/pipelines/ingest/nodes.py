"""Nodes of the ``ingest`` pipeline: read the raw source to the working GSD, geometry intact."""

import logging
import os
from typing import Any

from croco_pipeline.data.datasets import SceneSource
from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.params import PreprocessConfig
from croco_pipeline.data.provenance import ingest_manifest
from croco_pipeline.data.readers import Dfc2018Release, read_raster_pair
from croco_pipeline.errors import bad_param
from croco_pipeline.localisation.pointcloud import POINT_CLOUD_SUFFIXES, read_point_cloud
from croco_pipeline.localisation.rasterise import rasterise_scene_channel

log = logging.getLogger(__name__)

#: the tile name of a single user scene before it is cut into blocks
SCENE = "scene"


def ingest_source(
    source: SceneSource, preprocess: dict[str, Any]
) -> tuple[dict[str, GeoRaster], dict[str, Any]]:
    """Read every tile of ``source``: RGB decimated to the working GSD, heights at native GSD.

    Returns:
        ``{"<tile>/rgb": ..., "<tile>/<channel>": ...}`` (each raster in its own CRS) and a manifest
        ``{"kind", "tiles", "channels", "gsd", "source"}`` (``provenance.ingest_manifest``).
    """
    config = PreprocessConfig.from_params(preprocess)
    gsd, channels = config.gsd, tuple(config.channels)
    rasters: dict[str, GeoRaster] = {}
    if source.kind == "dfc2018":
        assert source.root is not None
        release = Dfc2018Release(source.root, channels)
        for i, tile in enumerate(release.tiles, start=1):
            log.info("ingest: tile %s (%d/%d)", tile.name, i, len(release.tiles))
            for key, raster in release.read_tile(tile, gsd).items():
                rasters[f"{tile.name}/{key}"] = raster
        tiles = [t.name for t in release.tiles]
    else:
        assert source.rgb is not None
        missing = [c for c in channels if c not in source.elevation]
        if missing:
            raise bad_param(
                "preprocess.channels",
                list(channels),
                f"names among raster_pair.elevation {sorted(source.elevation)}",
            )
        log.info("ingest: raster pair %s + %s", source.rgb, list(source.elevation.values()))
        for key, raster in _read_pair(source, channels, config.cloud_gsd_m, gsd).items():
            rasters[f"{SCENE}/{key}"] = raster
        tiles = [SCENE]
    return rasters, ingest_manifest(source, tiles, channels, gsd)


def _read_pair(
    source: SceneSource, channels: tuple[str, ...], cloud_gsd: float, gsd: float
) -> dict[str, GeoRaster]:
    """RGB and elevation rasters read by ``read_raster_pair``; a channel given as a LAS/LAZ file
    (e.g. ``intensity``) is rasterised at ``cloud_gsd`` as queries are (``rasterise_scene_channel``)."""
    assert source.rgb is not None
    clouds = [c for c in channels if source.elevation[c].suffix.lower() in POINT_CLOUD_SUFFIXES]
    wanted: dict[str, str | os.PathLike[str]] = {
        c: source.elevation[c] for c in channels if c not in clouds
    }
    read = read_raster_pair(source.rgb, wanted, gsd)
    for channel in clouds:
        log.info(
            "ingest: rasterising %s at %s m for channel %s",
            source.elevation[channel],
            cloud_gsd,
            channel,
        )
        cloud = read_point_cloud(source.elevation[channel])
        read[channel] = rasterise_scene_channel(cloud, channel, cloud_gsd)
    return {"rgb": read["rgb"], **{c: read[c] for c in channels}}
