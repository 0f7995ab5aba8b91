"""Kedro outputs are complete or absent: atomic file datasets and the marked partitioned dataset."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from kedro.io import DatasetError  # noqa: E402
from kedro_datasets.json import JSONDataset  # noqa: E402

from croco_pipeline.data.atomic_datasets import (  # noqa: E402
    COMPLETE_MARKER,
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicMatplotlibDataset,
    AtomicParquetDataset,
    AtomicTextDataset,
    CompletePartitionedDataset,
)
from croco_pipeline.data.geo import GeoRaster  # noqa: E402
from fixtures_geo import UTM15  # noqa: E402

#: serialising this writes the first key, then raises: a save that fails halfway
HALF_SERIALISABLE = {"written_first": list(range(1000)), "then_fails": object()}


def test_plain_kedro_json_leaves_a_torn_file(tmp_path: Path) -> None:
    """Why the wrappers exist: kedro's own JSONDataset leaves the half-written file behind."""
    target = tmp_path / "metrics.json"
    with pytest.raises(DatasetError):
        JSONDataset(filepath=str(target)).save(HALF_SERIALISABLE)
    assert target.exists() and target.read_text().rstrip().endswith('"then_fails":')


def test_json_save_that_fails_halfway_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "metrics.json"
    dataset = AtomicJSONDataset(filepath=str(target))
    with pytest.raises(DatasetError, match="not JSON serializable"):
        dataset.save(HALF_SERIALISABLE)
    assert list((tmp_path / "out").iterdir()) == []  # neither the target nor a temporary
    dataset.save({"top1": 0.5})
    with pytest.raises(DatasetError):
        dataset.save(HALF_SERIALISABLE)
    assert dataset.load() == {"top1": 0.5}  # a failed save leaves the previous output intact
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("cls", [AtomicCSVDataset, AtomicParquetDataset])
def test_tables_round_trip_and_fail_cleanly(tmp_path: Path, cls: type) -> None:
    frame = pd.DataFrame({"tile": ["a", "b"], "row": [1, 2], "x": [0.5, 1.5]})
    target = tmp_path / ("t.csv" if cls is AtomicCSVDataset else "t.parquet")
    save_args = {"index": False} if cls is AtomicCSVDataset else None
    dataset = cls(filepath=str(target), save_args=save_args)
    dataset.save(frame)
    pd.testing.assert_frame_equal(dataset.load(), frame)
    with pytest.raises(DatasetError):
        dataset.save(pd.DataFrame({"bad": [object()]}) if cls is AtomicParquetDataset else None)
    pd.testing.assert_frame_equal(dataset.load(), frame)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_text_and_figure(tmp_path: Path) -> None:
    AtomicTextDataset(filepath=str(tmp_path / "report.md")).save("# report\n")
    assert (tmp_path / "report.md").read_text() == "# report\n"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    AtomicMatplotlibDataset(filepath=str(tmp_path / "fig.png")).save(fig)
    # the temporary's name ends in .tmp, yet the file is a PNG
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "report.md"]


def test_a_dict_of_figures_replaces_its_folder_whole(tmp_path: Path) -> None:
    """The ablation's plots: one folder of figures, never a mix of two saves or a partial one."""
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    dataset = AtomicMatplotlibDataset(filepath=str(tmp_path / "plots"))
    dataset.save({"a.png": fig, "b.png": fig})
    dataset.save({"c.png": fig})
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["c.png"]
    with pytest.raises(DatasetError):
        dataset.save({"d.png": fig, "e.png": "not a figure"})
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["c.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["plots"]  # no temporary left behind


def _partitioned(path: Path) -> CompletePartitionedDataset:
    return CompletePartitionedDataset(
        path=str(path),
        dataset="croco_pipeline.data.datasets.GeoTiffDataset",
        filename_suffix=".tif",
        overwrite=True,
        written_by="ingest",
    )


def _raster(value: float) -> GeoRaster:
    from affine import Affine

    return GeoRaster(np.full((1, 4, 4), value, np.float32), UTM15, Affine(1, 0, 0, 0, -1, 4))


def test_partitions_round_trip_with_marker(tmp_path: Path) -> None:
    dataset = _partitioned(tmp_path / "ingested")
    dataset.save({"t1/rgb": _raster(1), "t2/rgb": _raster(2)})
    marker = json.loads((tmp_path / "ingested" / COMPLETE_MARKER).read_text())
    assert marker == {"partitions": ["t1/rgb", "t2/rgb"]}
    loaded = {k: v() for k, v in dataset.load().items()}
    assert sorted(loaded) == ["t1/rgb", "t2/rgb"] and float(loaded["t2/rgb"].data[0, 0, 0]) == 2.0
    assert dataset.exists()


def test_interrupted_partition_save_is_refused(tmp_path: Path) -> None:
    """A save that dies after some partitions: the finished ones are on disk but not taken."""
    dataset = _partitioned(tmp_path / "ingested")
    dataset.save({"t1/rgb": _raster(1)})
    with pytest.raises(DatasetError):
        dataset.save({"t1/rgb": _raster(1), "t2/rgb": "not a raster"})
    assert (tmp_path / "ingested" / "t1" / "rgb.tif").exists()
    assert not dataset.exists()
    with pytest.raises(DatasetError, match=r"incomplete .*`kedro run --pipelines=ingest`"):
        dataset.load()


def test_stray_partition_is_refused(tmp_path: Path) -> None:
    """A partition the marker does not list (e.g. copied in by hand) is not silently used."""
    dataset = _partitioned(tmp_path / "ingested")
    dataset.save({"t1/rgb": _raster(1)})
    AtomicTextDataset(filepath=str(tmp_path / "ingested" / "t9" / "rgb.tif")).save("x")
    with pytest.raises(DatasetError, match=r"unexpected \['t9/rgb'\]"):
        dataset.load()
