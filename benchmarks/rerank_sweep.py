"""Re-ranking weights chosen on validation scans: every query's vote peaks scored once, the weights
swept offline.

For each query of the folder with truth (use scans cut in validation blocks: the calibration
queries of the README): the vote (``localize.k``, or ``--k``), its ``--peaks`` best peaks, the
classical gradient NCC at each and the refinement score (``localize.refine``) at every peak that
some setting of the grid refines. Then, for each (``rerank.weight``, ``rerank.refine_candidates``,
``rerank.refine_weight``) of the grid, the winner exactly as ``locate`` ranks the peaks
(``rank_candidates``) and the share of single scans and of track scans whose winner lies within 8 m
of the truth (the refinement's sub-stride shift aside). Prints the ten best settings by the mean of
the two shares and the current setting's row.

    python benchmarks/rerank_sweep.py --env autzen --queries data/autzen/01_raw/calibration_queries
        [--k all] [--peaks 20]

Last line: ``rerank_sweep best: weight=<> refine_candidates=<> refine_weight=<> single=<>
track=<> (current: single=<> track=<>)``.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import numpy as np
import torch
from affine import Affine

from croco_pipeline.localisation.locate import (
    check_peaks,
    peak_scores,
    rank_candidates,
    refine_candidate,
    vote_query,
)
from croco_pipeline.localisation.params import RerankParams
from croco_pipeline.localisation.queries import discover, load_query
from vote_ranks import load_context, rank, truth_cell

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
REFINE_CANDIDATES = (0, 3, 5, 8)
REFINE_WEIGHTS = (0.0, 2.0, 4.0, 8.0)


def score_query(ctx: dict[str, Any], item: Any, n_peaks: int) -> dict[str, Any] | None:
    """The query's peaks, their NCC checks, refinement scores and where the truth is (or None)."""
    lmap, params, model = ctx["lmap"], ctx["params"], ctx["model"]
    meta = lmap.metadata
    p, s, gsd = int(meta["patch_px"]), int(meta["stride_px"]), float(meta["gsd"])
    loaded = load_query(item, meta["crs"], meta["channels"], gsd, params)
    if loaded.scans[0].truth is None:
        return None
    r = loaded.raster
    with torch.inference_mode():
        tiles, emb, grid = vote_query(model, lmap, r.elevation, r.valid, ctx["stats"], params,
                                      item.name)  # fmt: skip
        peaks = grid.peaks(n_peaks, max(1, p // s))
        checks = check_peaks(ctx["source"], peaks, s, r.elevation, r.valid, len(peaks))
        need = set()  # every peak some setting of the grid refines
        for w in WEIGHTS:
            order = np.argsort(-peak_scores(peaks, checks, w), kind="stable")
            need |= {int(i) for i in order[: max(REFINE_CANDIDATES)]}
        refined = {
            i: refine_candidate(model, ctx["source"], (peaks[i][0] * s, peaks[i][1] * s), tiles,
                                emb, grid.best_scores, r.elevation, r.valid, lmap, params, "cpu")
            for i in sorted(need)
        }  # fmt: skip
    cell = truth_cell(loaded, Affine(*meta["grid_transform"]), s)
    right = [rank([peak], cell, s * gsd) == 0 for peak in peaks]
    return {"kind": "track" if item.track else "single", "n_scans": len(loaded.scans),
            "peaks": peaks, "checks": checks, "refined": refined, "right": right}  # fmt: skip


def winner_right(row: dict[str, Any], rerank: RerankParams) -> bool:
    """Whether ``rank_candidates`` with these weights puts a peak within 8 m of the truth first."""
    index = {(a, b): i for i, (a, b, _) in enumerate(row["peaks"])}
    order = rank_candidates(
        row["peaks"], row["checks"], rerank, lambda peak: row["refined"][index[peak[:2]]]
    )[0]
    return bool(row["right"][order[0]])


def shares(rows: list[dict[str, Any]], rerank: RerankParams) -> tuple[float, float]:
    """Share of single scans and of track scans (each track counted by its scans) fixed right."""
    out = []
    for kind in ("single", "track"):
        pick = [r for r in rows if r["kind"] == kind]
        hits = sum(winner_right(r, rerank) * r["n_scans"] for r in pick)
        out.append(hits / max(sum(r["n_scans"] for r in pick), 1))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=None, help="Kedro environment (e.g. autzen)")
    parser.add_argument("--queries", default=None, help="query folder (default: the catalog's)")
    parser.add_argument("--k", default=None, help="candidates per tile (default: localize.k)")
    parser.add_argument("--peaks", type=int, default=20, help="vote peaks checked")
    args = parser.parse_args()
    ctx, folder = load_context(args.env, args.queries, with_ortho=True)
    if args.k is not None:
        k = args.k if args.k == "all" else int(args.k)
        ctx["params"] = ctx["params"].model_copy(update={"k": k})
    items, _ = discover(folder, ctx["params"].exclude)
    rows = [row for item in items if (row := score_query(ctx, item, args.peaks)) is not None]
    grid = []
    for w, rc, rw in itertools.product(WEIGHTS, REFINE_CANDIDATES, REFINE_WEIGHTS):
        if rc == 0 and rw > 0:
            continue
        rerank = RerankParams(candidates=args.peaks, weight=w, refine_candidates=rc,
                              refine_weight=rw)  # fmt: skip
        grid.append((rerank, *shares(rows, rerank)))
    grid.sort(key=lambda g: -(g[1] + g[2]))
    for rerank, single, track in grid[:10]:
        print(f"weight={rerank.weight} refine_candidates={rerank.refine_candidates} "
              f"refine_weight={rerank.refine_weight}: single={single:.3f} track={track:.3f}")  # fmt: skip
    now = ctx["params"].rerank.model_copy(update={"candidates": args.peaks})
    single, track = shares(rows, now)
    best, b_single, b_track = grid[0]
    print(f"rerank_sweep best: weight={best.weight} refine_candidates={best.refine_candidates} "
          f"refine_weight={best.refine_weight} single={b_single:.3f} track={b_track:.3f} "
          f"(current: single={single:.3f} track={track:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
