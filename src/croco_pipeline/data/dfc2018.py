"""The DFC2018 Phase 2 release layout (real or synthetic): file names, tile grid, CRS and split.

See ../shared/NOTES.md section 2. Tiles are named by their lower-left corner in EPSG:26915.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CRS_EPSG = 26915
NODATA = -3.4028234663852886e38  # the release's huge float32 placeholder
NODATA_ABS_LIMIT = 1e4  # any |value| above this is treated as nodata too
TILE_WIDTH_M = 596.0
TILE_HEIGHT_M = 601.0
TILE_XMINS = (271460, 272056, 272652, 273248, 273844, 274440, 275036)
TILE_YMINS = (3290290, 3289689)  # north row first
MOSAIC_GSD = 0.5
RGB_GSD = 0.05

RGB_DIR = "Final RGB HR Imagery"
LIDAR_RASTER_DIR = "Lidar GeoTiff Rasters"
POINT_CLOUD_DIR = "Lidar Point Cloud Tiles/C123"

#: elevation product name -> path relative to the release root
ELEVATION_PRODUCTS: dict[str, str] = {
    "DSM_C12": f"{LIDAR_RASTER_DIR}/DSM_C12/UH17c_GEF051.tif",
    "DEM_C123_3msr": f"{LIDAR_RASTER_DIR}/DEM_C123_3msr/UH17_GEG051.tif",
    "DEM_C123_TLI": f"{LIDAR_RASTER_DIR}/DEM_C123_TLI/UH17_GEG05.tif",
    "DEM+B_C123": f"{LIDAR_RASTER_DIR}/DEM+B_C123/UH17_GEM051.tif",
}
#: the paper's stack: first-surface DSM, void-filled bare earth, hybrid ground + building
DEFAULT_CHANNELS = ("DSM_C12", "DEM_C123_TLI", "DEM+B_C123")

#: our documented 8 / 2 / 4 split (the paper's is not recorded), by grid position [row][col], north
#: row first, west to east. Test tiles cover both rows and both ends; validation tiles sit mid-row.
DEFAULT_SPLIT_GRID: tuple[tuple[str, ...], ...] = (
    ("test", "train", "train", "val", "train", "train", "test"),
    ("train", "test", "train", "train", "val", "test", "train"),
)


@dataclass(frozen=True)
class TileId:
    """A tile named by its lower-left corner (integer metres)."""

    xmin: int
    ymin: int

    @property
    def name(self) -> str:
        return f"{self.xmin}_{self.ymin}"

    @property
    def rgb_relpath(self) -> str:
        return f"{RGB_DIR}/UH_NAD83_{self.xmin}_{self.ymin}.tif"

    @property
    def las_relpath(self) -> str:
        return f"{POINT_CLOUD_DIR}/{self.xmin}_{self.ymin}.las"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in EPSG:26915 metres."""
        return (self.xmin, self.ymin, self.xmin + TILE_WIDTH_M, self.ymin + TILE_HEIGHT_M)

    @classmethod
    def parse(cls, name: str) -> TileId:
        x, y = name.split("_")[-2:]
        return cls(int(x), int(y))


def default_split(tiles: list[TileId]) -> dict[str, str]:
    """Split of a 2 x 7 grid of tiles by position (``DEFAULT_SPLIT_GRID``).

    Smaller or larger grids (test scenes) take the grid's splits in reading order, cycling.
    """
    xs = sorted({t.xmin for t in tiles})
    ys = sorted({t.ymin for t in tiles}, reverse=True)
    flat = [s for row in DEFAULT_SPLIT_GRID for s in row]
    out: dict[str, str] = {}
    for t in tiles:
        r, c = ys.index(t.ymin), xs.index(t.xmin)
        if len(ys) == 2 and len(xs) == 7:
            out[t.name] = DEFAULT_SPLIT_GRID[r][c]
        else:
            out[t.name] = flat[(r * len(xs) + c) % len(flat)]
    return out


def all_tiles() -> list[TileId]:
    """The 14 tiles, north row first, west to east."""
    return [TileId(x, y) for y in TILE_YMINS for x in TILE_XMINS]


def mosaic_bounds() -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of the 2 x 7 mosaic."""
    return (
        float(min(TILE_XMINS)),
        float(min(TILE_YMINS)),
        max(TILE_XMINS) + TILE_WIDTH_M,
        max(TILE_YMINS) + TILE_HEIGHT_M,
    )


def expected_layout() -> list[str]:
    """Every path (relative to the release root) a Phase 2 release must hold for our readers."""
    return [t.rgb_relpath for t in all_tiles()] + list(ELEVATION_PRODUCTS.values())


def missing_files(root: str | Path, channels: tuple[str, ...] = DEFAULT_CHANNELS) -> list[str]:
    """Relative paths of the RGB tiles and the requested elevation products absent under ``root``."""
    root = Path(root)
    wanted = [t.rgb_relpath for t in all_tiles()] + [ELEVATION_PRODUCTS[c] for c in channels]
    return [p for p in wanted if not (root / p).exists()]
