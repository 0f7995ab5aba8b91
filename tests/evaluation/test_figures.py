"""Tests of the figures (render and save) and of the heatmap GeoTIFF's geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from torch import Tensor, nn

from croco_pipeline.data.geo import write_geotiff
from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.evaluation.figures import (
    failure_gallery_figure,
    heatmap_figure,
    heatmap_geotiff,
    retrieval_map_figure,
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


def test_heatmap_figure_renders(stacks: list[TileStack], tmp_path: Path) -> None:
    grid = patch_grid(stacks[0], SIZE, SIZE)
    sims = np.random.default_rng(0).uniform(-1, 1, len(grid))
    fig = heatmap_figure(stacks[0], grid, sims, true_index=3, top_indices=[3, 0, 7, 1, 2])
    fig.savefig(tmp_path / "heat.png")
    assert (tmp_path / "heat.png").stat().st_size > 1000


def test_retrieval_map_and_failure_gallery_render(
    stacks: list[TileStack], records: pd.DataFrame, tmp_path: Path
) -> None:
    assert (~records["hit1"]).any()
    for direction in ("elevation_to_rgb", "rgb_to_elevation"):
        retrieval_map_figure(stacks, records, direction).savefig(tmp_path / f"map_{direction}.png")
        fig = failure_gallery_figure(stacks, records, n=3, direction=direction)
        assert len(fig.axes) == 3 * 7
        fig.savefig(tmp_path / f"fail_{direction}.png")
    none = failure_gallery_figure(stacks, records[records["hit1"]], n=3)
    none.savefig(tmp_path / "none.png")
    assert len(list(tmp_path.glob("*.png"))) == 5
