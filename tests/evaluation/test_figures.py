"""Tests of what the figures draw (boxes, colours, positions, images) and of the heatmap GeoTIFF's geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from matplotlib.colors import to_hex
from rasterio.crs import CRS
from torch import Tensor, nn

from croco_pipeline.data.geo import write_geotiff
from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.evaluation.figures import (
    failure_gallery_figure,
    heatmap_figure,
    heatmap_geotiff,
    retrieval_map_figure,
    similarity_grid,
)
from croco_pipeline.evaluation.protocols import paper_protocol
from fixtures_geo import patch_grid

SIZE = 16


def _stack(t: int) -> TileStack:
    rng = np.random.default_rng(t)
    return TileStack(
        name=f"tile{t}",
        rgb=rng.integers(0, 256, (3, 64, 80), dtype=np.uint8),
        elevation=rng.normal(20, 5, (3, 64, 80)).astype(np.float32),
        valid=np.ones((64, 80), bool),
        crs=CRS.from_epsg(26915),
        transform=Affine(0.5, 0, 271460.0 + 40 * t, 0, -0.5, 3290891.0),
        channels=("dsm", "dem", "dem_b"),
        split="test",
    )


class RandomModel(nn.Module):
    def _embed(self, x: Tensor) -> Tensor:
        return nn.functional.normalize(x.flatten(1)[:, :32] - 0.5, dim=1)

    embed_rgb = _embed
    embed_elevation = _embed


@pytest.fixture(scope="module")
def stacks() -> list[TileStack]:
    return [_stack(0), _stack(1)]


@pytest.fixture(scope="module")
def records(stacks: list[TileStack]) -> pd.DataFrame:
    index = pd.concat([patch_grid(s, SIZE, SIZE) for s in stacks], ignore_index=True)
    stats = NormalisationStats("global_minmax", 0.0, 40.0, 1.0)
    return paper_protocol(RandomModel(), stacks, index, stats)["records"]


@pytest.mark.parametrize(("stride", "r0", "c0"), [(SIZE, 0, 0), (SIZE, 3, 5), (4, 2, 1)])
def test_heatmap_geotiff_pixel_centres_are_patch_centres(
    stacks: list[TileStack], stride: int, r0: int, c0: int, tmp_path: Path
) -> None:
    stack = stacks[1]
    grid = patch_grid(stack, SIZE, stride, r0, c0)
    sims = np.linspace(-1, 1, len(grid)).astype(np.float32)
    raster = heatmap_geotiff(stack, grid, sims)
    n_rows, n_cols = raster.shape
    assert raster.crs == stack.crs and raster.data.dtype == np.float32
    assert (n_rows, n_cols) == (grid["row"].nunique(), grid["col"].nunique())
    assert raster.gsd == pytest.approx(stack.gsd * stride)
    i = (grid["row"].to_numpy() - r0) // stride
    j = (grid["col"].to_numpy() - c0) // stride
    t = raster.transform
    x, y = t.c + t.a * (j + 0.5) + t.b * (i + 0.5), t.f + t.d * (j + 0.5) + t.e * (i + 0.5)
    np.testing.assert_allclose(x, grid["x"].to_numpy())
    np.testing.assert_allclose(y, grid["y"].to_numpy())
    np.testing.assert_array_equal(raster.data[0, i, j], sims)
    write_geotiff(raster, tmp_path / "heat.tif")
    with rasterio.open(tmp_path / "heat.tif") as src:
        assert src.transform.almost_equals(raster.transform) and src.crs == stack.crs
        np.testing.assert_array_equal(src.read(1), raster.data[0])
    if stride == SIZE and r0 == c0 == 0:  # the non-overlapping grid: origin at the tile corner
        assert raster.transform.c == stack.transform.c and raster.transform.f == stack.transform.f


def test_heatmap_geotiff_holes_are_nan_and_irregular_grid_raises(stacks: list[TileStack]) -> None:
    grid = patch_grid(stacks[0], SIZE, SIZE).drop(index=[1])  # e.g. a patch dropped for nodata
    raster = heatmap_geotiff(stacks[0], grid, np.zeros(len(grid)))
    assert np.isnan(raster.data[0, 0, 1]) and raster.nodata is not None and np.isnan(raster.nodata)
    irregular = grid.assign(col=grid["col"].replace(48, 50))
    with pytest.raises(ValueError, match="not regular"):
        heatmap_geotiff(stacks[0], irregular, np.zeros(len(grid)))


def test_heatmap_figure_draws_truth_top5_and_the_similarity_grid(stacks: list[TileStack]) -> None:
    grid = patch_grid(stacks[0], SIZE, SIZE)
    true_index, top = 7, [7, 0, 3, 1, 2]
    sims = np.random.default_rng(0).uniform(-1, 0.5, len(grid))
    sims[true_index] = 0.9  # the query's own patch is the most similar
    fig = heatmap_figure(stacks[0], grid, sims, true_index=true_index, top_indices=top)
    ax_rgb, ax_sim = fig.axes[:2]
    boxes = {
        (p.get_x(), p.get_y(), p.get_width()): to_hex(p.get_edgecolor()) for p in ax_rgb.patches
    }
    r, c = grid.loc[true_index, ["row", "col"]]
    assert boxes.pop((c, r, SIZE)) == to_hex("lime")  # the true patch, in RGB pixel coordinates
    expected = {(grid.loc[i, "col"], grid.loc[i, "row"], SIZE) for i in top if i != true_index}
    assert set(boxes) == expected and set(boxes.values()) == {to_hex("red")}
    shown = ax_sim.images[0].get_array()
    np.testing.assert_allclose(shown, similarity_grid(grid, sims))
    i, j = np.unravel_index(np.nanargmax(shown), shown.shape)
    (truth_cell,) = [p for p in ax_sim.patches if to_hex(p.get_edgecolor()) == to_hex("lime")]
    assert (truth_cell.get_x() + 0.5, truth_cell.get_y() + 0.5) == (j, i)  # maximum at the truth
    ranks = {t.get_text(): t.get_position() for t in ax_sim.texts}
    assert ranks["1"] == (j, i) and len(ranks) == 5


def test_retrieval_map_colours_hits_and_misses_at_their_map_positions(
    stacks: list[TileStack], records: pd.DataFrame
) -> None:
    records = records.assign(hit1=records["query_index"] % 3 == 0)  # some hits, some misses
    direction = "elevation_to_rgb"
    fig = retrieval_map_figure(stacks, records, direction)
    (ax,) = fig.axes
    assert len(ax.collections) == len(stacks)
    for stack, collection in zip(stacks, ax.collections, strict=True):
        recs = records[(records["direction"] == direction) & (records["tile"] == stack.name)]
        colours = [to_hex(c, keep_alpha=False) for c in collection.get_facecolors()]
        expected = [to_hex("limegreen") if h else to_hex("red") for h in recs["hit1"]]
        assert colours == expected
        for path, (_, rec) in zip(collection.get_paths(), recs.iterrows(), strict=True):
            (x0, y0), (x1, y1) = path.get_extents().get_points()
            half = rec["size_px"] * stack.gsd / 2
            assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((rec["x"], rec["y"]))
            assert (x1 - x0, y1 - y0) == pytest.approx((2 * half, 2 * half))


def test_failure_gallery_shows_query_truth_and_top5(
    stacks: list[TileStack], records: pd.DataFrame
) -> None:
    for direction in ("elevation_to_rgb", "rgb_to_elevation"):
        fig = failure_gallery_figure(stacks, records, n=3, direction=direction)
        assert len(fig.axes) == 3 * 7
        failures = records[(records["direction"] == direction) & ~records["hit1"]].head(3)
        query_mod, gallery_mod = direction.split("_to_")
        for k, (_, rec) in enumerate(failures.iterrows()):
            row_axes = fig.axes[7 * k : 7 * (k + 1)]
            titles = [a.get_title() for a in row_axes]
            scores = [f"#{i} {s:.2f}" for i, s in enumerate(rec["top5_scores"], start=1)]
            assert titles == [f"query ({query_mod})", "truth", *scores]
            stack = next(s for s in stacks if s.name == rec["tile"])
            r, c, size = int(rec["query_row"]), int(rec["query_col"]), int(rec["size_px"])
            truth = row_axes[1].images[0].get_array()
            expected = (
                np.moveaxis(stack.rgb[:, r : r + size, c : c + size], 0, -1)
                if gallery_mod == "rgb"
                else stack.elevation[0, r : r + size, c : c + size]
            )
            np.testing.assert_array_equal(truth, expected)
    none = failure_gallery_figure(stacks, records[records["hit1"]], n=3)
    assert [t.get_text() for t in none.texts] == ["no elevation_to_rgb failures"]
