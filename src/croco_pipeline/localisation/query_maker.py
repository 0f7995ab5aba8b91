"""Cut localisation queries with known truth out of a large point cloud (one LAS/LAZ or a tile folder).

Single scans are axis-aligned squares at random places; a track is consecutive overlapping squares
along a random path. Points are read in chunks, so memory stays bounded whatever the source size:
one pass counts points on a coarse coverage grid (to refuse scans over water or holes), then scans
are cut in batches of at most ``max_points_in_memory`` points. Written scans keep the source's point
records and carry its CRS; their true centres go to the truth index only (``index.json``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import laspy
import numpy as np
from matplotlib.path import Path as PolygonPath
from pyproj import CRS
from rasterio.transform import array_bounds

from croco_pipeline.errors import CrocoInputError, bad_param

Bounds = tuple[float, float, float, float]  # left, bottom, right, top
POINT_CLOUD_SUFFIXES = (".las", ".laz")
CHUNK_POINTS = 1_000_000


@dataclass(frozen=True)
class CloudFile:
    """One LAS/LAZ file of the source: its path, header bounds and point count."""

    path: Path
    bounds: Bounds
    points: int


@dataclass(frozen=True)
class CloudSource:
    """The point cloud queries are cut from: files in one CRS with one point format."""

    files: tuple[CloudFile, ...]
    crs: CRS

    @property
    def bounds(self) -> Bounds:
        b = np.array([f.bounds for f in self.files])
        return (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())


@dataclass(frozen=True)
class PlannedScan:
    """A square scan to cut: where its file goes (relative path), its track and true centre."""

    file: str
    track: str
    order: int
    center_x: float
    center_y: float
    size_m: float


def open_source(
    location: str | Path, assume_crs: str | None = None, names: list[str] | None = None
) -> CloudSource:
    """The LAS/LAZ file ``location``, or the ones in the folder ``location`` (stems in ``names``).

    Raises:
        CrocoInputError: nothing readable, a file without CRS (and no ``assume_crs``), files in
            different CRSs or point formats.
    """
    location = Path(location)
    if location.is_dir():
        paths = sorted(p for p in location.iterdir() if p.suffix.lower() in POINT_CLOUD_SUFFIXES)
        if names is not None:
            paths = [p for p in paths if p.stem in set(names)]
    elif location.is_file():
        paths = [location]
    else:
        raise CrocoInputError(f"point-cloud source not found: {location}")
    if not paths:
        raise CrocoInputError(f"point-cloud source {location} holds no LAS/LAZ file to cut from")
    files, crss, formats = [], set(), set()
    for path in paths:
        try:
            with laspy.open(path) as reader:
                h = reader.header
                crs = h.parse_crs()
                formats.add(h.point_format.id)
                files.append(CloudFile(path, (*h.mins[:2], *h.maxs[:2]), int(h.point_count)))
        except (laspy.errors.LaspyException, OSError, ValueError) as exc:
            raise CrocoInputError(f"cannot read point cloud {path}: {exc}") from exc
        if crs is None and assume_crs is None:
            raise CrocoInputError(
                f"point cloud {path} has no CRS; set parameter 'make_queries.assume_crs'"
            )
        crss.add((crs or CRS.from_user_input(assume_crs)).to_wkt())
    if len(crss) > 1 or len(formats) > 1:
        raise CrocoInputError(
            f"point clouds under {location} mix CRSs or point formats {sorted(formats)}"
        )
    return CloudSource(tuple(files), CRS.from_wkt(crss.pop()))


def _chunks(path: Path) -> Iterator[laspy.ScaleAwarePointRecord]:
    try:
        with laspy.open(path) as reader:
            yield from reader.chunk_iterator(CHUNK_POINTS)
    except (laspy.errors.LaspyException, RuntimeError, OSError, ValueError) as exc:
        raise CrocoInputError(f"cannot read point cloud {path} (truncated?): {exc}") from exc


@dataclass(frozen=True)
class Coverage:
    """Point counts on a coarse north-up grid over the source."""

    counts: np.ndarray
    left: float
    top: float
    cell_m: float

    def window(self, bounds: Bounds) -> np.ndarray:
        """Counts of the cells whose centres fall inside ``bounds``."""
        left, bottom, right, top = bounds
        c0 = max(0, math.ceil((left - self.left) / self.cell_m - 0.5))
        c1 = min(self.counts.shape[1], math.ceil((right - self.left) / self.cell_m - 0.5))
        r0 = max(0, math.ceil((self.top - top) / self.cell_m - 0.5))
        r1 = min(self.counts.shape[0], math.ceil((self.top - bottom) / self.cell_m - 0.5))
        return self.counts[r0:r1, c0:c1]


def coverage_grid(source: CloudSource, cell_m: float) -> Coverage:
    """Count points per ``cell_m`` cell over the source's bounds in one chunked pass."""
    left, bottom, right, top = source.bounds
    rows = max(1, math.ceil((top - bottom) / cell_m))
    cols = max(1, math.ceil((right - left) / cell_m))
    counts = np.zeros(rows * cols, dtype=np.int64)
    for f in source.files:
        for chunk in _chunks(f.path):
            r = np.clip(((top - np.asarray(chunk.y)) / cell_m).astype(np.int64), 0, rows - 1)
            c = np.clip(((np.asarray(chunk.x) - left) / cell_m).astype(np.int64), 0, cols - 1)
            counts += np.bincount(r * cols + c, minlength=rows * cols)
    return Coverage(counts.reshape(rows, cols), left, top, cell_m)


@dataclass(frozen=True)
class Area:
    """Where scans may lie: boxes (any of them) and an optional polygon (corners inside)."""

    boxes: tuple[Bounds, ...]
    polygon: tuple[tuple[float, float], ...] | None = None

    def holds(self, b: Bounds) -> bool:
        """True when the square ``b`` lies inside one box (and the polygon)."""
        inside = any(
            b[0] >= a[0] and b[1] >= a[1] and b[2] <= a[2] and b[3] <= a[3] for a in self.boxes
        )
        if inside and self.polygon is not None:
            corners = [(b[0], b[1]), (b[2], b[1]), (b[2], b[3]), (b[0], b[3])]
            inside = bool(PolygonPath(self.polygon).contains_points(corners).all())
        return inside


@dataclass(frozen=True)
class ScanRules:
    """How scans are shaped and when one is refused."""

    size_m: float = 64.0
    min_points: int = 1000
    min_coverage: float = 0.9  # share of coverage cells under the scan holding a point
    step_m: float | None = None  # distance between a track's consecutive scans; None: size / 2
    max_turn_deg: float = 30.0
    max_attempts: int = 200  # tries per wanted scan or track before giving up


@dataclass(frozen=True)
class QueryRequest:
    """What the query maker is asked for: ``n_single`` single scans and ``tracks[length]`` tracks of
    each length inside ``area``, shaped and accepted by ``rules``, placed reproducibly from ``seed``."""

    area: Area
    n_single: int
    tracks: dict[int, int]
    rules: ScanRules
    seed: int


def _acceptable(coverage: Coverage, area: Area, b: Bounds, rules: ScanRules) -> bool:
    if not area.holds(b):
        return False
    cells = coverage.window(b)
    if cells.size == 0:
        return False
    return bool((cells > 0).mean() >= rules.min_coverage and cells.sum() >= rules.min_points)


def _square(cx: float, cy: float, size: float) -> Bounds:
    return (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)


def _random_centre(area: Area, size: float, rng: np.random.Generator) -> tuple[float, float]:
    weights = np.array(
        [max(a[2] - a[0] - size, 0.0) * max(a[3] - a[1] - size, 0.0) for a in area.boxes]
    )
    if weights.sum() <= 0:
        raise CrocoInputError(f"no allowed area is large enough for a {size:g} m scan")
    box = area.boxes[int(rng.choice(len(area.boxes), p=weights / weights.sum()))]
    return (
        float(rng.uniform(box[0] + size / 2, box[2] - size / 2)),
        float(rng.uniform(box[1] + size / 2, box[3] - size / 2)),
    )


def _path(
    start: tuple[float, float], length: int, rules: ScanRules, rng: np.random.Generator
) -> list[tuple[float, float]]:
    step = rules.step_m if rules.step_m is not None else rules.size_m / 2
    heading = rng.uniform(0, 2 * np.pi)
    points = [start]
    for _ in range(length - 1):
        heading += np.deg2rad(rng.uniform(-rules.max_turn_deg, rules.max_turn_deg))
        x, y = points[-1]
        points.append((x + step * np.cos(heading), y + step * np.sin(heading)))
    return points


def plan_queries(coverage: Coverage, request: QueryRequest) -> list[PlannedScan]:
    """Place ``request.n_single`` scans and ``request.tracks[length]`` tracks of each length inside
    ``request.area``, reproducibly.

    Files: ``scan_0000.laz`` for single scans, ``track<L>_000/scan_00.laz`` for tracks.

    Raises:
        CrocoInputError: the area cannot hold as many acceptable scans or tracks.
    """
    area, rules = request.area, request.rules
    rng = np.random.default_rng(request.seed)
    size = rules.size_m
    plan: list[PlannedScan] = []
    wanted = [(1, request.n_single)] + sorted(request.tracks.items())
    for length, count in wanted:
        placed, attempts = 0, 0
        while placed < count:
            attempts += 1
            if attempts > rules.max_attempts * count:
                what = "single scans" if length == 1 else f"tracks of {length} scans"
                raise CrocoInputError(
                    f"could place only {placed} of {count} {what} of {size:g} m: too little "
                    f"covered area (min_coverage {rules.min_coverage}, min_points "
                    f"{rules.min_points}); lower the counts or widen the area"
                )
            centres = _path(_random_centre(area, size, rng), length, rules, rng)
            if not all(_acceptable(coverage, area, _square(x, y, size), rules) for x, y in centres):
                continue
            track = "" if length == 1 else f"track{length}_{placed:03d}"
            for k, (x, y) in enumerate(centres):
                name = f"scan_{len(plan):04d}.laz" if length == 1 else f"{track}/scan_{k:02d}.laz"
                plan.append(PlannedScan(name, track, k, round(x, 2), round(y, 2), size))
            placed += 1
    return plan


def _batches(
    plan: list[PlannedScan], coverage: Coverage, max_points: int
) -> Iterator[list[PlannedScan]]:
    """Consecutive groups of the plan whose expected points stay under ``max_points``."""
    batch: list[PlannedScan] = []
    total = 0
    for scan in plan:
        expected = int(coverage.window(_square(scan.center_x, scan.center_y, scan.size_m)).sum())
        if batch and total + expected > max_points:
            yield batch
            batch, total = [], 0
        batch.append(scan)
        total += expected
    if batch:
        yield batch


def _overlaps(a: Bounds, b: Bounds) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _collect(source: CloudSource, batch: list[PlannedScan]) -> dict[str, list[tuple]]:
    """One chunked pass over the files meeting the batch: each scan's point records and xyz."""
    squares = {s.file: _square(s.center_x, s.center_y, s.size_m) for s in batch}
    parts: dict[str, list[tuple]] = {s.file: [] for s in batch}
    for f in source.files:
        mine = [(k, b) for k, b in squares.items() if _overlaps(b, f.bounds)]
        if not mine:
            continue
        for chunk in _chunks(f.path):
            x, y = np.asarray(chunk.x), np.asarray(chunk.y)
            order = np.argsort(x, kind="stable")
            xs = x[order]
            for key, (left, bottom, right, top) in mine:
                cand = order[np.searchsorted(xs, left) : np.searchsorted(xs, right)]
                idx = np.sort(cand[(y[cand] >= bottom) & (y[cand] < top)])
                if len(idx):
                    parts[key].append((chunk.array[idx], x[idx], y[idx], np.asarray(chunk.z)[idx]))
    return parts


def _scan_las(
    parts: list[tuple], template: laspy.LasHeader, crs: CRS, scan: PlannedScan
) -> laspy.LasData:
    """A LAS/LAZ-ready scan: the source's point records, re-offset to the scan, with the CRS."""
    header = laspy.LasHeader(point_format=template.point_format, version=template.version)
    header.scales = template.scales
    left, bottom, _, _ = _square(scan.center_x, scan.center_y, scan.size_m)
    header.offsets = np.array([math.floor(left), math.floor(bottom), template.offsets[2]])
    header.add_crs(crs)
    n = sum(len(p[0]) for p in parts)
    record = laspy.ScaleAwarePointRecord.zeros(n, header=header)
    if n:
        record.array[:] = np.concatenate([p[0] for p in parts])
        # the raw integers were relative to the source file's offsets: rewrite them for ours
        record.x = np.concatenate([p[1] for p in parts])
        record.y = np.concatenate([p[2] for p in parts])
        record.z = np.concatenate([p[3] for p in parts])
    las = laspy.LasData(header, points=record)
    las.update_header()
    return las


def cut_scans(
    source: CloudSource, plan: list[PlannedScan], coverage: Coverage, max_points_in_memory: int
) -> Iterator[tuple[PlannedScan, laspy.LasData]]:
    """Each planned scan with its points, in plan order; one pass over the source per batch."""
    with laspy.open(source.files[0].path) as reader:
        template = reader.header
    for batch in _batches(plan, coverage, max_points_in_memory):
        parts = _collect(source, batch)
        for scan in batch:
            yield scan, _scan_las(parts.pop(scan.file), template, source.crs, scan)


def truth_entry(scan: PlannedScan, las: laspy.LasData, crs: CRS) -> dict[str, object]:
    """One row of ``index.json`` (the Autzen crops' index shape, plus track, order and CRS).

    The centre is that of the points' bounding box, the point a localiser reports; the square's
    centre is kept beside it (they differ where the scan's edge falls on a hole).
    """
    n = len(las.points)
    x, y = np.asarray(las.x), np.asarray(las.y)
    cx = (x.min() + x.max()) / 2 if n else scan.center_x
    cy = (y.min() + y.max()) / 2 if n else scan.center_y
    return {
        "file": scan.file,
        "center_x": round(float(cx), 3),
        "center_y": round(float(cy), 3),
        "size_m": scan.size_m,
        "points": n,
        "square_center_x": scan.center_x,
        "square_center_y": scan.center_y,
        "track": scan.track or None,
        "order": scan.order,
        "crs": crs.to_string(),
    }


def check_counts(n_single: int, tracks: dict[int, int]) -> None:
    """Raise a ``CrocoConfigError`` for negative counts or a track shorter than two scans."""
    if n_single < 0:
        raise bad_param("make_queries.n_single", n_single, ">= 0")
    for length, count in tracks.items():
        if length < 2 or count < 0:
            raise bad_param("make_queries.tracks", tracks, "{length >= 2: count >= 0}")


def split_boxes(
    tile_splits: dict[str, str], bounds_by_name: dict[str, Bounds], splits: list[str]
) -> tuple[Bounds, ...]:
    """Bounds of the tiles or blocks assigned to ``splits``.

    Raises:
        CrocoInputError: no tile or block belongs to those splits.
    """
    boxes = tuple(bounds_by_name[n] for n, s in sorted(tile_splits.items()) if s in splits)
    if not boxes:
        raise CrocoInputError(f"no tile or block of split(s) {splits} in tile_splits")
    return boxes


def make_query_scans(
    source: CloudSource, request: QueryRequest, coverage_cell_m: float, max_points_in_memory: int
) -> Iterator[tuple[str, laspy.LasData, dict[str, object]]]:
    """Plan the scans now (errors surface here), and return a lazy iterator over
    (relative file, points, truth row) that reads the source in batches as it is consumed."""
    check_counts(request.n_single, request.tracks)
    coverage = coverage_grid(source, coverage_cell_m)
    plan = plan_queries(coverage, request)
    cut = cut_scans(source, plan, coverage, max_points_in_memory)
    return ((scan.file, las, truth_entry(scan, las, source.crs)) for scan, las in cut)


def restrict(source: CloudSource, boxes: tuple[Bounds, ...]) -> CloudSource:
    """The source without the files that meet none of ``boxes`` (they would only be read for nothing).

    Raises:
        CrocoInputError: no file meets the boxes.
    """
    files = tuple(f for f in source.files if any(_overlaps(f.bounds, b) for b in boxes))
    if not files:
        raise CrocoInputError(f"no point-cloud file of the source meets the allowed area {boxes}")
    return CloudSource(files, source.crs)


def stack_bounds(stacks: Iterable[Any]) -> dict[str, Bounds]:
    """(left, bottom, right, top) of each aligned tile stack or block, by name (its own CRS)."""
    out = {}
    for s in stacks:
        west, south, east, north = array_bounds(*s.shape, s.transform)
        out[s.name] = (west, south, east, north)
    return out
