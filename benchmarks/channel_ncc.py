"""Which elevation channel the classical whole-scan correlation can find on the ortho, per split.

For every single scan of the query folder that ``make_queries`` cut (``localisation_queries`` with
its ``index.json`` of true centres), rasterises the scan into the environment's LAS/LAZ-capable
channels (``dsm`` and ``intensity`` by default), correlates each channel's gradient magnitude with the
map ortho's grey gradient over the whole map (masked NCC by FFT, ``localisation.baseline``), and
also the mean of the channels' NCC surfaces; a fix is right within 8 m of the truth. No model and no
query position is used: the search covers every offset.

    python benchmarks/channel_ncc.py --env autzen [--channels dsm intensity] [--gsd 1.0]

Last line: ``channel_ncc test_<channel>=<share within 8 m> ... test_mean=<>``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from croco_pipeline.localisation.baseline import fix_from_surface
from croco_pipeline.localisation.evaluation import WRONG_M, split_of
from croco_pipeline.localisation.ncc import GradientNccMap, gradient_image, gradient_valid
from croco_pipeline.localisation.ortho import Block, GeoTiffOrtho
from croco_pipeline.localisation.pointcloud import read_point_cloud
from croco_pipeline.localisation.query_maker import stack_bounds
from croco_pipeline.localisation.rasterise import rasterise_cloud
from croco_pipeline.pipelines.utils import materialise

ROOT = Path(__file__).resolve().parents[1]


def scan_errors(ncc: GradientNccMap, ortho: GeoTiffOrtho, path: Path, truth: tuple, args) -> list:
    """Error (m) of each channel's whole-scan fix, then of the channels' mean NCC surface."""
    r = rasterise_cloud(read_point_cloud(path), args.channels, args.gsd, args.native_gsd)
    templates = [gradient_image(band) for band in r.elevation]
    surfaces = [ncc.ncc(t, gradient_valid(r.valid)) for t in templates]
    shape = templates[0].shape
    fixes = [
        fix_from_surface(surface, shape, ortho.grid.transform, r.transform, r.footprint)
        for surface in [*surfaces, np.mean(surfaces, axis=0)]
    ]
    return [float(np.hypot(f.x - truth[0], f.y - truth[1])) for f in fixes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=None, help="Kedro environment (e.g. autzen)")
    parser.add_argument("--channels", nargs="+", default=["dsm", "intensity"])
    parser.add_argument("--gsd", type=float, default=1.0)
    parser.add_argument("--native-gsd", type=float, default=0.5)
    args = parser.parse_args()
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        context = session.load_context()
        catalog = context.catalog
        folder = Path(catalog.load("localisation_queries"))
        ortho_path = catalog.load("map_ortho")
        tile_splits = catalog.load("tile_splits")
        bounds = stack_bounds(materialise(catalog.load("aligned_stacks")).values())
        crs = context.params["build_map"]["crs"]
    ortho = GeoTiffOrtho(ortho_path, args.gsd, crs)
    ncc = GradientNccMap(*ortho.read(Block(0, 0, *ortho.grid.shape)))
    entries = [e for e in json.loads((folder / "index.json").read_text()) if e["track"] is None]
    truths = np.array([(e["center_x"], e["center_y"]) for e in entries])
    errors = np.array([
        scan_errors(ncc, ortho, folder / e["file"], tuple(t), args)
        for e, t in zip(entries, truths, strict=True)
    ])  # fmt: skip
    splits = split_of(truths[:, 0], truths[:, 1], tile_splits, bounds)
    names = [*args.channels, "mean"]
    for split in ["train", "val", "test", "none", "all"]:
        pick = splits == split if split != "all" else np.ones(len(splits), bool)
        shares = " ".join(
            f"{n}={np.mean(errors[pick, i] <= WRONG_M):.3f}" for i, n in enumerate(names)
        )
        print(f"{split:>5} (n={int(pick.sum())}): within {WRONG_M:g} m {shares}")
    test = splits == "test"
    print("channel_ncc " + " ".join(
        f"test_{n}={np.mean(errors[test, i] <= WRONG_M):.3f}" for i, n in enumerate(names)
    ))  # fmt: skip


if __name__ == "__main__":
    main()
