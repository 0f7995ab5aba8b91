"""Figures of the paper's kind (Fig. 5 heatmap, Fig. 6/7 retrieval map, Fig. 8 failures) and the
similarity heatmap as a georeferenced raster. Figures are built on Agg without pyplot's global state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from affine import Affine
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from croco_pipeline.data.geo import GeoRaster
from croco_pipeline.data.stack import TileStack
from croco_pipeline.data.windows import cut_windows

MAX_DISPLAY_PX = 1200  # tiles are decimated to about this size for display


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # Agg canvas: renders and saves with no display or pyplot
    return fig


def _grid_stride(values: np.ndarray, size: int) -> int:
    """The grid step along one axis; steps that are multiples of it are holes (dropped patches)."""
    steps = np.diff(np.unique(values))
    if not len(steps):
        return size
    stride = int(np.gcd.reduce(steps))
    if stride != steps.min():
        raise ValueError(f"patch grid is not regular: row/col steps {np.unique(steps).tolist()}")
    return stride


def _grid_cells(grid: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row / col pixel origins of the regular grid's cells and each patch's cell (i, j) in it.

    Patches dropped for nodata leave NaN cells, not a shifted grid.
    """
    rows, cols = grid["row"].to_numpy(), grid["col"].to_numpy()
    size = int(grid["size_px"].iloc[0])
    sr, sc = _grid_stride(rows, size), _grid_stride(cols, size)
    i, j = (rows - rows.min()) // sr, (cols - cols.min()) // sc
    urows = rows.min() + sr * np.arange(i.max() + 1)
    ucols = cols.min() + sc * np.arange(j.max() + 1)
    return urows, ucols, i, j


def similarity_grid(grid: pd.DataFrame, similarities: np.ndarray) -> np.ndarray:
    """Lay per-patch values onto the tile's patch grid -> float32 (n_rows, n_cols), NaN where none."""
    similarities = np.asarray(similarities, np.float32)
    if len(similarities) != len(grid):
        raise ValueError(f"{len(similarities)} similarities for a grid of {len(grid)} patches")
    urows, ucols, i, j = _grid_cells(grid)
    out = np.full((len(urows), len(ucols)), np.nan, np.float32)
    out[i, j] = similarities
    return out


def heatmap_geotiff(stack: TileStack, grid: pd.DataFrame, similarities: np.ndarray) -> GeoRaster:
    """The similarity grid as a float32 raster whose pixels are the patches, in the stack's CRS.

    Pixel size = grid stride; each pixel is centred on its patch's centre, so for the
    non-overlapping grid (stride = size) the origin is the first patch's top-left corner.
    """
    size = int(grid["size_px"].iloc[0])
    urows, ucols, _, _ = _grid_cells(grid)
    sr, sc = _grid_stride(urows, size), _grid_stride(ucols, size)
    offset = Affine.translation(ucols[0] + (size - sc) / 2, urows[0] + (size - sr) / 2)
    transform = stack.transform * offset * Affine.scale(sc, sr)
    data = similarity_grid(grid, similarities)
    return GeoRaster(data, stack.crs, transform, float("nan"), ("cosine_similarity",))


def _display_rgb(stack: TileStack) -> tuple[np.ndarray, int]:
    step = max(1, int(np.ceil(max(stack.shape) / MAX_DISPLAY_PX)))
    return np.moveaxis(stack.rgb[:, ::step, ::step], 0, -1), step


def heatmap_figure(
    stack: TileStack,
    grid: pd.DataFrame,
    similarities: np.ndarray,
    true_index: int,
    top_indices: Sequence[int] = (),
) -> Figure:
    """Fig. 5: one query's similarity over the tile's patch grid beside the RGB tile.

    The true patch is outlined in lime, the top-5 retrieved patches in red with their ranks.
    """
    fig = _new_figure(11, 5)
    ax_rgb, ax_sim = fig.subplots(1, 2)
    rgb, _ = _display_rgb(stack)
    h, w = stack.shape
    ax_rgb.imshow(rgb, extent=(0, w, h, 0))
    _, _, gi, gj = _grid_cells(grid)
    for rank, idx in enumerate(top_indices, start=1):
        r, c, s = grid.iloc[idx][["row", "col", "size_px"]].astype(int)
        ax_rgb.add_patch(Rectangle((c, r), s, s, fill=False, ec="red", lw=1, ls="--"))
        ax_rgb.text(c, r, str(rank), color="red", fontsize=7, va="bottom")
        ax_sim.text(gj[idx], gi[idx], str(rank), color="red", ha="center", va="center", fontsize=8)
    r, c, s = grid.iloc[true_index][["row", "col", "size_px"]].astype(int)
    ax_rgb.add_patch(Rectangle((c, r), s, s, fill=False, ec="lime", lw=2))
    ax_rgb.set_title(f"RGB tile {stack.name}: true patch (lime), top-5 (red)")
    im = ax_sim.imshow(similarity_grid(grid, similarities), cmap="viridis")
    ax_sim.add_patch(
        Rectangle((gj[true_index] - 0.5, gi[true_index] - 0.5), 1, 1, fill=False, ec="lime", lw=2)
    )
    ax_sim.set_title("cosine similarity over the patch grid")
    fig.colorbar(im, ax=ax_sim, shrink=0.8)
    return fig


def _map_extent(stack: TileStack) -> tuple[float, float, float, float]:
    h, w = stack.shape
    (x0, y0), (x1, y1) = stack.transform * (0, 0), stack.transform * (w, h)
    return (min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1))


def retrieval_map_figure(
    stacks: Sequence[TileStack], records: pd.DataFrame, direction: str = "elevation_to_rgb"
) -> Figure:
    """Fig. 6/7: the test tiles in map coordinates, each query patch green (top-1 hit) or red."""
    fig = _new_figure(12, 6)
    ax: Axes = fig.subplots()
    recs = records[records["direction"] == direction] if "direction" in records else records
    for stack in stacks:
        ax.imshow(_display_rgb(stack)[0], extent=_map_extent(stack))
        tile = recs[recs["tile"] == stack.name]
        t, gsd = stack.transform, stack.gsd
        boxes = []
        for r, c, s in tile[["query_row", "query_col", "size_px"]].to_numpy():
            x, y = t * (c, r + s)  # lower-left corner of a north-up patch
            boxes.append(Rectangle((x, y), s * gsd, s * gsd))
        colours = np.where(tile["hit1"].to_numpy(bool), "limegreen", "red")
        ax.add_collection(PatchCollection(boxes, fc=colours, ec="none", alpha=0.45))
    extents = np.array([_map_extent(s) for s in stacks])
    ax.set_xlim(extents[:, 0].min(), extents[:, 1].max())
    ax.set_ylim(extents[:, 2].min(), extents[:, 3].max())
    ax.set_aspect("equal")
    hit = float(recs["hit1"].mean()) if len(recs) else float("nan")
    ax.set_title(f"{direction}: top-1 correct (green) / wrong (red), top-1 = {hit:.2f}")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    return fig


def _patch_image(stack: TileStack, modality: str, row: int, col: int, size: int) -> np.ndarray:
    """One patch for display: RGB as (s, s, 3), elevation as its first channel (s, s)."""
    if modality == "rgb":
        return np.moveaxis(cut_windows(stack.rgb, np.array([row]), np.array([col]), size)[0], 0, -1)
    return cut_windows(stack.elevation[:1], np.array([row]), np.array([col]), size)[0, 0]


def failure_gallery_figure(
    stacks: Sequence[TileStack],
    records: pd.DataFrame,
    n: int = 6,
    direction: str = "elevation_to_rgb",
) -> Figure:
    """Fig. 8: top-1 failures: the query, the true gallery patch and the top-5 retrieved ones."""
    by_name = {s.name: s for s in stacks}
    recs = records[records["direction"] == direction] if "direction" in records else records
    failures = recs[~recs["hit1"].to_numpy(bool) & recs["tile"].isin(by_name)].head(n)
    query_mod, gallery_mod = direction.split("_to_")
    if failures.empty:
        fig = _new_figure(4, 1)
        fig.text(0.5, 0.5, f"no {direction} failures", ha="center", va="center")
        return fig
    fig = _new_figure(14, 2.1 * len(failures))
    axes = np.atleast_2d(fig.subplots(len(failures), 7, squeeze=False))
    for ax_row, (_, rec) in zip(axes, failures.iterrows(), strict=True):
        stack, s = by_name[rec["tile"]], int(rec["size_px"])
        r, c = int(rec["query_row"]), int(rec["query_col"])
        cells = [(query_mod, r, c, f"query ({query_mod})"), (gallery_mod, r, c, "truth")]
        for k, (rr, cc, score) in enumerate(
            zip(rec["top5_rows"], rec["top5_cols"], rec["top5_scores"], strict=True), start=1
        ):
            cells.append((gallery_mod, int(rr), int(cc), f"#{k} {score:.2f}"))
        for ax in ax_row:
            ax.set_axis_off()
        for ax, (mod, rr, cc, title) in zip(ax_row, cells, strict=False):
            ax.imshow(_patch_image(stack, mod, rr, cc, s), cmap="terrain")
            ax.set_title(title, fontsize=8)
    fig.suptitle(f"{direction}: top-1 failures; #k = k-th retrieved, with its cosine score")
    return fig


def stack_figures(figures: Sequence[Figure], dpi: int = 80) -> Figure:
    """Render figures and stack them vertically into one figure (one PNG / one MLflow artifact)."""
    if not figures:
        raise ValueError("stack_figures needs at least one figure")
    images = []
    for f in figures:
        f.set_dpi(dpi)
        f.canvas.draw()
        images.append(np.asarray(f.canvas.buffer_rgba())[..., :3])  # type: ignore[attr-defined]
    width = max(im.shape[1] for im in images)
    padded = [
        np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=255) for im in images
    ]
    canvas = np.concatenate(padded)
    out = Figure(figsize=(width / dpi, canvas.shape[0] / dpi), dpi=dpi)
    FigureCanvasAgg(out)
    ax = out.add_axes((0, 0, 1, 1))
    ax.imshow(canvas)
    ax.axis("off")
    return out
