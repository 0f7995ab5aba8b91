"""The ingest manifest records its source; stale ingested data is named with the command that rebuilds it."""

from pathlib import Path

import pytest

from croco_pipeline.data.provenance import REBUILD_INGEST, check_ingested, ingest_manifest
from croco_pipeline.data.source import SceneSource
from croco_pipeline.errors import CrocoInputError

PAIR = SceneSource("raster_pair", rgb=Path("/x/ortho.tif"), elevation={"dsm": Path("/x/dsm.tif")})


def test_manifest_records_the_source_configuration(tmp_path: Path) -> None:
    manifest = ingest_manifest(PAIR, ["scene"], ("dsm",), 2)
    assert manifest == {
        "kind": "raster_pair",
        "tiles": ["scene"],
        "channels": ["dsm"],
        "gsd": 2.0,
        "source": {
            "kind": "raster_pair",
            "rgb": "/x/ortho.tif",
            "elevation": {"dsm": "/x/dsm.tif"},
        },
    }
    (tmp_path / "SYNTHETIC.json").write_text("{}")
    dfc = ingest_manifest(SceneSource("dfc2018", root=tmp_path), ["a", "b"], ["DSM_C12"], 0.5)
    assert dfc["source"] == {"kind": "dfc2018", "root": str(tmp_path), "synthetic": True}


def test_matching_ingest_passes() -> None:
    manifest = ingest_manifest(PAIR, ["scene"], ["dsm"], 2.0)
    check_ingested(manifest, ["scene/rgb", "scene/dsm"], ["dsm"])


def test_other_channels_name_the_stale_dataset_and_the_command() -> None:
    """The issue's case: an Autzen ingest (dsm only) read by a default-env run (DFC channels)."""
    manifest = ingest_manifest(PAIR, ["scene"], ["dsm"], 2.0)
    with pytest.raises(CrocoInputError) as err:
        check_ingested(manifest, ["scene/rgb", "scene/dsm"], ["DSM_C12", "DEM_C123_TLI"])
    message = str(err.value)
    assert "'ingested_rasters' is stale" in message and REBUILD_INGEST in message
    assert "['DSM_C12', 'DEM_C123_TLI']" in message and "/x/dsm.tif" in message


def test_missing_partitions_are_listed() -> None:
    """A manifest whose partitions are gone (e.g. an interrupted ingest) is stale too."""
    manifest = ingest_manifest(PAIR, ["t1", "t2"], ["dsm"], 2.0)
    with pytest.raises(CrocoInputError, match=r"missing: t2/rgb, t2/dsm \(ingested from"):
        check_ingested(manifest, ["t1/rgb", "t1/dsm"], ["dsm"])
