"""Rasterising point clouds: against a slow reference, on a real LAZ file with a CRS, and on the
Autzen cloud against the scene's own DSM (the way the training elevation was made)."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from affine import Affine
from conftest import MAP_CRS, write_las

from croco_pipeline.data.align import TargetGrid, align_scene
from croco_pipeline.data.source import SceneSource
from croco_pipeline.errors import CrocoConfigError, CrocoInputError
from croco_pipeline.localisation.pointcloud import GROUND, read_point_cloud
from croco_pipeline.localisation.rasterise import (
    highest_per_cell,
    rasterise_cloud,
    rasterise_scene_channel,
    snapped_grid,
)
from croco_pipeline.pipelines.ingest.nodes import ingest_source
from fixtures_geo import UTM15, write_square_pair

AUTZEN = Path(__file__).resolve().parents[3] / "shared" / "data" / "autzen"
CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


def slow_highest(x, y, z, grid: TargetGrid) -> np.ndarray:
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    t = grid.transform
    for xi, yi, zi in zip(x, y, z, strict=True):
        c, r = int((xi - t.c) // t.a), int((yi - t.f) // t.e)
        if np.isnan(out[r, c]) or zi > out[r, c]:
            out[r, c] = zi
    return out


def test_highest_per_cell_matches_slow_reference() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(100, 130, 3000), rng.uniform(200, 220, 3000)
    z = rng.normal(10, 5, 3000)
    grid = snapped_grid((100, 200, 130, 220), MAP_CRS, 0.5, 2.0)
    assert grid.shape == (40, 60) and grid.transform == Affine(0.5, 0, 100, 0, -0.5, 220)
    fast, slow = highest_per_cell(x, y, z, grid), slow_highest(x, y, z, grid)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    np.testing.assert_allclose(fast[~np.isnan(fast)], slow[~np.isnan(slow)], rtol=1e-6)


def test_rasterise_real_laz_keeps_geometry_and_averages_native_cells(tmp_path: Path) -> None:
    # 4 x 4 native cells of 0.5 m per 2 m cell: heights known per native cell -> the 2 m value is
    # their bilinear-weighted mean, equal to the plain mean on a linear ramp.
    xs, ys = np.meshgrid(np.arange(0.25, 32, 0.5), np.arange(0.25, 32, 0.5))
    x, y = 500000 + xs.ravel(), 4000000 + ys.ravel()
    z = 100 + 0.5 * (x - 500000)  # a ramp in x
    path = tmp_path / "ramp.laz"
    write_las(path, x, y, z)
    cloud = read_point_cloud(path)
    assert cloud.crs.to_epsg() == 26915
    q = rasterise_cloud(cloud, ["dsm"], 2.0, 0.5)
    assert q.transform == Affine(2.0, 0, 500000, 0, -2.0, 4000032) and q.shape == (16, 16)
    assert q.valid.all()
    expected = 100 + 0.5 * (1.0 + 2.0 * np.arange(16))  # cell-centre x of each 2 m column
    np.testing.assert_allclose(q.elevation[0, 5, 2:-2], expected[2:-2], atol=0.02)


def test_ground_channels_from_classified_points_and_clear_error_without(tmp_path: Path) -> None:
    xs, ys = np.meshgrid(np.arange(0.25, 8, 0.5), np.arange(0.25, 8, 0.5))
    x, y = 500000 + xs.ravel(), 4000000 + ys.ravel()
    tree = (xs.ravel() > 2) & (xs.ravel() < 4) & (ys.ravel() > 2) & (ys.ravel() < 4)
    z = np.where(tree, 20.0, 5.0)
    classes = np.where(tree, 5, GROUND).astype(np.uint8)
    path = tmp_path / "classes.las"
    write_las(path, x, y, z, classification=classes)
    q = rasterise_cloud(read_point_cloud(path), ["DSM_C12", "DEM_C123_TLI"], 2.0, 0.5)
    assert q.elevation[0].max() > 12.0  # the tree stands in the DSM
    np.testing.assert_allclose(q.elevation[1], 5.0, atol=1e-3)  # bare earth from ground points only
    bare = tmp_path / "unclassified.las"
    write_las(bare, x, y, z)
    with pytest.raises(
        CrocoInputError, match=r"DEM_C123_TLI.*unclassified.las|unclassified.las.*DEM_C123_TLI"
    ):
        rasterise_cloud(read_point_cloud(bare), ["DSM_C12", "DEM_C123_TLI"], 2.0, 0.5)
    with pytest.raises(CrocoConfigError, match="NDVI"):
        rasterise_cloud(read_point_cloud(path), ["NDVI"], 2.0, 0.5)


@pytest.mark.skipif(not (AUTZEN / "lidar").is_dir(), reason="../shared/data/autzen is not present")
def test_autzen_cloud_matches_the_scene_dsm_averaged_to_2m() -> None:
    from croco_pipeline.data.align import resample_to
    from croco_pipeline.data.geo import read_geotiff
    from croco_pipeline.data.readers import mask_elevation
    from croco_pipeline.localisation.rasterise import ELEVATION_RESAMPLING

    dsm = mask_elevation(read_geotiff(AUTZEN / "dsm" / "autzen_dsm_0.5m.tif"))
    for path in sorted((AUTZEN / "lidar").glob("autzen_49*.laz"))[:3]:
        cloud = read_point_cloud(path)
        errors = {}
        for native in (0.5, 2.0):  # the finding: native 0.5 m agrees, 2 m directly does not
            q = rasterise_cloud(cloud, ["dsm"], 2.0, native)
            grid = TargetGrid(q.crs, q.transform, q.shape)
            ref = resample_to(dsm, grid, ELEVATION_RESAMPLING)[0]
            inner = q.valid & np.isfinite(ref)
            inner[:2], inner[-2:], inner[:, :2], inner[:, -2:] = False, False, False, False
            errors[native] = float(np.sqrt(np.mean((q.elevation[0] - ref)[inner] ** 2)))
        assert errors[0.5] < 0.5, (path.name, errors)


def slow_mean(x, y, values, grid: TargetGrid) -> np.ndarray:
    total, count = np.zeros(grid.shape), np.zeros(grid.shape)
    t = grid.transform
    for xi, yi, vi in zip(x, y, values, strict=True):
        c, r = int((xi - t.c) // t.a), int((yi - t.f) // t.e)
        total[r, c] += vi
        count[r, c] += 1
    with np.errstate(invalid="ignore"):
        return total / count


def test_intensity_is_the_mean_return_intensity_per_native_cell(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x, y = 500000 + rng.uniform(0, 8, 600), 4000000 + rng.uniform(0, 6, 600)
    bright = x >= 500004  # the right half is a painted surface, the left asphalt
    intensity = np.where(bright, 200, 40) + rng.integers(-10, 11, 600)
    path = tmp_path / "paint.laz"
    write_las(path, x, y, rng.normal(100, 3, 600), intensity=intensity)
    cloud = read_point_cloud(path)
    scene = rasterise_scene_channel(cloud, "intensity", 1.0)
    assert scene.crs.to_epsg() == 26915
    assert scene.transform == Affine(1.0, 0, 500000, 0, -1.0, 4000006)
    expected = slow_mean(x, y, intensity, snapped_grid(cloud.bounds, cloud.crs, 1.0, 1.0))
    np.testing.assert_allclose(scene.data[0], expected, rtol=1e-5)
    # a query's intensity channel is made the same way, then resampled: 2 m cells away from the
    # paint's edge hold the plain means of their points
    q = rasterise_cloud(cloud, ["dsm", "intensity"], 2.0, 1.0)
    assert q.elevation.shape == (2, 3, 4)
    left = (x < 500002) & (y >= 4000002) & (y < 4000004)
    assert q.elevation[1, 1, 0] == pytest.approx(np.mean(intensity[left]), abs=4.0)
    assert q.elevation[1, 1, 3] > 180 > 60 > q.elevation[1, 1, 0]


def test_a_cloud_without_intensities_cannot_give_the_channel(tmp_path: Path) -> None:
    path = tmp_path / "dark.laz"
    write_las(path, np.array([500000.0, 500010.0]), np.array([4e6, 4e6 + 10]), np.ones(2))
    cloud = read_point_cloud(path)
    assert cloud.intensity is None
    with pytest.raises(CrocoInputError, match=r"dark\.laz.*'intensity'"):
        rasterise_cloud(cloud, ["dsm", "intensity"], 2.0, 0.5)


def test_a_laz_channel_source_is_ingested_and_aligned_with_the_dsm(tmp_path: Path) -> None:
    # the square pair's DSM (EPSG:26915, 0.5 m, 100 m) + a cloud over the same ground whose
    # intensity is bright on the pair's 10 m block and dark elsewhere
    pair = write_square_pair(tmp_path)
    rng = np.random.default_rng(5)
    x, y = 500000 + rng.uniform(0, 100, 40000), 3300000 + rng.uniform(0, 100, 40000)
    left, bottom, right, top = pair.square
    inside = (x >= left) & (x < right) & (y >= bottom) & (y < top)
    write_las(tmp_path / "scene.laz", x, y, np.zeros_like(x), UTM15, None,
              np.where(inside, 220, 30))  # fmt: skip
    params = yaml.safe_load((CONF / "parameters_preprocess.yml").read_text())["preprocess"]
    params.update(gsd=1.0, channels=["dsm", "intensity"], cloud_gsd_m=0.5)
    elevation = {"dsm": pair.dsm, "intensity": tmp_path / "scene.laz"}
    rasters, manifest = ingest_source(SceneSource("raster_pair", rgb=pair.rgb,
                                                  elevation=elevation), params)  # fmt: skip
    assert manifest["channels"] == ["dsm", "intensity"]
    cloud_raster = rasters["scene/intensity"]
    assert cloud_raster.crs == UTM15 and cloud_raster.transform.a == 0.5
    stack = align_scene("scene", {k.split("/")[1]: v for k, v in rasters.items()},
                        ["dsm", "intensity"], 1.0)  # fmt: skip
    assert stack.channels == ("dsm", "intensity") and stack.crs == UTM15
    # the block is high in the DSM and bright in the intensity at the same pixels of the stack
    high, bright = stack.elevation[0] > 5, stack.elevation[1] > 125
    assert high.sum() == pytest.approx(900, rel=0.1)
    assert (high == bright).mean() > 0.99
