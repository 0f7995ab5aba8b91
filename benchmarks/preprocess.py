"""Benchmarks of ingest + preprocess memory and time.

``tile`` (default): one full-size DFC2018 tile through ``read_tile`` + ``align_scene`` to 0.5 m.
Target on 2 CPU cores: under 60 s and under 1 GB peak RSS. Input generation is not timed; the
measured step runs in a fresh child process so its peak RSS excludes the generator's.

``scene``: a user's raster pair of about 6,700 x 8,600 px per band at 0.5 m (RGB in EPSG:32610,
DSM in EPSG:26910, so the RGB is reprojected) through ``kedro run --pipelines=ingest,preprocess``
in a throw-away copy of the project. Target: peak RSS under 3 GB (the kedro process, children
included). The scene is generated in row blocks by a child process, so the generator stays small.

    python benchmarks/preprocess.py [--data DIR] [--synthetic] [--keep]
    python benchmarks/preprocess.py --case scene [--gsd 0.5] [--keep]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from croco_pipeline.data import dfc2018
from croco_pipeline.data.dfc2018 import TileId

TILE = TileId(dfc2018.TILE_XMINS[0], dfc2018.TILE_YMINS[0])
RGB_SHAPE = (12020, 11920)  # rows, cols at 0.05 m: 601 m x 596 m
RIM_M = 50.0  # the mosaics reach past the tile, as the real ones do for edge tiles' neighbours
TARGET_S, TARGET_MB = 60.0, 1024.0


def _write_quick_release(root: Path, rows_per_block: int = 1024) -> None:
    """Cheap random-ish content written block by block, so generation memory stays small."""
    rng = np.random.default_rng(0)
    rgb_tf = Affine(
        dfc2018.RGB_GSD, 0, TILE.xmin, 0, -dfc2018.RGB_GSD, TILE.ymin + RGB_SHAPE[0] * 0.05
    )
    path = root / TILE.rgb_relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", width=RGB_SHAPE[1], height=RGB_SHAPE[0], count=3, dtype="uint8")
    profile.update(crs=f"EPSG:{dfc2018.CRS_EPSG}", transform=rgb_tf, tiled=True, blockxsize=256)
    profile.update(blockysize=256)
    cols = np.arange(RGB_SHAPE[1])
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, RGB_SHAPE[0], rows_per_block):
            n = min(rows_per_block, RGB_SHAPE[0] - r0)
            rr = np.arange(r0, r0 + n)[:, None]
            base = (128 + 60 * np.sin(rr / 97.0) * np.cos(cols / 53.0)).astype(np.int16)
            noise = rng.integers(-20, 21, size=(3, n, RGB_SHAPE[1]), dtype=np.int16)
            dst.write(
                np.clip(base + noise, 0, 255).astype(np.uint8),
                window=Window(0, r0, RGB_SHAPE[1], n),
            )
    g = dfc2018.MOSAIC_GSD
    m_tf = Affine(g, 0, TILE.xmin - RIM_M, 0, -g, TILE.ymin + dfc2018.TILE_HEIGHT_M + RIM_M)
    m_rows = round((dfc2018.TILE_HEIGHT_M + 2 * RIM_M) / g)
    m_cols = round((dfc2018.TILE_WIDTH_M + 2 * RIM_M) / g)
    for i, rel in enumerate(dfc2018.ELEVATION_PRODUCTS.values()):
        heights = (-22.0 + 5 * i + rng.gamma(1.0, 3.0, size=(1, m_rows, m_cols))).astype(np.float32)
        heights[0, rng.random((m_rows, m_cols)) < 0.01] = dfc2018.NODATA  # scattered dropouts
        out = root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(
            out, "w", driver="GTiff", width=m_cols, height=m_rows, count=1, dtype="float32",
            crs=f"EPSG:{dfc2018.CRS_EPSG}", transform=m_tf, nodata=dfc2018.NODATA, tiled=True,
        ) as dst:  # fmt: skip
            dst.write(heights)


def _write_synthetic_release(root: Path) -> None:
    # optional: the colleague's generator, once it exists
    from croco_pipeline.synthetic import (  # type: ignore[attr-defined]
        SyntheticConfig,
        write_synthetic_release,
    )

    write_synthetic_release(root, SyntheticConfig(n_rows=1, n_cols=1, rgb_gsd=0.05))


def _vm_hwm_mb() -> float:
    """This process's own RSS high-water mark (Linux keeps ru_maxrss across exec, VmHWM does not)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measure(root: Path, gsd: float = 0.5) -> None:
    """The timed step (run in a child process): ingest and align one tile, print time and peak RSS."""
    from croco_pipeline.data.align import align_scene
    from croco_pipeline.data.readers import Dfc2018Release

    channels = tuple(dfc2018.ELEVATION_PRODUCTS)
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    release = Dfc2018Release(root, channels=channels)
    tile = release.tiles[0]
    rasters = release.read_tile(tile, gsd)
    t1 = time.perf_counter()
    stack = align_scene(tile.name, rasters, channels, gsd)
    t2 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    hwm = _vm_hwm_mb()
    ok = (t2 - t0) < TARGET_S and peak_mb < TARGET_MB
    print(
        f"tile {tile.name}: stack {stack.shape} x {len(stack.channels)} channels at {stack.gsd} m"
    )
    print(f"read_tile {t1 - t0:.2f} s, align_scene {t2 - t1:.2f} s, total {t2 - t0:.2f} s")
    print(
        f"peak RSS {peak_mb:.0f} MB (ru_maxrss; after imports {start_rss:.0f} MB; VmHWM {hwm:.0f} MB)"
    )
    print(f"target < {TARGET_S:.0f} s and < {TARGET_MB:.0f} MB: {'PASS' if ok else 'FAIL'}")


SCENE_SHAPE = (8600, 6700)  # rows, cols at 0.5 m: 4.3 km x 3.35 km (the "about 10 km2")
SCENE_ORIGIN = (480000.0, 4880000.0)  # top-left, UTM zone 10N
SCENE_TARGET_MB = 3072.0
ROOT = Path(__file__).resolve().parents[1]


def _scene_rows(r0: int, n: int, cols: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Heights and colours of ``n`` scene rows from ``r0``: terrain, 20 m houses, a river (nodata)."""
    rr = np.arange(r0, r0 + n, dtype=np.float32)[:, None]
    cc = np.arange(cols, dtype=np.float32)[None, :]
    ground = 120.0 + 8.0 * np.sin(rr / 900.0) + 6.0 * np.cos(cc / 700.0)
    houses = ((rr // 40 + cc // 40) % 3 == 0) & ((rr % 40) > 8) & ((cc % 40) > 8)
    dsm = (ground + 9.0 * houses + rng.normal(0, 0.1, (n, cols))).astype(np.float32)
    river = np.abs(cc - (0.4 * cols + 300 * np.sin(rr / 1500.0))) < 120
    dsm[river] = -9999.0
    grey = 90 + 100 * houses + rng.integers(-15, 16, (n, cols))
    rgb = np.stack([grey, grey * 0.9, np.where(river, 160, grey * 0.8)])
    return dsm, np.clip(rgb, 0, 255).astype(np.uint8)


def _write_scene(folder: Path, rows_per_block: int = 512) -> None:
    """The scene's DSM (EPSG:26910) and RGB (EPSG:32610), both 0.5 m, written block by block."""
    rows, cols = SCENE_SHAPE
    tf = Affine(0.5, 0, SCENE_ORIGIN[0], 0, -0.5, SCENE_ORIGIN[1])
    common = dict(driver="GTiff", width=cols, height=rows, transform=tf, tiled=True)
    common.update(blockxsize=256, blockysize=256, compress="deflate")
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    with (
        rasterio.open(folder / "dsm.tif", "w", count=1, dtype="float32", crs="EPSG:26910",
                      nodata=-9999.0, **common) as dsm_dst,
        rasterio.open(folder / "rgb.tif", "w", count=3, dtype="uint8", crs="EPSG:32610",
                      **common) as rgb_dst,
    ):  # fmt: skip
        for r0 in range(0, rows, rows_per_block):
            n = min(rows_per_block, rows - r0)
            dsm, rgb = _scene_rows(r0, n, cols, rng)
            dsm_dst.write(dsm[None], window=Window(0, r0, cols, n))
            rgb_dst.write(rgb, window=Window(0, r0, cols, n))


def _scene_project(project: Path, scene: Path, gsd: float) -> None:
    """A copy of the project's conf whose ``local`` env reads ``scene`` as a raster pair at ``gsd``."""
    import yaml

    project.mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    for sub in ("conf/local", "data", "src"):
        (project / sub).mkdir()
    pair = {"rgb": str(scene / "rgb.tif"), "elevation": {"dsm": str(scene / "dsm.tif")}}
    catalog = {"raw_source": {"type": "croco_pipeline.data.datasets.SceneSourceDataset",
                              "source": "raster_pair", "raster_pair": pair}}  # fmt: skip
    (project / "conf/local/catalog.yml").write_text(yaml.safe_dump(catalog))
    base = yaml.safe_load((ROOT / "conf/base/parameters_preprocess.yml").read_text())
    base["preprocess"].update(gsd=gsd, channels=["dsm"], split=None)
    (project / "conf/local/parameters_preprocess.yml").write_text(yaml.safe_dump(base))


def measure_scene(gsd: float, keep: bool) -> None:
    """Generate the scene (child), run ingest + preprocess on it (child), print time and peak RSS."""
    tmp = Path(tempfile.mkdtemp(prefix="croco_scene_"))
    try:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--generate-scene", str(tmp / "scene")], check=True
        )
        print(f"generated {SCENE_SHAPE[1]} x {SCENE_SHAPE[0]} px per band at 0.5 m in {tmp} "
              f"({time.perf_counter() - t0:.1f} s, not timed)")  # fmt: skip
        _scene_project(tmp / "project", tmp / "scene", gsd)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="true", MPLBACKEND="Agg")
        cmd = [sys.executable, "-m", "kedro", "run", "--pipelines=ingest,preprocess"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=tmp / "project", env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
        if done.returncode != 0:
            print((done.stdout + done.stderr)[-4000:])
            raise SystemExit(f"kedro run failed ({done.returncode})")
        stacks = list((tmp / "project/data/03_primary/aligned_stacks").glob("*.tif"))
        print(f"kedro run --pipelines=ingest,preprocess at gsd {gsd} m: {wall:.1f} s, "
              f"{len(stacks)} block stacks")  # fmt: skip
        ok = peak_mb < SCENE_TARGET_MB
        print(f"peak RSS {peak_mb:.0f} MB (largest child's ru_maxrss; the generator's was "
              f"{before:.0f} MB)")  # fmt: skip
        print(f"target < {SCENE_TARGET_MB:.0f} MB: {'PASS' if ok else 'FAIL'}")
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="release folder to use or create (default: temp)")
    parser.add_argument(
        "--synthetic", action="store_true", help="generate with croco_pipeline.synthetic"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated temp folder")
    parser.add_argument("--case", choices=("tile", "scene"), default="tile")
    parser.add_argument("--gsd", type=float, default=0.5, help="scene case: preprocess.gsd")
    parser.add_argument("--generate-scene", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return
    if args.generate_scene:
        _write_scene(args.generate_scene)
        return
    if args.case == "scene":
        measure_scene(args.gsd, args.keep)
        return
    if args.generate:
        (_write_synthetic_release if args.synthetic else _write_quick_release)(args.generate)
        return
    # a fresh, not yet existing folder: the synthetic generator refuses to write into existing ones
    tmp = None if args.data else Path(tempfile.mkdtemp(prefix="croco_bench_"))
    root = args.data or tmp / "Phase2"  # type: ignore[operator]
    try:
        if not (root / TILE.rgb_relpath).exists() and not any(
            root.glob(f"{dfc2018.RGB_DIR}/*.tif")
        ):
            t0 = time.perf_counter()
            # generate in a child too: Linux carries a parent's ru_maxrss into its exec'd children
            flag = ["--synthetic"] if args.synthetic else []
            subprocess.run([sys.executable, __file__, "--generate", str(root), *flag], check=True)
            print(f"generated input in {root} ({time.perf_counter() - t0:.1f} s, not timed)")
        subprocess.run([sys.executable, __file__, "--measure", str(root)], check=True)
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
