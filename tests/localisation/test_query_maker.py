"""The query maker cuts exactly the source's points, reproducibly, where coverage allows, in bounded memory."""

from __future__ import annotations

import json
from pathlib import Path

import laspy
import numpy as np
import pytest
from kedro.io import DatasetError
from pyproj import CRS

from croco_pipeline.errors import CrocoConfigError, CrocoInputError
from croco_pipeline.localisation import query_maker
from croco_pipeline.localisation.query_datasets import (
    MARKER,
    QueryFolderDataset,
    QuerySet,
    write_query_folder,
)
from croco_pipeline.localisation.query_maker import (
    Area,
    QueryRequest,
    ScanRules,
    coverage_grid,
    make_query_scans,
    open_source,
    plan_queries,
    restrict,
    split_boxes,
)
from croco_pipeline.localisation.query_params import MakeQueriesParams

LEFT, BOTTOM, RIGHT, TOP = 500_000.0, 4_000_000.0, 500_400.0, 4_000_300.0
HOLE = (500_250.0, 4_000_000.0, 500_400.0, 4_000_150.0)  # a "lake": no returns
EPSG = 26915


def _write(path: Path, x: np.ndarray, y: np.ndarray, z: np.ndarray, crs: bool = True) -> None:
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([np.floor(x.min()), np.floor(y.min()), 0.0])
    if crs:
        header.add_crs(CRS.from_epsg(EPSG))
    las = laspy.LasData(header)
    las.x, las.y, las.z = x, y, z
    las.intensity = (np.arange(len(x)) % 1000).astype(np.uint16)
    las.write(str(path))


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two LAS tiles (west / east halves, different offsets), 4 points/m2, a hole in the east."""
    folder = tmp_path_factory.mktemp("source")
    rng = np.random.default_rng(0)
    n = int(4 * (RIGHT - LEFT) * (TOP - BOTTOM))
    x, y = rng.uniform(LEFT, RIGHT, n), rng.uniform(BOTTOM, TOP, n)
    wet = (x >= HOLE[0]) & (x < HOLE[2]) & (y >= HOLE[1]) & (y < HOLE[3])
    x, y = np.round(x[~wet], 2), np.round(y[~wet], 2)
    z = 10 + 0.01 * (x - LEFT) + rng.normal(0, 0.1, len(x))
    mid = (LEFT + RIGHT) / 2
    _write(folder / "west.las", x[x < mid], y[x < mid], z[x < mid])
    _write(folder / "east.las", x[x >= mid], y[x >= mid], z[x >= mid])
    return folder


def _all_points(folder: Path) -> np.ndarray:
    parts = [laspy.read(p) for p in sorted(folder.glob("*.las"))]
    return np.concatenate([np.stack([p.x, p.y, p.z, p.intensity], 1) for p in parts])


def _make(tiles: Path, out: Path, max_points: int = 4_000_000, seed: int = 3) -> list[dict]:
    source = open_source(tiles)
    rules = ScanRules(size_m=40.0, min_points=1000, min_coverage=0.9)
    request = QueryRequest(Area((source.bounds,)), 6, {2: 2, 3: 1}, rules, seed)
    scans = make_query_scans(source, request, 2.0, max_points)
    return write_query_folder(QuerySet(scans, {"seed": seed}), out)


@pytest.fixture(scope="module")
def made(tiles: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("made") / "queries"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(query_maker, "CHUNK_POINTS", 7000)  # many chunks per file
        rows = _make(tiles, out)
    return out, rows


def test_scans_hold_exactly_the_source_points_inside(tiles: Path, made: tuple) -> None:
    out, rows = made
    reference = _all_points(tiles)
    assert len(rows) == 6 + 2 * 2 + 3
    for row in rows:
        las = laspy.read(out / row["file"])
        assert las.header.parse_crs().to_epsg() == EPSG
        got = np.stack([las.x, las.y, las.z, las.intensity], 1)
        left, bottom = row["square_center_x"] - 20, row["square_center_y"] - 20
        inside = (
            (reference[:, 0] >= left)
            & (reference[:, 0] < left + 40)
            & (reference[:, 1] >= bottom)
            & (reference[:, 1] < bottom + 40)
        )
        want = reference[inside]
        assert len(got) == len(want) == row["points"] >= 1000
        key = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
        np.testing.assert_allclose(key(got), key(want), atol=1e-6)
        # truth = centre of the points' bounding box (what a localiser reports)
        assert row["center_x"] == pytest.approx((las.x.min() + las.x.max()) / 2, abs=1e-3)
        assert row["center_y"] == pytest.approx((las.y.min() + las.y.max()) / 2, abs=1e-3)


def test_no_scan_over_the_hole_and_all_inside_the_source(made: tuple) -> None:
    _, rows = made
    for row in rows:
        cx, cy = row["square_center_x"], row["square_center_y"]
        ox = max(0.0, min(cx + 20, HOLE[2]) - max(cx - 20, HOLE[0]))
        oy = max(0.0, min(cy + 20, HOLE[3]) - max(cy - 20, HOLE[1]))
        assert ox * oy <= 0.1 * 40 * 40 + 1e-6  # at most 10 % of a scan over the hole
        assert LEFT <= cx - 20 and cx + 20 <= RIGHT and BOTTOM <= cy - 20 and cy + 20 <= TOP


def test_tracks_are_consecutive_overlapping_scans(made: tuple) -> None:
    out, rows = made
    tracks: dict[str, list[dict]] = {}
    for row in rows:
        if row["track"]:
            tracks.setdefault(row["track"], []).append(row)
    assert sorted(tracks) == ["track2_000", "track2_001", "track3_000"]
    for name, scans in tracks.items():
        assert [s["order"] for s in scans] == list(range(len(scans)))
        assert all(s["file"].startswith(f"{name}/") for s in scans)
        steps = [
            np.hypot(
                b["square_center_x"] - a["square_center_x"],
                b["square_center_y"] - a["square_center_y"],
            )
            for a, b in zip(scans[:-1], scans[1:], strict=True)
        ]
        assert np.allclose(steps, 20.0, atol=0.02)  # default step: half a scan, so they overlap
        local = json.loads((out / name / "index.json").read_text())
        assert [r["file"] for r in local] == [Path(s["file"]).name for s in scans]
    singles = [r for r in rows if not r["track"]]
    assert [r["file"] for r in singles] == [f"scan_{i:04d}.laz" for i in range(6)]
    assert json.loads((out / "index.json").read_text()) == rows
    assert (out / MARKER).is_file()


def test_seeded_and_memory_bounded(tiles: Path, made: tuple, tmp_path: Path) -> None:
    out, rows = made
    # a budget far below one scan's points: one pass per scan, same result
    again = _make(tiles, tmp_path / "small_budget", max_points=1)
    assert again == rows
    for row in rows[:3]:
        a, b = laspy.read(out / row["file"]), laspy.read(tmp_path / "small_budget" / row["file"])
        np.testing.assert_array_equal(np.asarray(a.x), np.asarray(b.x))
    other = _make(tiles, tmp_path / "other_seed", seed=4)
    assert [r["center_x"] for r in other] != [r["center_x"] for r in rows]


def test_area_restriction_and_split_boxes(tiles: Path) -> None:
    source = open_source(tiles)
    west = (LEFT, BOTTOM, LEFT + 200, TOP)
    boxes = split_boxes({"a": "test", "b": "train"}, {"a": west, "b": (0, 0, 1, 1)}, ["test"])
    assert boxes == (west,)
    coverage = coverage_grid(source, 2.0)
    rules = ScanRules(size_m=40.0)
    plan = plan_queries(coverage, QueryRequest(Area(boxes), 10, {}, rules, seed=0))
    assert all(LEFT + 20 <= s.center_x <= LEFT + 180 for s in plan)
    triangle = ((LEFT, BOTTOM), (LEFT + 200, BOTTOM), (LEFT, TOP))
    plan = plan_queries(coverage, QueryRequest(Area(boxes, triangle), 5, {}, rules, seed=0))
    for s in plan:  # the north-east corner of each scan lies below the triangle's hypotenuse
        assert (s.center_x + 20 - LEFT) / 200 + (s.center_y + 20 - BOTTOM) / 300 <= 1
    assert [f.path.name for f in restrict(source, boxes).files] == ["west.las"]
    with pytest.raises(CrocoInputError, match="no tile or block of split"):
        split_boxes({"a": "train"}, {"a": west}, ["test"])


def test_coverage_counts_every_point(tiles: Path) -> None:
    coverage = coverage_grid(open_source(tiles), 5.0)
    assert coverage.counts.sum() == len(_all_points(tiles))


def test_clear_errors(tiles: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 50, 100) + LEFT, rng.uniform(0, 50, 100) + BOTTOM
    _write(tmp_path / "nocrs.las", x, y, np.zeros(100), crs=False)
    with pytest.raises(CrocoInputError, match=r"nocrs\.las has no CRS"):
        open_source(tmp_path / "nocrs.las")
    assert open_source(tmp_path / "nocrs.las", assume_crs="EPSG:26915").crs.to_epsg() == EPSG
    with pytest.raises(CrocoInputError, match="not found"):
        open_source(tmp_path / "missing.laz")
    coverage = coverage_grid(open_source(tiles), 2.0)
    lake = QueryRequest(Area((HOLE,)), 3, {}, ScanRules(40.0, max_attempts=5), 0)
    with pytest.raises(CrocoInputError, match="could place only"):
        plan_queries(coverage, lake)
    with pytest.raises(CrocoConfigError, match="make_queries.n_singl"):
        MakeQueriesParams.from_params({"n_singl": 3})


def test_folder_dataset_never_replaces_foreign_folders(tmp_path: Path) -> None:
    mine = tmp_path / "user_scans"
    mine.mkdir()
    (mine / "survey.laz").write_bytes(b"x")
    with pytest.raises(DatasetError, match="refusing to write queries") as err:
        QueryFolderDataset(str(mine)).save(QuerySet(iter([]), {}))
    assert isinstance(err.value.__cause__, CrocoInputError)
    assert (mine / "survey.laz").read_bytes() == b"x"
    made = tmp_path / "made"
    QueryFolderDataset(str(made)).save(QuerySet(iter([]), {"seed": 1}))
    assert QueryFolderDataset(str(made)).load() == made
    QueryFolderDataset(str(made)).save(QuerySet(iter([]), {"seed": 2}))  # its own: replaced
    assert json.loads((made / MARKER).read_text()) == {"seed": 2}


def test_failed_write_leaves_the_old_folder(tmp_path: Path) -> None:
    out = tmp_path / "q"
    write_query_folder(QuerySet(iter([]), {"seed": 1}), out)

    def broken():
        yield from ()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_query_folder(QuerySet(broken(), {"seed": 2}), out)
    assert json.loads((out / MARKER).read_text()) == {"seed": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]
