"""Query folders: the six Autzen crops work as they are; singles, tracks, exclusions, truth."""

from pathlib import Path

import numpy as np
import pytest
from conftest import MAP_CRS, write_las

from croco_pipeline.errors import CrocoInputError
from croco_pipeline.localisation.params import LocalizeParams
from croco_pipeline.localisation.pointcloud import QuerySkipped, read_point_cloud
from croco_pipeline.localisation.queries import discover, load_query

AUTZEN_LIDAR = Path(__file__).resolve().parents[3] / "shared" / "data" / "autzen" / "lidar"


@pytest.mark.skipif(not AUTZEN_LIDAR.is_dir(), reason="../shared/data/autzen is not present")
def test_autzen_crops_folder_works_as_it_is() -> None:
    params = LocalizeParams.from_params({})  # defaults: the 10.5 M point cloud is over max_points
    items, skipped = discover(AUTZEN_LIDAR, params.exclude)
    names = sorted(i.name for i in items)
    assert len(names) == 7 and all(not i.track for i in items)  # six crops + autzen_full
    with pytest.raises(QuerySkipped, match="autzen_full.laz.*localize.max_points"):
        read_point_cloud(AUTZEN_LIDAR / "autzen_full.laz", max_points=params.max_points)
    crops = [i for i in items if i.name != "autzen_full"]
    for item in crops[:2]:
        loaded = load_query(item, "EPSG:26910", ["dsm"], 2.0, params)
        assert loaded.raster.shape == (33, 33)  # 64 m crops not on the 2 m lattice: 33 cells
        (scan,) = loaded.scans
        left, bottom, right, top = scan.footprint
        assert scan.truth is not None  # from index.json
        assert (
            abs((left + right) / 2 - scan.truth[0]) < 1.0
            and abs((bottom + top) / 2 - scan.truth[1]) < 1.0
        )


def test_discover_singles_tracks_and_exclusions(tmp_path: Path) -> None:
    x, y, z = np.array([500000.5, 500010.5]), np.array([4000000.5, 4000010.5]), np.array([1.0, 2.0])
    write_las(tmp_path / "a.laz", x, y, z)
    (tmp_path / "t1").mkdir()
    write_las(tmp_path / "t1" / "s0.las", x, y, z)
    write_las(tmp_path / "t1" / "s1.las", x + 5, y, z)
    write_las(tmp_path / "big_skip.laz", x, y, z)
    (tmp_path / "readme.md").write_text("not a query")
    items, skipped = discover(tmp_path, ["*_skip.laz"])
    assert [(i.name, i.track, [p.name for p in i.paths]) for i in items] == [
        ("a", "", ["a.laz"]),
        ("t1", "t1", ["s0.las", "s1.las"]),
    ]
    assert [p.name for p, _ in skipped] == ["big_skip.laz"]
    loaded = load_query(
        items[1], MAP_CRS, ["dsm"], 1.0, LocalizeParams.from_params({"native_gsd_m": 1.0})
    )
    assert [s.name for s in loaded.scans] == ["s0", "s1"]
    assert loaded.scans[1].footprint[0] - loaded.scans[0].footprint[0] == pytest.approx(5.0)
    empty = tmp_path / "t1" / "empty"
    empty.mkdir()
    with pytest.raises(CrocoInputError, match="empty.*holds no"):
        discover(empty, [])
