"""Benchmarks of LiDAR localisation: rasterising, map building, one query, streaming memory.

Run: ``python benchmarks/localize.py [--quick]`` (several minutes on 2 cores; ``--quick`` shrinks
every size). Prints each figure, then last ``rasterise_s=<> build_ratio=<> query_s=<> rss_gb=<>``:

- rasterise_s: 10 M points -> the DSM channel (highest per 0.5 m cell, holes filled, to 2 m).
- build_ratio: map-building throughput / pure encoder inference on the same windows (target >= 0.9).
- query_s: one 64 m LAZ query end to end (read, rasterise, embed, search, vote, refine) on a
  1,000,000-patch IVF map (target < 0.5 s); recall@10 of IVF against exact search is printed too.
- rss_gb: peak RSS of a process building the map of a 20,000 x 20,000 px GeoTIFF ortho (< 2 GB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import torch
from affine import Affine
from pyproj import CRS as ProjCRS
from rasterio.crs import CRS

from croco_pipeline.data.stack import TileStack, normalise_rgb
from croco_pipeline.data.windows import cut_windows
from croco_pipeline.evaluation.retrieval import MapIndex, embed_patches
from croco_pipeline.localisation.locate import locate
from croco_pipeline.localisation.mapping import LocalisationMap, MapSpec, build_map
from croco_pipeline.localisation.ortho import GeoTiffOrtho, StackMosaic
from croco_pipeline.localisation.params import LocalizeParams
from croco_pipeline.localisation.pointcloud import PointCloud
from croco_pipeline.localisation.queries import QueryItem, load_query
from croco_pipeline.localisation.rasterise import rasterise_cloud
from croco_pipeline.model.models import ModelConfig, build_model

MAP_CRS = CRS.from_epsg(26915)
GSD, PATCH, STRIDE = 2.0, 16, 4  # the cpu profile's working grid
STATS = {"mode": "relative", "minimum": 0.0, "maximum": 1.0, "height_range": 30.0}


def _model(width: int) -> torch.nn.Module:
    cfg = ModelConfig(stem="fast", width=width, embedding_dim=128, n_elevation_channels=1)
    return build_model(cfg).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def _texture(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Smooth uint8 RGB (3, h, w): blurred noise, so windows differ and compress."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    grey = gaussian_filter(rng.normal(0, 1, shape), 3)
    grey = np.clip(128 + grey * 400, 0, 255).astype(np.uint8)
    return np.stack([grey, np.roll(grey, 3, 0), np.roll(grey, 5, 1)])


def bench_rasterise(n_points: int) -> float:
    rng = np.random.default_rng(0)
    side = float(np.sqrt(n_points / 10.0))  # 10 points / m2
    x, y = 500000 + rng.uniform(0, side, n_points), 4000000 + rng.uniform(0, side, n_points)
    cloud = PointCloud(x, y, rng.normal(100, 10, n_points), None, ProjCRS.from_epsg(26915), "bench")
    rasterise_cloud(cloud, ["dsm"], GSD, 0.5)  # warm-up
    start = time.perf_counter()
    raster = rasterise_cloud(cloud, ["dsm"], GSD, 0.5)
    seconds = time.perf_counter() - start
    print(f"rasterise: {n_points:,} points -> {raster.shape} cells at {GSD} m in {seconds:.2f} s")
    return seconds


def _map_opts(**extra: object) -> dict:
    opts = {"min_valid_fraction": 0.5, "batch_size": 256, "block_px": 1024,
            "approximate_above": 10**9, "nlist": None, "nprobe": 32, "device": "cpu", "progress": False}  # fmt: skip
    return opts | extra


def bench_build_ratio(side_px: int, width: int) -> tuple[float, np.ndarray]:
    rgb = _texture((side_px, side_px), 1)
    stack = TileStack("bench", rgb, np.zeros((1, side_px, side_px), np.float32),
                      np.ones((side_px, side_px), bool), MAP_CRS, Affine(GSD, 0, 500000, 0, -GSD, 4000000), ("dsm",))  # fmt: skip
    model = _model(width)
    spec = MapSpec(GSD, PATCH, STRIDE, ("dsm",), STATS, "bench")
    opts = _map_opts()
    with torch.inference_mode():  # warm-up (threads, allocator), not timed
        embed_patches(
            model.embed_rgb,
            normalise_rgb(cut_windows(rgb, np.zeros(512, int), np.zeros(512, int), PATCH)),
            256,
        )
    start = time.perf_counter()
    lmap = build_map(model, StackMosaic([stack]), spec, opts)
    build_s = time.perf_counter() - start
    rows, cols = (
        lmap.centres["lattice_row"].to_numpy() * STRIDE,
        lmap.centres["lattice_col"].to_numpy() * STRIDE,
    )
    windows = normalise_rgb(cut_windows(rgb, rows, cols, PATCH))  # pre-cut: pure inference only
    start = time.perf_counter()
    with torch.inference_mode():
        emb = embed_patches(model.embed_rgb, windows, opts["batch_size"])
    pure_s = time.perf_counter() - start
    n = len(lmap.index)
    print(f"build_map: {n:,} windows in {build_s:.2f} s ({n / build_s:,.0f}/s); pure inference "
          f"{pure_s:.2f} s ({n / pure_s:,.0f}/s); ratio {pure_s / build_s:.3f}")  # fmt: skip
    return pure_s / build_s, emb


def recall_at_10(vectors: np.ndarray, ivf: MapIndex, n_queries: int = 200) -> float:
    """Share of the exact top-10 that ``ivf`` returns, for noisy copies of indexed vectors."""
    rng = np.random.default_rng(2)
    pick = rng.choice(len(vectors), n_queries, replace=False)
    scale = 0.3 * float(vectors[:10_000].std(axis=0).mean())  # noise relative to the spread
    queries = vectors[pick] + rng.normal(0, scale, (n_queries, vectors.shape[1])).astype(np.float32)
    exact = MapIndex(vectors.shape[1], "flat")
    exact.add(vectors)
    a, b = exact.search(queries, 10)[1], ivf.search(queries, 10)[1]
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def _write_query_laz(path: Path, heights: np.ndarray, origin: tuple[float, float], n: int) -> None:
    import laspy

    rng = np.random.default_rng(4)
    fr, fc = rng.uniform(0, heights.shape[0], n), rng.uniform(0, heights.shape[1], n)
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.scales, header.offsets = np.array([0.01] * 3), np.array([origin[0], origin[1] - 64, 0.0])
    header.add_crs(ProjCRS.from_epsg(26915))
    las = laspy.LasData(header)
    las.x, las.y = origin[0] + fc * 0.5, origin[1] - fr * 0.5
    las.z = heights[fr.astype(int), fc.astype(int)]
    las.write(str(path))


def bench_query(lattice_side: int, tmp: Path) -> tuple[float, float]:
    side_px = (lattice_side - 1) * STRIDE + PATCH
    rgb = _texture((side_px, side_px), 5)
    stack = TileStack("big", rgb, np.zeros((1, 1, 1), np.float32), np.ones((side_px, side_px), bool),
                      MAP_CRS, Affine(GSD, 0, 500000, 0, -GSD, 4000000), ("dsm",))  # fmt: skip
    n = lattice_side**2
    rng = np.random.default_rng(3)
    # clustered like a real map's embeddings (land cover repeats); uniform random vectors are
    # IVF's worst case and no map looks like them
    centres = rng.normal(size=(4096, 128)).astype(np.float32)
    vectors = centres[rng.integers(0, 4096, n)] + 0.35 * rng.normal(size=(n, 128)).astype(
        np.float32
    )
    start = time.perf_counter()
    nlist = max(16, int(4 * np.sqrt(n)))
    index = MapIndex(128, "ivf", nlist=nlist, nprobe=32)
    index.add(vectors)
    print(f"map: {n:,} patches, IVF nlist={nlist} built in {time.perf_counter() - start:.1f} s")
    lr, lc = np.divmod(np.arange(n), lattice_side)
    centres = pd.DataFrame({"lattice_row": lr, "lattice_col": lc, "x": 500000 + (lc * STRIDE + 8) * GSD,
                            "y": 4000000 - (lr * STRIDE + 8) * GSD, "valid_fraction": 1.0})  # fmt: skip
    meta = {"gsd": GSD, "patch_px": PATCH, "stride_px": STRIDE, "stride_m": STRIDE * GSD,
            "lattice_shape": [lattice_side, lattice_side], "grid_transform": list(stack.transform)[:6],
            "crs": MAP_CRS.to_wkt(), "channels": ["dsm"], "lattice_origin": [500016.0, 3999984.0]}  # fmt: skip
    lmap = LocalisationMap(index, centres, meta)
    laz = tmp / "query.laz"
    _write_query_laz(
        laz, rng.normal(100, 5, (128, 128)), (500000 + 2000.0, 4000000 - 2000.0), 40_000
    )
    model, params = _model(32), LocalizeParams.from_params({})
    from croco_pipeline.data.stack import NormalisationStats

    stats = NormalisationStats.from_dict(STATS)
    source = StackMosaic([stack])
    times = []
    for _ in range(3):  # the first call includes one-off warm-up (threads, allocator)
        start = time.perf_counter()
        loaded = load_query(QueryItem("q", "", [laz]), MAP_CRS, ["dsm"], GSD, params)
        locate(
            model, lmap, source, loaded.raster.elevation, loaded.raster.valid, stats, params, "q"
        )
        times.append(time.perf_counter() - start)
    print(f"query: one 64 m LAZ query end to end on {n:,} patches: {min(times):.3f} s "
          f"(runs {', '.join(f'{t:.3f}' for t in times)})")  # fmt: skip
    recall = recall_at_10(vectors, index)
    print(f"IVF recall@10 vs exact on this map (clustered 128-d vectors, nprobe 32): {recall:.3f}")
    return min(times), recall


def _write_ortho(path: Path, side_px: int) -> None:
    """A ``side_px`` square RGB GeoTIFF written block by block (never whole in memory)."""
    profile = {"driver": "GTiff", "width": side_px, "height": side_px, "count": 3, "dtype": "uint8",
               "crs": MAP_CRS, "transform": Affine(GSD, 0, 500000, 0, -GSD, 4000000),
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "YES"}  # fmt: skip
    step = 2048
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, side_px, step):
            for c in range(0, side_px, step):
                h, w = min(step, side_px - r), min(step, side_px - c)
                block = _texture((h, w), r * 7 + c)
                dst.write(block, window=rasterio.windows.Window(c, r, w, h))


def rss_child(ortho: str) -> None:
    """In a fresh process: build the map of ``ortho`` streaming 1024 px blocks (stride 64 px)."""
    torch.set_num_threads(2)
    source = GeoTiffOrtho(ortho, GSD)
    spec = MapSpec(GSD, PATCH, 64, ("dsm",), STATS, "bench")
    start = time.perf_counter()
    lmap = build_map(_model(8), source, spec, _map_opts(batch_size=512))
    print(f"rss child: {len(lmap.index):,} windows of a {source.grid.shape} px ortho in "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    # VmHWM: this process image's own peak (ru_maxrss would carry the forking parent's pages)
    hwm_kb = next(
        int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")
    )
    print(f"peak_rss_kb={hwm_kb}")


def bench_rss(side_px: int, tmp: Path) -> float:
    ortho = tmp / "ortho.tif"
    start = time.perf_counter()
    _write_ortho(ortho, side_px)
    print(f"ortho: {side_px} x {side_px} px GeoTIFF written in {time.perf_counter() - start:.1f} s")
    done = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(ortho)], capture_output=True, text=True
    )
    print(done.stdout.strip())
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    peak_gb = int(done.stdout.rsplit("peak_rss_kb=", 1)[1].split()[0]) / 1024**2  # KiB -> GiB
    print(f"rss: peak RSS of the map build of a {side_px} x {side_px} px ortho: {peak_gb:.2f} GB")
    return peak_gb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    torch.set_num_threads(2)
    q = args.quick
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rss_gb = bench_rss(4000 if q else 20000, tmp)  # first, while this process is small
        rasterise_s = bench_rasterise(1_000_000 if q else 10_000_000)
        build_ratio, embeddings = bench_build_ratio(256 if q else 1024, 32)
        real = MapIndex(
            embeddings.shape[1], "ivf", nlist=max(16, int(4 * np.sqrt(len(embeddings)))), nprobe=32
        )
        real.add(embeddings)
        print(f"IVF recall@10 vs exact on the model's map embeddings ({len(embeddings):,}): "
              f"{recall_at_10(embeddings, real):.3f}")  # fmt: skip
        query_s, _ = bench_query(200 if q else 1000, tmp)
    print(
        f"rasterise_s={rasterise_s:.3f} build_ratio={build_ratio:.3f} query_s={query_s:.3f} rss_gb={rss_gb:.2f}"
    )


if __name__ == "__main__":
    main()
