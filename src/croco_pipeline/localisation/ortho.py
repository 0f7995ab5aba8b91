"""The map's orthophoto on the working grid, read by windows: the scene's aligned stacks or a GeoTIFF.

Both sources give the same interface (``grid``, ``read``), so the map build streams blocks and never
holds a large ortho in memory; a GeoTIFF in any CRS is warped on the fly (GDAL WarpedVRT, average).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from croco_pipeline.data.align import TargetGrid
from croco_pipeline.data.stack import TileStack
from croco_pipeline.errors import CrocoInputError, bad_param


@dataclass(frozen=True)
class Block:
    """A pixel window of the ortho grid: top-left (row, col) and size."""

    row: int
    col: int
    height: int
    width: int


class StackMosaic:
    """The RGB of aligned tile stacks (one CRS, one GSD, one lattice) as one mosaic grid."""

    def __init__(self, stacks: list[TileStack]) -> None:
        if not stacks:
            raise CrocoInputError("no aligned stack to build the map from (run preprocess first)")
        first = stacks[0]
        for s in stacks[1:]:
            if s.crs != first.crs or not math.isclose(s.gsd, first.gsd, rel_tol=1e-9):
                raise CrocoInputError(
                    f"aligned stacks {first.name} and {s.name} differ in CRS or GSD; one map needs one grid"
                )
        gsd = first.gsd
        lefts = [s.transform.c for s in stacks]
        tops = [s.transform.f for s in stacks]
        left, top = min(lefts), max(tops)
        self._offsets = [
            (round((top - t) / gsd), round((lft - left) / gsd))
            for lft, t in zip(lefts, tops, strict=True)
        ]
        rows = max(o[0] + s.shape[0] for o, s in zip(self._offsets, stacks, strict=True))
        cols = max(o[1] + s.shape[1] for o, s in zip(self._offsets, stacks, strict=True))
        self.grid = TargetGrid(first.crs, Affine(gsd, 0.0, left, 0.0, -gsd, top), (rows, cols))
        self._stacks = stacks
        self.description = f"aligned stacks ({len(stacks)} tiles)"

    def read(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 (3, h, w), valid bool (h, w)) of ``block``; invalid where no stack covers."""
        rgb = np.zeros((3, block.height, block.width), dtype=np.uint8)
        valid = np.zeros((block.height, block.width), dtype=bool)
        for (r0, c0), s in zip(self._offsets, self._stacks, strict=True):
            top, left = max(r0, block.row), max(c0, block.col)
            bottom = min(r0 + s.shape[0], block.row + block.height)
            right = min(c0 + s.shape[1], block.col + block.width)
            if bottom <= top or right <= left:
                continue
            src = (slice(top - r0, bottom - r0), slice(left - c0, right - c0))
            dst = (
                slice(top - block.row, bottom - block.row),
                slice(left - block.col, right - block.col),
            )
            rgb[:, dst[0], dst[1]] = s.rgb[:, src[0], src[1]]
            valid[dst] = s.valid[src]
        return rgb, valid


class GeoTiffOrtho:
    """An RGB GeoTIFF (any CRS) warped to a ``gsd`` grid in ``crs`` (default: its own), by windows."""

    def __init__(self, path: str | Path, gsd: float, crs: str | CRS | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise CrocoInputError(f"ortho raster not found: {self.path}")
        try:
            with rasterio.open(self.path) as src:
                src_crs, bounds, count = src.crs, src.bounds, src.count
        except rasterio.errors.RasterioError as exc:
            raise CrocoInputError(f"cannot read ortho raster {self.path}: {exc}") from exc
        if src_crs is None:
            raise CrocoInputError(f"ortho raster {self.path} has no CRS")
        if count < 3:
            raise CrocoInputError(f"ortho raster {self.path} has {count} band(s); expected RGB")
        dst = CRS.from_user_input(crs) if crs is not None else src_crs
        if not dst.is_projected or not math.isclose(dst.linear_units_factor[1], 1.0):
            raise bad_param(
                "build_map.crs",
                crs,
                f"a projected CRS in metres ({self.path} is in {dst.to_string()!r})",
            )
        b = transform_bounds(src_crs, dst, *bounds, densify_pts=21)
        left, right = math.ceil(b[0] / gsd) * gsd, math.floor(b[2] / gsd) * gsd
        bottom, top = math.ceil(b[1] / gsd) * gsd, math.floor(b[3] / gsd) * gsd
        shape = (round((top - bottom) / gsd), round((right - left) / gsd))
        self.grid = TargetGrid(dst, Affine(gsd, 0.0, left, 0.0, -gsd, top), shape)
        self.description = str(self.path)

    def read(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 (3, h, w), valid bool (h, w)) of ``block``, averaged from the source pixels;
        invalid outside the grid or the source's footprint."""
        rows, cols = self.grid.shape
        rgb = np.zeros((3, block.height, block.width), dtype=np.uint8)
        valid = np.zeros((block.height, block.width), dtype=bool)
        r0, c0 = max(block.row, 0), max(block.col, 0)
        r1, c1 = min(block.row + block.height, rows), min(block.col + block.width, cols)
        if r1 <= r0 or c1 <= c0:
            return rgb, valid
        win = Window(c0, r0, c1 - c0, r1 - r0)
        with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(self.path) as src:
            with WarpedVRT(
                src, crs=self.grid.crs, transform=self.grid.transform, width=cols, height=rows,
                resampling=Resampling.average,
            ) as vrt:  # fmt: skip
                dst = (slice(r0 - block.row, r1 - block.row), slice(c0 - block.col, c1 - block.col))
                rgb[:, dst[0], dst[1]] = vrt.read((1, 2, 3), window=win)
                valid[dst] = vrt.dataset_mask(window=win) > 0
        return rgb, valid


class InMemoryOrtho:
    """Another ortho source read once, whole, into memory (by blocks): localising many scans reads
    small blocks all over the map, each a slice here instead of a warp of the GeoTIFF."""

    def __init__(self, source: GeoTiffOrtho | StackMosaic, block_px: int = 2048) -> None:
        rows, cols = source.grid.shape
        self.rgb = np.zeros((3, rows, cols), dtype=np.uint8)
        self.valid = np.zeros((rows, cols), dtype=bool)
        for b in iter_blocks((rows, cols), block_px, 0):
            rgb, valid = source.read(b)
            self.rgb[:, b.row : b.row + b.height, b.col : b.col + b.width] = rgb
            self.valid[b.row : b.row + b.height, b.col : b.col + b.width] = valid
        self.grid = source.grid
        self.description = source.description

    def read(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 (3, h, w), valid bool (h, w)) of ``block``; invalid outside the grid."""
        rgb = np.zeros((3, block.height, block.width), dtype=np.uint8)
        valid = np.zeros((block.height, block.width), dtype=bool)
        rows, cols = self.grid.shape
        r0, c0 = max(block.row, 0), max(block.col, 0)
        r1, c1 = min(block.row + block.height, rows), min(block.col + block.width, cols)
        if r1 > r0 and c1 > c0:
            dst = (slice(r0 - block.row, r1 - block.row), slice(c0 - block.col, c1 - block.col))
            rgb[:, dst[0], dst[1]] = self.rgb[:, r0:r1, c0:c1]
            valid[dst] = self.valid[r0:r1, c0:c1]
        return rgb, valid


OrthoSource = StackMosaic | GeoTiffOrtho | InMemoryOrtho


def iter_blocks(shape: tuple[int, int], block_px: int, overlap: int) -> list[Block]:
    """Blocks of ``block_px`` + ``overlap`` covering a grid, so windows up to ``overlap + 1`` px
    starting in a block's core fit inside it."""
    out = []
    for r in range(0, shape[0], block_px):
        for c in range(0, shape[1], block_px):
            h, w = min(block_px + overlap, shape[0] - r), min(block_px + overlap, shape[1] - c)
            out.append(Block(r, c, h, w))
    return out


def overview(source: OrthoSource, max_px: int = 1200) -> tuple[np.ndarray, Affine]:
    """A small RGB image (h, w, 3) of the whole ortho for figures, and its transform."""
    rows, cols = source.grid.shape
    step = max(1, math.ceil(max(rows, cols) / max_px))
    parts = []
    for r in range(0, rows, step * 256):
        strip = []
        for c in range(0, cols, step * 256):
            block = Block(r, c, min(step * 256, rows - r), min(step * 256, cols - c))
            strip.append(source.read(block)[0][:, ::step, ::step])
        parts.append(np.concatenate(strip, axis=2))
    image = np.concatenate(parts, axis=1).transpose(1, 2, 0)
    return image, source.grid.transform * Affine.scale(step)


def open_ortho(
    path: Path | None,
    stacks: Callable[[], list[TileStack]],
    gsd: float,
    crs: str | None,
    in_memory_max_px: int = 0,
) -> OrthoSource:
    """The ortho GeoTIFF at ``path`` warped to the working grid, else the aligned stacks' mosaic; a
    GeoTIFF of at most ``in_memory_max_px`` grid pixels is warped once into memory (0: never)."""
    if path is None:
        return StackMosaic(stacks())
    source = GeoTiffOrtho(path, gsd, crs)
    rows, cols = source.grid.shape
    return InMemoryOrtho(source) if rows * cols <= in_memory_max_px else source
