"""Where localisation falls short: precision of the right fixes, where the wrong ones land, relief.

Reads what ``kedro run [--env autzen] --pipelines=...,localize,localize_eval`` left in the catalog
(``localisations``, ``tile_splits``, ``aligned_stacks``) and prints, per split of the scans' true
centres and per query kind (single / track_L):

- ``within_8m``: share of scans within 8 m of the truth;
- ``precision_m``: median error of the fixes within 32 m (the right place found: what refinement and
  the map stride leave);
- ``wrong_in_train``: share of the wrong fixes (> 8 m) whose estimate lies in a training tile/block
  (the model recalling ground it memorised);
- ``relief_right`` / ``relief_wrong``: median 10-90 % height spread feature of right and wrong fixes.

    python benchmarks/localisation_limits.py [--env autzen]

Last line: ``limits single_within_8m=<> precision_m=<> wrong_in_train=<>`` (test scans, single).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from croco_pipeline.localisation.evaluation import errors_m, kind_of, row_splits, split_of
from croco_pipeline.localisation.query_maker import stack_bounds
from croco_pipeline.pipelines.utils import materialise

ROOT = Path(__file__).resolve().parents[1]


def limits(table: pd.DataFrame, splits: np.ndarray, landed: np.ndarray) -> pd.DataFrame:
    """One row per (split, kind): the figures of the module docstring."""
    err = errors_m(table)
    kinds = kind_of(table).to_numpy()
    relief = table["relief"].to_numpy(float) if "relief" in table else np.full(len(table), np.nan)
    rows = []
    for split in sorted(set(splits) - {"none"}):
        for kind in sorted(set(kinds)):
            pick = (splits == split) & (kinds == kind) & ~np.isnan(err)
            if not pick.any():
                continue
            e, right = err[pick], err[pick] <= 8
            close = e[e <= 32]
            wrong_landed = landed[pick][~right]
            rows.append(
                {
                    "split": split,
                    "kind": kind,
                    "n": int(pick.sum()),
                    "within_8m": float(right.mean()),
                    "precision_m": float(np.median(close)) if len(close) else np.nan,
                    "wrong_in_train": (
                        float(np.mean(wrong_landed == "train")) if len(wrong_landed) else np.nan
                    ),
                    "relief_right": (
                        float(np.nanmedian(relief[pick][right])) if right.any() else np.nan
                    ),
                    "relief_wrong": (
                        float(np.nanmedian(relief[pick][~right])) if (~right).any() else np.nan
                    ),
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=None, help="Kedro environment (e.g. autzen)")
    args = parser.parse_args()
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        catalog = session.load_context().catalog
        table = catalog.load("localisations")
        tile_splits = catalog.load("tile_splits")
        bounds = stack_bounds(materialise(catalog.load("aligned_stacks")).values())
    splits = row_splits(table, tile_splits, bounds)
    x = np.nan_to_num(table["x"].to_numpy(float), nan=-np.inf)
    y = np.nan_to_num(table["y"].to_numpy(float), nan=-np.inf)
    landed = split_of(x, y, tile_splits, bounds)
    out = limits(table, splits, landed)
    print(out.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    test = out[(out["split"] == "test") & (out["kind"] == "single")]
    if len(test):
        r = test.iloc[0]
        print(
            f"limits single_within_8m={r['within_8m']:.3f} precision_m={r['precision_m']:.2f} "
            f"wrong_in_train={r['wrong_in_train']:.2f}"
        )


if __name__ == "__main__":
    main()
