"""Localisation against known truth: errors, summaries per query kind and split, the confidence
threshold, seeded displacement of queries before search, and the figures.

A results table has one row per scan (``query``, ``track`` ("" for a single scan), ``x``, ``y``,
``status`` and, when known, ``truth_x``, ``truth_y``); tracks are grouped by their number of scans.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from affine import Affine
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from croco_pipeline.localisation.confidence import (
    FEATURES,
    confidence,
    fit_confidence,
    spread_from_relief,
)

THRESHOLDS_M = (4, 8, 16, 32)
KINDS = ("single", "track_2", "track_4", "track_8")
WRONG_M = 8.0  # a fix further than this from the truth is wrong (for the confidence)
Bounds = tuple[float, float, float, float]
T = TypeVar("T")


def displacement(query: str, seed: int, max_km: float) -> tuple[float, float]:
    """A reproducible offset (metres) of 1 km to ``max_km`` km in a random direction, per query.

    Applied to a query's coordinates after reading and before search (``displace``), it makes sure
    nothing can use where the query already lies; all scans of a track share their track's offset.
    """
    rng = np.random.default_rng([seed, zlib.crc32(query.encode("utf-8"))])
    distance = 1000.0 * rng.uniform(1.0, max(max_km, 1.0))
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return round(float(distance * np.cos(angle)), 2), round(float(distance * np.sin(angle)), 2)


def displace(cloud: T, offset: tuple[float, float]) -> T:
    """A copy of a point cloud (a dataclass with ``x``, ``y`` arrays) moved by ``offset``."""
    return replace(cloud, x=cloud.x + offset[0], y=cloud.y + offset[1])  # type: ignore[type-var, attr-defined]


def kind_of(table: pd.DataFrame) -> pd.Series:
    """``single`` for scans outside a track, else ``track_<number of scans in the track>``."""
    track = table["track"].fillna("").astype(str)
    size = table.groupby(track)["track"].transform("size")
    return pd.Series(
        np.where(track == "", "single", "track_" + size.astype(str)), index=table.index
    )


def split_of(
    x: np.ndarray, y: np.ndarray, tile_splits: Mapping[str, str], bounds: Mapping[str, Bounds]
) -> np.ndarray:
    """The split of the tile or block holding each point; ``none`` outside all (buffer strips)."""
    out = np.full(len(x), "none", dtype=object)
    for name, split in tile_splits.items():
        left, bottom, right, top = bounds[name]
        inside = (x >= left) & (x < right) & (y >= bottom) & (y < top)
        out[inside & (out == "none")] = split
    return out


def errors_m(table: pd.DataFrame) -> np.ndarray:
    """Distance (m) from estimate to truth per row; NaN where not located or truth unknown, inf for a
    failed query with known truth (it counts as missed, never as right)."""
    if "truth_x" not in table:
        return np.full(len(table), np.nan)
    err = np.array(
        np.hypot(table["x"] - table["truth_x"], table["y"] - table["truth_y"]), dtype=float
    )
    failed = (table["status"] != "ok").to_numpy() & table["truth_x"].notna().to_numpy()
    err[failed] = np.inf
    return err


def summarise(errors: np.ndarray) -> dict[str, Any]:
    """n, median error and fractions within 4/8/16/32 m of the finite-or-missed (non-NaN) errors."""
    e = np.asarray(errors, dtype=float)
    e = e[~np.isnan(e)]
    out: dict[str, Any] = {"n": int(len(e)), "median_error_m": None}
    if len(e):
        out["median_error_m"] = float(np.median(e))
    for t in THRESHOLDS_M:
        out[f"within_{t}m"] = float(np.mean(e <= t)) if len(e) else None
    return out


def summarise_by_kind(
    table: pd.DataFrame, kinds: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """``summarise`` per query kind: single and track_2/4/8 always, other track lengths if present.

    ``kinds`` (default ``kind_of(table)``) lets a subset keep the kinds of its whole tracks.
    """
    err = errors_m(table)
    kinds = kind_of(table).to_numpy() if kinds is None else np.asarray(kinds)
    names = list(KINDS) + sorted(set(kinds) - set(KINDS))
    return {k: summarise(err[kinds == k]) for k in names}


def localisation_metrics(
    tables: Mapping[str, pd.DataFrame], splits: Mapping[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """``{method: {kind: summary}}`` plus ``by_split: {method: {split: {kind: summary}}}``.

    Args:
        tables: results per method (``model``, ``baseline``...).
        splits: per method, the split label of each row (same order as its table).
    """
    out: dict[str, Any] = {name: summarise_by_kind(t) for name, t in tables.items()}
    if splits:
        by_split: dict[str, Any] = {}
        for name, table in tables.items():
            labels = np.asarray(splits[name])
            kinds = kind_of(table).to_numpy()  # a track cut by a block edge keeps its length
            by_split[name] = {
                s: summarise_by_kind(table[labels == s].reset_index(drop=True), kinds[labels == s])
                for s in sorted(set(labels))
            }
        out["by_split"] = by_split
    return out


def relief_breakdown(
    table: pd.DataFrame, splits: np.ndarray, flat_m: float
) -> dict[str, dict[str, Any]]:
    """``{split: {"flat" | "relief": {kind: summary}}}`` for ``all`` and each split.

    A scan is flat when the 10-90 % spread of its heights (read back from the ``relief`` feature)
    is at most ``flat_m``: ground a height model holds little to match on. A scan without the
    feature (one that failed to read) is in neither band; a table without the column (the
    classical baseline's) gives ``{}``.
    """
    if "relief" not in table:
        return {}
    spread = spread_from_relief(table["relief"].to_numpy(float))
    flat, relief = spread <= flat_m, spread > flat_m  # NaN in neither
    kinds = kind_of(table).to_numpy()
    labels = np.asarray(splits)
    out: dict[str, dict[str, Any]] = {}
    for split in ["all", *sorted(set(labels))]:
        rows = np.ones(len(table), bool) if split == "all" else labels == split
        out[split] = {
            band: summarise_by_kind(table[rows & pick].reset_index(drop=True), kinds[rows & pick])
            for band, pick in (("flat", flat), ("relief", relief))
        }
    return out


def relief_table(breakdown: Mapping[str, Any], flat_m: float) -> str:
    """Markdown: per split and query kind, flat scans and scans with relief within 8 m."""
    lines = [
        f"| queries in | kind | flat (spread <= {flat_m:g} m): n | within 8 m "
        "| with relief: n | within 8 m |",
        "|---|---|---|---|---|---|",
    ]
    for split, bands in breakdown.items():
        for kind in sorted(set(bands["flat"]) | set(bands["relief"])):
            flat, relief = bands["flat"][kind], bands["relief"][kind]
            if flat["n"] or relief["n"]:
                lines.append(
                    f"| {split} | {kind} | {flat['n']} | {_fmt(flat['within_8m'], True)} "
                    f"| {relief['n']} | {_fmt(relief['within_8m'], True)} |"
                )
    return "\n".join(lines) + "\n"


def confidence_threshold(
    confidence: np.ndarray, correct: np.ndarray, flag: float = 0.9, keep: float = 0.9
) -> dict[str, Any]:
    """The threshold t (fixes with confidence < t are flagged) meeting both targets if it can:
    flag >= ``flag`` of the wrong fixes and keep >= ``keep`` of the right ones. Among thresholds
    meeting both the one keeping most right fixes wins; if none does, the best min(flagged, kept).
    Every t between that confidence and the next lower one gives the same rates on these fixes;
    the middle of that gap is returned, so that new fixes are not judged on a data point's edge.
    """
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    candidates = np.unique(np.concatenate([conf, [np.inf]]))
    best: dict[str, Any] | None = None
    for t in candidates:
        rates = threshold_rates(conf, ok, float(t))
        meets = (rates["flagged_wrong"] or 0.0) >= flag and (rates["kept_right"] or 0.0) >= keep
        score = (
            meets,
            rates["kept_right"]
            if meets
            else min(rates["flagged_wrong"] or 0.0, rates["kept_right"] or 0.0),
        )
        if best is None or score > best["_score"]:
            best = dict(rates, threshold=float(t), meets_target=meets, _score=score)
    assert best is not None
    best.pop("_score")
    below = candidates[candidates < best["threshold"]]
    if len(below) and np.isfinite(best["threshold"]):
        best["threshold"] = float(below[-1] + best["threshold"]) / 2
    return best


def threshold_rates(
    confidence: np.ndarray, correct: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Share of wrong fixes flagged (confidence < threshold) and of right ones kept, with counts."""
    conf, ok = np.asarray(confidence, float), np.asarray(correct, bool)
    wrong = ~ok
    return {
        "n_right": int(ok.sum()),
        "n_wrong": int(wrong.sum()),
        "flagged_wrong": float(np.mean(conf[wrong] < threshold)) if wrong.any() else None,
        "kept_right": float(np.mean(conf[ok] >= threshold)) if ok.any() else None,
    }


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.0f} %" if pct else f"{v:.2f}"


def markdown_table(
    metrics: Mapping[str, Any], methods: tuple[str, ...] = ("model", "baseline")
) -> str:
    """Rows per method and query kind: n, median error, within 4/8/16/32 m."""
    head = (
        "| method | queries | n | median error (m) | "
        + " | ".join(f"<= {t} m" for t in THRESHOLDS_M)
        + " |"
    )
    lines = [head, "|" + "---|" * (4 + len(THRESHOLDS_M))]
    for method in methods:
        for kind, s in metrics.get(method, {}).items():
            cells = [_fmt(s[f"within_{t}m"], pct=True) for t in THRESHOLDS_M]
            lines.append(
                f"| {method} | {kind} | {s['n']} | {_fmt(s['median_error_m'])} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def error_cdf_figure(tables: Mapping[str, pd.DataFrame], max_m: float = 64.0) -> Figure:
    """Cumulative share of queries within each error, one curve per method and query kind."""
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    styles = {"model": "-", "baseline": "--"}
    for method, table in tables.items():
        err, kinds = errors_m(table), kind_of(table).to_numpy()
        for i, kind in enumerate(KINDS):
            e = np.sort(err[(kinds == kind) & ~np.isnan(err)])
            if len(e) == 0:
                continue
            ax.step(np.r_[1e-3, e.clip(max=max_m * 2)], np.arange(len(e) + 1) / len(e), where="post",
                    ls=styles.get(method, ":"), color=f"C{i}", label=f"{method} {kind} (n={len(e)})")  # fmt: skip
    for t in THRESHOLDS_M:
        ax.axvline(t, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlim(0.25, max_m)
    ax.set_ylim(0, 1)
    ax.set_xlabel("error (m)")
    ax.set_ylabel("share of scans within")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def error_map_figure(
    image: np.ndarray, transform: Affine, tables: Mapping[str, pd.DataFrame]
) -> Figure:
    """Estimated vs true positions on the ortho (h, w, 3), one panel per method, coloured by error."""
    n = max(len(tables), 1)
    aspect = image.shape[0] / max(image.shape[1], 1)
    fig = _figure(7 * n, 7 * aspect + 0.8)
    left, top = transform.c, transform.f
    extent = (left, left + transform.a * image.shape[1], top + transform.e * image.shape[0], top)
    for i, (name, table) in enumerate(tables.items()):
        ax = fig.add_subplot(1, n, i + 1)
        ax.imshow(image, extent=extent)
        err = errors_m(table)
        known = np.isfinite(err)
        t = table[known]
        for _, r in t.iterrows():
            ax.plot([r["truth_x"], r["x"]], [r["truth_y"], r["y"]], color="white", lw=0.6)
        ax.scatter(t["truth_x"], t["truth_y"], s=12, marker="x", color="white", label="truth")
        sc = ax.scatter(t["x"], t["y"], c=err[known], cmap="RdYlGn_r", vmin=0, vmax=32, s=18,
                        edgecolors="black", linewidths=0.3, label="estimate")  # fmt: skip
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.legend(loc="lower right", fontsize=7)
        within = float(np.mean(err[~np.isnan(err)] <= 8)) if (~np.isnan(err)).any() else 0.0
        ax.set_title(f"{name}: {int(known.sum())} scans, {100 * within:.0f} % within 8 m")
    if tables:
        fig.colorbar(sc, ax=fig.axes, label="error (m, clipped at 32)", shrink=0.7)
    return fig


def row_splits(
    table: pd.DataFrame, tile_splits: Mapping[str, str], bounds: Mapping[str, Bounds]
) -> np.ndarray:
    """The split of each row's true position (``none`` without truth or between blocks)."""
    if "truth_x" not in table:
        return np.full(len(table), "none", dtype=object)
    x = table["truth_x"].to_numpy(float)
    y = table["truth_y"].to_numpy(float)
    return split_of(
        np.nan_to_num(x, nan=-np.inf), np.nan_to_num(y, nan=-np.inf), tile_splits, bounds
    )


def better_baseline(metrics: Mapping[str, Any], names: list[str], split: str | None = None) -> str:
    """The baseline variant with the larger share of single scans within 8 m (on ``split`` if given
    and present, so a choice made on validation queries does not peek at the test ones)."""

    def score(name: str) -> float:
        block = metrics[name]
        if split is not None and split in metrics.get("by_split", {}).get(name, {}):
            block = metrics["by_split"][name][split]
        return block["single"]["within_8m"] or 0.0

    return max(names, key=score)


def fix_keys(table: pd.DataFrame) -> np.ndarray:
    """One key per fix: the scans of a track share one (one offset, one confidence), a single scan
    is its own."""
    query = table["query"].astype(str).to_numpy()
    track = table["track"].fillna("").astype(str).to_numpy() if "track" in table else query
    return np.where(track != "", "track:" + track, "scan:" + query).astype(object)


def per_fix_rates(
    conf: np.ndarray, correct: np.ndarray, keys: np.ndarray, threshold: float
) -> dict[str, Any]:
    """``threshold_rates`` counting each fix once: a track is right when more than half its scans are,
    and carries its scans' mean confidence."""
    frame = pd.DataFrame({"key": keys, "conf": conf, "right": correct.astype(float)})
    fixes = frame.groupby("key", sort=True).mean()
    return threshold_rates(fixes["conf"].to_numpy(), fixes["right"].to_numpy() > 0.5, threshold)


def confidence_report(
    table: pd.DataFrame,
    splits: np.ndarray,
    wrong_m: float = WRONG_M,
    flag: float = 0.9,
    keep: float = 0.9,
) -> dict[str, Any]:
    """Threshold chosen on validation rows (all rows if none), and its rates on test rows, per scan
    and under ``per_fix`` per fix (a track once); under ``fitted`` the same for weights refit on
    those rows (``fit_confidence``), to paste into ``localize.confidence`` (``bias_at_half``: the
    bias that puts the chosen threshold at 0.5)."""
    err = errors_m(table)
    known = ~np.isnan(err) & table["confidence"].notna().to_numpy()
    correct = err <= wrong_m
    chosen_on = "val" if (known & (splits == "val")).any() else "all"
    pick = known & (splits == "val") if chosen_on == "val" else known
    if not pick.any():
        return {"chosen_on": None, "threshold": None}
    test = known & (splits == "test")

    keys = fix_keys(table)

    def rates(conf: np.ndarray) -> dict[str, Any]:
        out = confidence_threshold(conf[pick], correct[pick], flag, keep)
        out["chosen_on"] = chosen_on
        t = out["threshold"]
        # a track counted once, not once per scan (an 8-scan track weighs 8 single scans above)
        out["per_fix"] = {chosen_on: per_fix_rates(conf[pick], correct[pick], keys[pick], t)}
        if test.any():
            out["test"] = threshold_rates(conf[test], correct[test], t)
            out["per_fix"]["test"] = per_fix_rates(conf[test], correct[test], keys[test], t)
        return out

    report = rates(table["confidence"].to_numpy(float))
    present = [f for f in FEATURES if f in table.columns]
    feats = table[present].to_numpy(float) if present else np.zeros((len(table), 0))
    both = pick & np.isfinite(feats).all(axis=1)
    if present and len(np.unique(correct[both])) == 2:
        bias, weights = fit_confidence(feats[both], correct[both], present)
        clean = np.nan_to_num(feats)
        refit = np.array(
            [confidence(dict(zip(present, f, strict=True)), bias, weights) for f in clean]
        )
        fitted = rates(refit)
        # the same weights with the chosen threshold moved to 0.5: a fix is trusted at >= 0.5
        t = float(np.clip(fitted["threshold"], 1e-6, 1 - 1e-6))
        fitted["bias_at_half"] = bias - float(np.log(t / (1 - t)))
        report["fitted"] = dict(fitted, bias=bias, weights=weights)
    return report
