"""Tests of the synthetic DFC2018-shaped release: layout, geometry, product semantics, independence."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio

from croco_pipeline.data.dfc2018 import CRS_EPSG, ELEVATION_PRODUCTS, NODATA_ABS_LIMIT
from croco_pipeline.data.source import SceneSource
from croco_pipeline.errors import CrocoConfigError, CrocoInputError
from croco_pipeline.pipelines.synthesize.nodes import synthesize_release
from croco_pipeline.synthetic import (
    SyntheticConfig,
    ensure_synthetic_release,
    release_matches,
    write_synthetic_release,
)

# seed 23 puts a warehouse-sized roof (3msr voids) and the river inside this small grid
SMALL = SyntheticConfig(
    seed=23, tile_width_m=64, tile_height_m=64, n_rows=2, n_cols=3, rgb_gsd=0.25
)
XS, YS = (271460, 271524, 271588), (3289753, 3289689)  # lower-left corners, north row first
#: sha256 of every GeoTIFF's pixels (sorted paths) of SMALL's release: the generator's output is a
#: pure function of the config; change this only with a deliberate change of what is generated
SMALL_PIXELS_SHA256 = "ae04718fa66875758ce769ec26e3775fa6cab91e3198ccd5511ba6b706436a28"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("syn") / "Phase2"
    lines: list[str] = []
    written = write_synthetic_release(root, SMALL, progress=lines.append)
    assert len([m for m in lines if "tile" in m]) >= 6  # one progress line per tile
    assert sorted(written) == sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
    )
    return root


def _read(path: Path) -> tuple[np.ndarray, rasterio.DatasetReader]:
    with rasterio.open(path) as src:
        return src.read(), src


def _products(root: Path) -> dict[str, np.ndarray]:
    out = {}
    for name, rel in ELEVATION_PRODUCTS.items():
        data, _ = _read(root / rel)
        out[name] = data[0].astype(np.float64)
    return out


def test_layout_names_and_marker(release: Path) -> None:
    expected = {f"Final RGB HR Imagery/UH_NAD83_{x}_{y}.tif" for x in XS for y in YS}
    expected |= set(ELEVATION_PRODUCTS.values()) | {"SYNTHETIC.json"}
    found = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    assert found == expected
    marker = json.loads((release / "SYNTHETIC.json").read_text())
    assert marker["config"]["seed"] == 23 and marker["version"]
    assert release_matches(release, SMALL)
    assert not release_matches(release, SyntheticConfig(seed=8, tile_width_m=64, tile_height_m=64))
    assert not list(release.parent.glob(".Phase2.*"))  # no temporary folders left behind


def test_rgb_tiles_geometry(release: Path) -> None:
    for x in XS:
        for y in YS:
            with rasterio.open(release / f"Final RGB HR Imagery/UH_NAD83_{x}_{y}.tif") as src:
                assert src.crs.to_epsg() == CRS_EPSG
                assert src.count == 3 and all(d == "uint8" for d in src.dtypes)
                assert src.res == (0.25, 0.25)
                assert tuple(src.bounds) == (x, y, x + 64, y + 64)


def test_mosaics_geometry_and_semantics(release: Path) -> None:
    for rel in ELEVATION_PRODUCTS.values():
        with rasterio.open(release / rel) as src:
            assert src.crs.to_epsg() == CRS_EPSG and src.dtypes[0] == "float32"
            assert src.res == (0.5, 0.5)
            assert tuple(src.bounds) == (271460, 3289689, 271460 + 192, 3289689 + 128)
            assert src.nodata is not None and src.nodata < -1e38
    p = _products(release)
    void = {k: np.abs(v) > NODATA_ABS_LIMIT for k, v in p.items()}
    water = void["DEM_C123_TLI"]  # TLI is void-filled everywhere except water
    assert water.mean() > 0.01
    for name in p:
        assert void[name][water].all(), name
    valid = ~void["DSM_C12"] & ~void["DEM+B_C123"] & ~water
    tli = p["DEM_C123_TLI"][~water]
    assert -26 < np.median(tli) < -18  # ellipsoidal-like ground height, like the real release
    assert tli.max() - tli.min() < 10  # gentle terrain
    dsm, demb = p["DSM_C12"], p["DEM+B_C123"]
    vegetation = valid & (np.abs(demb - p["DEM_C123_TLI"]) < 0.2) & (dsm - demb > 2.0)
    assert vegetation.sum() > 100  # trees: in the DSM, not in the bare earth or DEM+B
    assert (valid & (demb - p["DEM_C123_TLI"] > 2.0)).sum() > 100  # buildings in DEM+B
    assert (void["DEM_C123_3msr"] & ~water).sum() > 20  # no ground returns under big roofs
    assert (void["DSM_C12"] & ~water).any()  # LiDAR dropouts
    assert not (void["DEM_C123_TLI"] & ~water).any()


def test_pixels_are_exactly_those_of_the_reference_release(release: Path) -> None:
    digest = hashlib.sha256()
    for path in sorted(release.rglob("*.tif")):
        digest.update(_read(path)[0].tobytes())
    assert digest.hexdigest() == SMALL_PIXELS_SHA256


def test_deterministic_and_seed_dependent(release: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_synthetic_release(again, SMALL)
    for rel in [*ELEVATION_PRODUCTS.values(), f"Final RGB HR Imagery/UH_NAD83_{XS[1]}_{YS[0]}.tif"]:
        assert np.array_equal(_read(release / rel)[0], _read(again / rel)[0]), rel
    other = tmp_path / "other"
    cfg = SyntheticConfig(seed=8, tile_width_m=64, tile_height_m=64, n_rows=1, n_cols=1)
    write_synthetic_release(other, cfg)
    rel = f"Final RGB HR Imagery/UH_NAD83_{XS[0]}_{3289689}.tif"
    assert not np.array_equal(_read(release / rel)[0], _read(other / rel)[0])
    write_synthetic_release(other, cfg)  # an older synthetic release is replaced


def test_refuses_to_overwrite_a_real_release(tmp_path: Path) -> None:
    real = tmp_path / "Phase2"
    (real / "Final RGB HR Imagery").mkdir(parents=True)
    with pytest.raises(CrocoInputError, match="SYNTHETIC.json"):
        write_synthetic_release(real, SMALL)
    assert (real / "Final RGB HR Imagery").is_dir()


def test_ensure_release_writes_reuses_and_leaves_real_data_alone(tmp_path: Path) -> None:
    cfg = SyntheticConfig(tile_width_m=16, tile_height_m=16, n_rows=1, n_cols=1, rgb_gsd=0.5)
    root = tmp_path / "Phase2"
    assert ensure_synthetic_release(root, cfg) == "written"
    stamp = (root / "SYNTHETIC.json").stat().st_mtime_ns
    assert ensure_synthetic_release(root, cfg) == "reused"
    assert (root / "SYNTHETIC.json").stat().st_mtime_ns == stamp  # not rewritten
    other = SyntheticConfig(seed=1, tile_width_m=16, tile_height_m=16, n_rows=1, n_cols=1)
    assert ensure_synthetic_release(root, other) == "written" and release_matches(root, other)
    real = tmp_path / "real"
    (real / "Final RGB HR Imagery").mkdir(parents=True)
    assert ensure_synthetic_release(real, cfg) == "not synthetic"
    assert [p.name for p in real.iterdir()] == ["Final RGB HR Imagery"]


def test_synthesize_node_writes_the_release_and_passes_the_source_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    params = {"tile_width_m": 16, "tile_height_m": 16, "n_rows": 1, "n_cols": 1, "rgb_gsd": 0.5}
    source = SceneSource("dfc2018", root=tmp_path / "Phase2")
    assert synthesize_release(params, source) is source
    assert source.is_synthetic and release_matches(source.root, SyntheticConfig(**params))
    pair = SceneSource("raster_pair", rgb=tmp_path / "rgb.tif", elevation={"dsm": tmp_path / "d"})
    with caplog.at_level(logging.INFO):
        assert synthesize_release(params, pair) is pair
    assert "raster pair" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Phase2"]  # nothing else written


def test_unknown_key_suggests_the_known_one() -> None:
    with pytest.raises(CrocoConfigError, match="synthetic.tile_widht_m: unknown key, did you mean"):
        SyntheticConfig.from_params({"tile_widht_m": 64})


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"rgb_gsd": 0.0}, "synthetic.rgb_gsd"),
        ({"rgb_gsd": 0.3}, "synthetic.rgb_gsd"),
        ({"tile_width_m": 50.5}, "synthetic.tile_width_m"),
        ({"n_rows": 0}, "synthetic.n_rows"),
        ({"sun_elevation": 30}, "synthetic.sun_elevation"),
        ({"seed": "abc"}, "synthetic.seed"),
        ({"write_las": 1}, "synthetic.write_las"),
        ({"misregistration_px_max": 0.5}, "synthetic.misregistration_px_max"),
    ],
)
def test_bad_params_name_the_parameter(params: dict[str, object], name: str) -> None:
    with pytest.raises(CrocoConfigError, match=name):
        SyntheticConfig.from_params(params)


def test_from_params_round_trip() -> None:
    cfg = SyntheticConfig.from_params({"seed": 3, "rgb_gsd": 0.05, "write_las": True})
    assert (cfg.seed, cfg.rgb_gsd, cfg.write_las, cfg.scale) == (3, 0.05, True, 10)


def _grad(a: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(a)
    return np.hypot(gx, gy)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_photo_is_an_independent_view_of_the_same_scene(release: Path) -> None:
    """Photo edges match LiDAR edges only loosely (lean, shadows, texture) and off by a shift."""
    p = _products(release)
    dsm = p["DSM_C12"]
    dsm = np.where(np.abs(dsm) > NODATA_ABS_LIMIT, np.nan, dsm)
    peaks, best = [], []
    k, m = 3, 3  # shift search radius (0.5 m pixels), border kept out of the comparison
    for r, y in enumerate(YS):
        for c, x in enumerate(XS):
            rgb, _ = _read(release / f"Final RGB HR Imagery/UH_NAD83_{x}_{y}.tif")
            grey = rgb.astype(np.float64).mean(0)
            grey = grey.reshape(128, 2, 128, 2).mean((1, 3))  # 0.25 m -> 0.5 m
            height = dsm[r * 128 : (r + 1) * 128, c * 128 : (c + 1) * 128]
            usable = ~np.isnan(_grad(height))
            h_grad = np.minimum(np.nan_to_num(_grad(height)), 5.0)
            p_grad = _grad(grey)
            scores = {}
            for dy in range(-k, k + 1):
                for dx in range(-k, k + 1):
                    a = p_grad[m + dy : 128 - m + dy, m + dx : 128 - m + dx]
                    b = h_grad[m:-m, m:-m]
                    ok = usable[m:-m, m:-m]
                    scores[(dy, dx)] = _corr(a[ok], b[ok])
            assert scores[(0, 0)] < 0.9  # not a colouring of the height model
            peaks.append(max(scores, key=lambda s: scores[s]))
            best.append(max(scores.values()))
    assert any(peak != (0, 0) for peak in peaks)  # misregistration and lean exist
    assert np.median(best) > 0.1  # ... yet the photo shows the same buildings and trees


def test_las_tiles(tmp_path: Path) -> None:
    laspy = pytest.importorskip("laspy")
    cfg = SyntheticConfig(tile_width_m=40, tile_height_m=40, n_rows=1, n_cols=1, write_las=True)
    written = write_synthetic_release(tmp_path / "las", cfg)
    assert "Lidar Point Cloud Tiles/C123/271460_3289689.las" in written
    las = laspy.read(tmp_path / "las" / "Lidar Point Cloud Tiles/C123/271460_3289689.las")
    assert 1000 < len(las.points) < 2 * 40 * 40 * 1.2
    assert las.header.parse_crs().to_epsg() == CRS_EPSG
    assert 271460 <= las.x.min() and las.x.max() <= 271500 and -30 < np.median(las.z) < -15
