"""LAS/LAZ point clouds as plain arrays: reading with clear errors, and moving points to the map CRS.

Every failure names the file: empty, truncated, without a CRS, too large, or not transformable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import laspy
import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from croco_pipeline.errors import CrocoInputError

#: ASPRS LAS classification codes used for the bare-earth and ground + building channels
GROUND, BUILDING = 2, 6
POINT_CLOUD_SUFFIXES = (".las", ".laz")


class QuerySkipped(CrocoInputError):
    """A query file left out on purpose (too large, excluded): reported, never localised."""


@dataclass
class PointCloud:
    """Points (x, y, z float64), their ASPRS classes and return intensities (each None when the
    file has none: all zero) and CRS."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    classification: np.ndarray | None
    crs: CRS
    source: str
    intensity: np.ndarray | None = None

    def __len__(self) -> int:
        return int(len(self.x))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the points in their CRS."""
        return (float(self.x.min()), float(self.y.min()), float(self.x.max()), float(self.y.max()))


def _crs_of(header: laspy.LasHeader, path: Path, assume_crs: str | None) -> CRS:
    try:
        crs = header.parse_crs()
    except Exception as exc:  # laspy surfaces malformed GeoTIFF keys / WKT VLRs in many ways
        raise CrocoInputError(
            f"point cloud {path}: its CRS record cannot be parsed: {exc}"
        ) from exc
    if crs is not None:
        return CRS.from_user_input(crs)
    if assume_crs is None:
        raise CrocoInputError(
            f"point cloud {path} has no CRS; set parameter 'localize.assume_crs' (e.g. EPSG:26910) "
            "if you know it"
        )
    try:
        return CRS.from_user_input(assume_crs)
    except CRSError as exc:
        raise CrocoInputError(f"parameter 'localize.assume_crs' = {assume_crs!r}: {exc}") from exc


def read_point_cloud(
    path: str | os.PathLike[str], assume_crs: str | None = None, max_points: int | None = None
) -> PointCloud:
    """Read a LAS/LAZ file's points, classes and CRS.

    Raises:
        QuerySkipped: more than ``max_points`` points (checked from the header, before decoding).
        CrocoInputError: missing, empty, truncated or corrupt file, no points, no CRS (and no
            ``assume_crs``).
    """
    path = Path(path)
    if not path.is_file():
        raise CrocoInputError(f"point cloud not found: {path}")
    if path.stat().st_size == 0:
        raise CrocoInputError(f"point cloud {path} is empty (0 bytes)")
    try:
        with laspy.open(path) as reader:
            header = reader.header
            if max_points is not None and header.point_count > max_points:
                raise QuerySkipped(
                    f"point cloud {path} has {header.point_count:,} points, more than parameter "
                    f"'localize.max_points' = {max_points:,}: skipped"
                )
            crs = _crs_of(header, path, assume_crs)
            las = reader.read()
    except CrocoInputError:
        raise
    except (laspy.errors.LaspyException, RuntimeError, OSError, ValueError) as exc:
        # lazrs reports a truncated LAZ as a RuntimeError subclass ("failed to fill whole buffer")
        raise CrocoInputError(
            f"cannot read point cloud {path} (truncated or corrupt?): {exc}"
        ) from exc
    if len(las.points) == 0:
        raise CrocoInputError(f"point cloud {path} holds no points")
    classes = np.asarray(las.classification, dtype=np.uint8)
    intensity = np.asarray(las.intensity, dtype=np.float32)
    return PointCloud(
        x=np.asarray(las.x, dtype=np.float64),
        y=np.asarray(las.y, dtype=np.float64),
        z=np.asarray(las.z, dtype=np.float64),
        classification=classes if classes.any() else None,
        crs=crs,
        source=str(path),
        intensity=intensity if intensity.any() else None,
    )


def to_crs(cloud: PointCloud, dst_crs: object) -> PointCloud:
    """The cloud with x, y moved to ``dst_crs`` (z unchanged); itself when the CRSs are equal.

    Raises:
        CrocoInputError: the CRS pair has no transformation, or points land outside its domain.
    """
    dst = CRS.from_user_input(dst_crs)
    if cloud.crs == dst:
        return cloud
    try:
        transformer = Transformer.from_crs(cloud.crs, dst, always_xy=True)
        x, y = transformer.transform(cloud.x, cloud.y, errcheck=True)
    except (ProjError, CRSError) as exc:
        raise CrocoInputError(
            f"point cloud {cloud.source}: cannot transform its points from {cloud.crs.name!r} to "
            f"the map CRS {dst.name!r}: {exc}"
        ) from exc
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise CrocoInputError(
            f"point cloud {cloud.source}: its points do not map into the map CRS {dst.name!r}"
        )
    return replace(cloud, x=x, y=y, crs=dst)


def concatenate(clouds: list[PointCloud], name: str) -> PointCloud:
    """One cloud from several in the same CRS (a track's scans); classes and intensities kept only
    if all have them."""
    if not clouds:
        raise CrocoInputError(f"track {name} has no readable scan")
    classes = [c.classification for c in clouds]
    intensities = [c.intensity for c in clouds]
    return PointCloud(
        x=np.concatenate([c.x for c in clouds]),
        y=np.concatenate([c.y for c in clouds]),
        z=np.concatenate([c.z for c in clouds]),
        classification=None if any(c is None for c in classes) else np.concatenate(classes),  # type: ignore[arg-type]
        crs=clouds[0].crs,
        source=name,
        intensity=(
            None if any(i is None for i in intensities) else np.concatenate(intensities)  # type: ignore[arg-type]
        ),
    )
