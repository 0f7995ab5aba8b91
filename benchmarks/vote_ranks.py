"""Where the truth ranks among the vote's peaks, for k candidates per query tile (before re-ranking).

Reads the model, map and query folder of an environment (as ``localize`` does), locates every query
by the vote alone for each k in ``--k`` (``all``: every map patch votes, ``localize.k: all``, the
dense limit of the vote) and prints, per split of the scans' true centres and query kind, the share
whose truth lies within 8 m of the best peak (top-1) and of one of the best 5 and 20 peaks. A peak
sits on the map lattice, so compare maps of different strides (``build_map.stride_m``) by running
this after each map build: the re-ranking and refinement only ever see the top peaks.

    python benchmarks/vote_ranks.py --env autzen [--queries data/autzen/01_raw/calibration_queries]
        [--k 50 all] [--hubness 0 0.5 1]

``--hubness``: ``localize.hubness_weight`` values to compare (default: the environment's; the map
needs its hubness scores, ``build_map.hubness_k`` > 0). Last lines: ``vote_ranks <k>[ h=<w>]:
top1=<> top5=<> top20=<>`` for single scans over every split.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from affine import Affine
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from croco_pipeline.data.stack import NormalisationStats
from croco_pipeline.localisation.evaluation import split_of
from croco_pipeline.localisation.locate import vote_query
from croco_pipeline.localisation.ortho import open_ortho
from croco_pipeline.localisation.params import LocalizeParams
from croco_pipeline.localisation.queries import discover, load_query
from croco_pipeline.localisation.query_maker import stack_bounds
from croco_pipeline.model.runtime import load_model
from croco_pipeline.pipelines.utils import materialise

ROOT = Path(__file__).resolve().parents[1]
RIGHT_M = 8.0


def truth_cell(loaded: Any, transform: Affine, stride: int) -> tuple[float, float]:
    """Lattice (row, col) where the query raster's top-left truly lies (from its first scan)."""
    scan, r = loaded.scans[0], loaded.raster
    left, bottom, right, top = scan.footprint
    x = scan.truth[0] - ((left + right) / 2 - r.transform.c)
    y = scan.truth[1] - ((bottom + top) / 2 - r.transform.f)
    col, row = ~transform * (x, y)
    return row / stride, col / stride


def rank(peaks: list[tuple[int, int, float]], cell: tuple[float, float], metres: float) -> int:
    """Position of the first peak within ``RIGHT_M`` of the truth (a large number when none is)."""
    for i, (a, b, _) in enumerate(peaks):
        if np.hypot(a - cell[0], b - cell[1]) * metres <= RIGHT_M:
            return i
    return 10**6


Setting = tuple[str, int | None, float | None]  # name, k (None: all), hubness weight (None: as set)


def settings(ks: list[int | None], weights: list[float] | None) -> list[Setting]:
    """Every k with every hubness weight, named ``<k>`` or ``<k> h=<w>``."""
    out = []
    for k in ks:
        name = "all" if k is None else str(k)
        out += (
            [(name, k, None)] if weights is None else [(f"{name} h={w:g}", k, w) for w in weights]
        )
    return out


def query_ranks(ctx: dict[str, Any], item: Any, ks: list[Setting]) -> dict[str, Any] | None:
    """The truth's peak rank for each setting, with the scan's split and kind (None without truth)."""
    lmap, params = ctx["lmap"], ctx["params"]
    meta = lmap.metadata
    p, s, gsd = int(meta["patch_px"]), int(meta["stride_px"]), float(meta["gsd"])
    loaded = load_query(item, meta["crs"], meta["channels"], gsd, params)
    truth = loaded.scans[0].truth
    if truth is None:
        return None
    r = loaded.raster
    cell = truth_cell(loaded, Affine(*meta["grid_transform"]), s)
    out = {"split": str(split_of(*(np.array([v]) for v in truth), ctx["splits"], ctx["bounds"])[0])}
    out["kind"] = "track" if item.track else "single"
    for name, k, weight in ks:
        update: dict[str, Any] = {"k": "all" if k is None else k}
        if weight is not None:
            update["hubness_weight"] = weight
        with torch.inference_mode():
            grid = vote_query(ctx["model"], lmap, r.elevation, r.valid, ctx["stats"],
                              params.model_copy(update=update), item.name)[2]  # fmt: skip
        out[name] = rank(grid.peaks(20, max(1, p // s)), cell, s * gsd)
    return out


def load_context(
    env: str | None, queries: str | None, with_ortho: bool = False
) -> tuple[dict[str, Any], Path]:
    """What ``localize`` reads (model, map, stats, params, splits; the ortho as ``source`` only
    ``with_ortho``: the vote alone does not read it) and the query folder."""
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=env) as session:
        cat = session.load_context().catalog
        ctx = {
            "lmap": cat.load("localisation_map"),
            "model": load_model(cat.load("croco_model")).eval(),
            "stats": NormalisationStats.from_dict(cat.load("normalisation_stats")),
            "params": LocalizeParams.from_params(cat.load("params:localize")),
            "splits": cat.load("tile_splits"),
            "bounds": stack_bounds(materialise(cat.load("aligned_stacks")).values()),
        }
        if with_ortho:
            meta = ctx["lmap"].metadata
            stacks = lambda: list(materialise(cat.load("aligned_stacks")).values())  # noqa: E731
            ctx["source"] = open_ortho(cat.load("map_ortho"), stacks, float(meta["gsd"]),
                                       meta["crs"], ctx["params"].ortho_in_memory_max_px)  # fmt: skip
        folder = Path(queries) if queries else cat.load("localisation_queries")
    return ctx, Path(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=None, help="Kedro environment (e.g. autzen)")
    parser.add_argument("--queries", default=None, help="query folder (default: the catalog's)")
    parser.add_argument("--k", nargs="+", default=["50", "all"], help="candidates per tile")
    parser.add_argument("--hubness", nargs="+", type=float, default=None,
                        help="localize.hubness_weight values (default: the environment's)")  # fmt: skip
    args = parser.parse_args()
    ks = settings([None if k == "all" else int(k) for k in args.k], args.hubness)
    ctx, folder = load_context(args.env, args.queries)
    items, _ = discover(folder, ctx["params"].exclude)
    rows = [row for item in items if (row := query_ranks(ctx, item, ks)) is not None]
    names = [name for name, _, _ in ks]
    for split in sorted({r["split"] for r in rows}) + ["all"]:
        for kind in ("single", "track"):
            pick = [r for r in rows if r["kind"] == kind and split in ("all", r["split"])]
            if pick:
                shares = (
                    f"k={k}: "
                    + "/".join(f"{np.mean([r[k] < n for r in pick]):.2f}" for n in (1, 5, 20))
                    for k in names
                )
                print(f"{split:5s} {kind:6s} n={len(pick):3d}  " + "  ".join(shares))
    for k in names:
        single = [r[k] for r in rows if r["kind"] == "single"]
        print(f"vote_ranks {k}: top1={np.mean(np.array(single) < 1):.3f} "
              f"top5={np.mean(np.array(single) < 5):.3f} top20={np.mean(np.array(single) < 20):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
