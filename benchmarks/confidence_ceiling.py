"""How well the confidence features can tell right fixes from wrong ones, whatever the weights.

Reads ``localisations`` (or ``--table``, e.g. a copy of a calibration run's ``localisations.csv``)
with ``tile_splits`` and ``aligned_stacks`` from the catalog that ``kedro run [--env autzen]`` left,
and prints per split of the scans' true centres:

- each confidence feature's AUC (the chance that a right fix scores above a wrong one), and of two
  margins read from the top-5 columns: ``refine_margin`` (the winner's refinement score minus the
  best other refined candidate's) and ``ncc_margin`` (the same for the gradient NCC);
- the ceiling: logistic weights refit on that split's own fixes (in sample, so no held-out choice
  can do better with these features) and the threshold ``localize_eval`` would choose on them:
  share of wrong fixes flagged and of right ones kept, and the refit's AUC;
- the shipped confidence at 0.5;
- with ``--fit-on`` (another run's table, e.g. the calibration scans'): weights refit on all its
  fixes and the threshold chosen there, applied to this table's splits (held out, as shipped).

    python benchmarks/confidence_ceiling.py [--env autzen] [--table localisations.csv] [--fit-on calib.csv]

Last line: ``confidence_ceiling test_flagged=<> test_kept=<> test_auc=<>`` (the confidence features
the table holds: ``features_*`` rows; ``with_margins_*`` adds the two margins).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from scipy.stats import rankdata

from croco_pipeline.localisation.confidence import FEATURES, fit_confidence
from croco_pipeline.localisation.evaluation import (
    WRONG_M,
    confidence_threshold,
    errors_m,
    row_splits,
    threshold_rates,
)
from croco_pipeline.localisation.query_maker import stack_bounds
from croco_pipeline.pipelines.utils import materialise

ROOT = Path(__file__).resolve().parents[1]
MARGINS = ("refine_margin", "ncc_margin")


def auc(score: np.ndarray, right: np.ndarray) -> float:
    """Mann-Whitney AUC of ``score`` for right (True) against wrong fixes (ties count half)."""
    n_right, n_wrong = int(right.sum()), int((~right).sum())
    if not n_right or not n_wrong:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[right].sum() - n_right * (n_right + 1) / 2) / (n_right * n_wrong))


def margin(column: pd.Series) -> np.ndarray:
    """First candidate's value minus the best other one's (NaN where no other was scored)."""
    values = np.array([json.loads(v) for v in column], dtype=float)
    others = np.where(np.isnan(values[:, 1:]), -np.inf, values[:, 1:]).max(axis=1)
    out = values[:, 0] - others
    return np.where(np.isfinite(out), out, np.nan)


def confidence_of(x: np.ndarray, bias: float, weights: dict[str, float]) -> np.ndarray:
    """The logistic mapping of ``localisation.confidence`` for feature rows ``x`` (columns in
    ``weights`` order), vectorised and open to the two margins, which it does not know."""
    z = np.clip(bias + x @ np.array(list(weights.values())), -60, 60)
    return 1.0 / (1.0 + np.exp(-z))


def ceiling(x: np.ndarray, right: np.ndarray, names: list[str]) -> dict[str, float]:
    """Refit on these fixes, then the threshold chosen on them: its rates and the refit's AUC."""
    bias, weights = fit_confidence(x, right, names)
    conf = confidence_of(x, bias, weights)
    chosen = confidence_threshold(conf, right)
    return {
        "flagged": chosen["flagged_wrong"],
        "kept": chosen["kept_right"],
        "auc": auc(conf, right),
    }


def features(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The confidence features and the two margins, the errors, and which rows have both."""
    err = errors_m(table)
    ok = (table["status"] == "ok").to_numpy() & ~np.isnan(err)
    feats = table[[f for f in FEATURES if f in table]].copy()  # older tables lack the newer ones
    for name in MARGINS:
        column = "top5_refine_score" if name == "refine_margin" else "top5_gradient_ncc"
        feats[name] = margin(table[column])
    return feats.fillna(0.0), err, ok


def held_out(fit_on: pd.DataFrame, names: list[str]) -> tuple[float, dict[str, float], float]:
    """Weights refit on every fix of ``fit_on`` and the threshold chosen on them."""
    feats, err, ok = features(fit_on)
    x, right = feats[names].to_numpy(float)[ok], err[ok] <= WRONG_M
    bias, weights = fit_confidence(x, right, names)
    return bias, weights, confidence_threshold(confidence_of(x, bias, weights), right)["threshold"]


def split_row(
    feats: pd.DataFrame, right: np.ndarray, shipped: np.ndarray, fits: dict[str, tuple]
) -> dict[str, object]:
    """The figures of one split's fixes (``feats`` rows, known ``right``, shipped confidence)."""
    row: dict[str, object] = {"n": len(right), "right": right.mean()}
    for name in feats.columns:
        row[f"auc_{name}"] = auc(feats[name].to_numpy(float), right)
    present = [c for c in feats.columns if c not in MARGINS]
    for label, names in (("features", present), ("with_margins", list(feats.columns))):
        if 0 < right.sum() < len(right):
            fit = ceiling(feats[names].to_numpy(float), right, names)
            row.update({f"{label}_{k}": v for k, v in fit.items()})
    rates = threshold_rates(shipped, right, 0.5)
    row["shipped_flagged"], row["shipped_kept"] = rates["flagged_wrong"], rates["kept_right"]
    for label, (bias, weights, threshold) in fits.items():
        conf = confidence_of(feats[list(weights)].to_numpy(float), bias, weights)
        rates = threshold_rates(conf, right, threshold)
        row[f"held_out_{label}_flagged"] = rates["flagged_wrong"]
        row[f"held_out_{label}_kept"] = rates["kept_right"]
    return row


def study(
    table: pd.DataFrame, splits: np.ndarray, fit_on: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per split: ``split_row`` with the held-out refits from ``fit_on`` (if given)."""
    feats, err, ok = features(table)
    fits = {}
    if fit_on is not None:
        present = [c for c in feats.columns if c not in MARGINS]
        fits = {"features": held_out(fit_on, present)}
        fits["with_margins"] = held_out(fit_on, list(feats.columns))
    rows = []
    for split in sorted(set(splits[ok]) - {"none"}) + ["all"]:
        pick = ok & ((splits == split) if split != "all" else True)
        shipped = table["confidence"].to_numpy(float)[pick]
        row = split_row(feats[pick].reset_index(drop=True), err[pick] <= WRONG_M, shipped, fits)
        rows.append({"split": split, **row})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=None, help="Kedro environment (e.g. autzen)")
    parser.add_argument("--table", default=None, help="a localisations.csv (default: catalog's)")
    parser.add_argument("--fit-on", default=None, help="refit on this table's fixes, apply here")
    args = parser.parse_args()
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        catalog = session.load_context().catalog
        table = pd.read_csv(args.table) if args.table else catalog.load("localisations")
        tile_splits = catalog.load("tile_splits")
        bounds = stack_bounds(materialise(catalog.load("aligned_stacks")).values())
    fit_on = pd.read_csv(args.fit_on) if args.fit_on else None
    out = study(table, row_splits(table, tile_splits, bounds), fit_on)
    print(out.T.to_string(header=False, float_format=lambda v: f"{v:.3f}"))
    test = out[out["split"] == "test"]
    if len(test) and "features_flagged" in test:
        r = test.iloc[0]
        print(
            f"confidence_ceiling test_flagged={r['features_flagged']:.3f} "
            f"test_kept={r['features_kept']:.3f} test_auc={r['features_auc']:.3f}"
        )


if __name__ == "__main__":
    main()
