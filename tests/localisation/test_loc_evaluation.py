"""Truth evaluation of localisation, checked on hand-made numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from matplotlib.figure import Figure

from croco_pipeline.localisation.confidence import confidence
from croco_pipeline.localisation.evaluation import (
    confidence_report,
    confidence_threshold,
    displace,
    displacement,
    error_cdf_figure,
    error_map_figure,
    errors_m,
    fix_keys,
    kind_of,
    localisation_metrics,
    markdown_table,
    per_fix_rates,
    relief_breakdown,
    relief_table,
    split_of,
    summarise,
    threshold_rates,
)


def _table() -> pd.DataFrame:
    """5 single scans (errors 1, 3, 5, 10, 40 m), a 2-scan track (2, 6 m), a failed single."""
    rows = [
        ("s0", "", 101.0, 200.0),
        ("s1", "", 100.0, 203.0),
        ("s2", "", 103.0, 204.0),  # 3-4-5
        ("s3", "", 110.0, 200.0),
        ("s4", "", 100.0, 160.0),
        ("t0a", "t0", 102.0, 200.0),
        ("t0b", "t0", 100.0, 206.0),
    ]
    table = pd.DataFrame(rows, columns=["query", "track", "x", "y"])
    table["status"] = "ok"
    table["truth_x"], table["truth_y"] = 100.0, 200.0
    failed = {"query": "s5", "track": "", "x": np.nan, "y": np.nan, "status": "failed",
              "truth_x": 0.0, "truth_y": 0.0}  # fmt: skip
    return pd.concat([table, pd.DataFrame([failed])], ignore_index=True)


def test_errors_and_kinds() -> None:
    table = _table()
    err = errors_m(table)
    np.testing.assert_allclose(err, [1, 3, 5, 10, 40, 2, 6, np.inf])
    assert kind_of(table).tolist() == ["single"] * 5 + ["track_2"] * 2 + ["single"]


def test_summary_by_hand() -> None:
    s = summarise(np.array([1, 3, 5, 10, 40, np.inf, np.nan]))
    # six counted (NaN = no truth): median of 1, 3, 5, 10, 40, inf = (5 + 10) / 2
    assert s == {
        "n": 6,
        "median_error_m": 7.5,
        "within_4m": 2 / 6,
        "within_8m": 3 / 6,
        "within_16m": 4 / 6,
        "within_32m": 4 / 6,
    }
    assert summarise(np.array([]))["median_error_m"] is None


def test_metrics_shape_and_values() -> None:
    model, baseline = _table(), _table()
    baseline["x"] += 20.0  # every baseline fix 20 m further east
    metrics = localisation_metrics({"model": model, "baseline": baseline})
    assert set(metrics) == {"model", "baseline"}
    for method in ("model", "baseline"):
        assert set(metrics[method]) >= {"single", "track_2", "track_4", "track_8"}
        for kind in metrics[method].values():
            assert set(kind) == {
                "n",
                "median_error_m",
                "within_4m",
                "within_8m",
                "within_16m",
                "within_32m",
            }
    single = metrics["model"]["single"]
    assert (single["n"], single["median_error_m"], single["within_8m"]) == (6, 7.5, 0.5)
    assert metrics["model"]["track_2"] == {
        "n": 2, "median_error_m": 4.0, "within_4m": 0.5, "within_8m": 1.0, "within_16m": 1.0,
        "within_32m": 1.0,
    }  # fmt: skip
    assert metrics["model"]["track_4"]["n"] == 0
    assert metrics["baseline"]["track_2"]["within_16m"] == 0.0  # 22 m and about 20.9 m
    json.dumps(metrics)  # plain JSON


def test_metrics_by_split() -> None:
    table = _table()
    labels = np.array(["test", "test", "train", "train", "train", "test", "test", "none"])
    metrics = localisation_metrics({"model": table}, {"model": labels})
    by = metrics["by_split"]["model"]
    assert by["test"]["single"]["n"] == 2 and by["test"]["single"]["median_error_m"] == 2.0
    assert by["train"]["single"]["within_8m"] == pytest.approx(1 / 3)
    assert by["test"]["track_2"]["n"] == 2
    # a track cut by a block edge: each part keeps the kind of the whole track
    labels[5] = "train"
    by = localisation_metrics({"model": table}, {"model": labels})["by_split"]["model"]
    assert by["train"]["track_2"]["n"] == by["test"]["track_2"]["n"] == 1
    assert "track_1" not in by["train"]


def test_relief_breakdown_sets_flat_scans_apart() -> None:
    table = _table()  # errors 1, 3, 5, 10, 40 (singles), 2, 6 (a track of 2), failed single
    spread = np.array([0.2, 3.0, 0.5, 0.4, 0.1, 2.0, 2.0, np.nan])  # the failed read has none
    table["relief"] = 1.0 - np.exp(-spread / 5.0)  # the confidence feature
    labels = np.array(["test", "test", "train", "train", "train", "test", "test", "none"])
    by = relief_breakdown(table, labels, flat_m=1.0)
    assert list(by) == ["all", "none", "test", "train"]
    flat, relief = by["all"]["flat"], by["all"]["relief"]
    # flat singles: 1, 5, 10, 40 m; with relief: 3 m; the track has relief; the failed one in neither
    assert flat["single"]["n"] == 4 and flat["single"]["within_8m"] == pytest.approx(0.5)
    assert by["none"]["flat"]["single"]["n"] == by["none"]["relief"]["single"]["n"] == 0
    assert relief["single"]["n"] == 1 and relief["single"]["within_8m"] == 1.0
    assert flat["track_2"]["n"] == 0 and relief["track_2"]["within_8m"] == 1.0
    assert by["train"]["flat"]["single"]["within_8m"] == pytest.approx(1 / 3)
    assert by["train"]["relief"]["single"]["n"] == 0
    # a 2.5 m threshold moves the track (2 m of spread) into the flat band
    assert relief_breakdown(table, labels, 2.5)["all"]["flat"]["track_2"]["n"] == 2
    assert "| all | single | 4 | 50 % | 1 | 100 % |" in relief_table(by, 1.0)
    assert relief_breakdown(table.drop(columns="relief"), labels, 1.0) == {}


def test_split_of_points() -> None:
    bounds = {"a": (0.0, 0.0, 10.0, 10.0), "b": (20.0, 0.0, 30.0, 10.0)}
    got = split_of(
        np.array([5.0, 25.0, 15.0, 10.0]),
        np.array([5.0, 5.0, 5.0, 5.0]),
        {"a": "test", "b": "train"},
        bounds,
    )
    assert got.tolist() == ["test", "train", "none", "none"]  # right edges are exclusive


def test_confidence_threshold_by_hand() -> None:
    # 10 right fixes (confidences 0.5..0.95), 10 wrong (0.0..0.45) plus one confident wrong one
    right = np.linspace(0.5, 0.95, 10)
    wrong = np.concatenate([np.linspace(0.0, 0.45, 10), [0.9]])
    conf = np.concatenate([right, wrong])
    correct = np.concatenate([np.ones(10, bool), np.zeros(11, bool)])
    got = confidence_threshold(conf, correct)
    # t in (0.45, 0.5] flags the 10 low wrong ones (10/11 = 0.909) and keeps all 10 right ones:
    # the middle of that gap is chosen
    assert got["threshold"] == pytest.approx(0.475)
    assert got["flagged_wrong"] == pytest.approx(10 / 11) and got["kept_right"] == 1.0
    assert got["meets_target"] and (got["n_right"], got["n_wrong"]) == (10, 11)
    # unreachable targets: the best balance is reported, flagged as not met
    mixed = confidence_threshold(
        np.array([0.1, 0.9, 0.2, 0.8]), np.array([True, True, False, False])
    )
    assert not mixed["meets_target"]
    assert min(mixed["flagged_wrong"], mixed["kept_right"]) == 0.5


def test_confidence_report_refits_weights_on_validation_rows() -> None:
    # 40 fixes at x = 100 + error; right ones (error 1 m) have high relief, wrong ones (50 m) low.
    # The hand-set confidence (0.5 for all) cannot tell them apart; refit weights on val rows can.
    rng = np.random.default_rng(0)
    right = np.arange(40) % 2 == 0
    table = pd.DataFrame({
        "query": [f"s{i}" for i in range(40)], "track": "", "status": "ok",
        "x": np.where(right, 101.0, 150.0), "y": 200.0, "truth_x": 100.0, "truth_y": 200.0,
        "confidence": 0.5, "peak_margin": rng.uniform(0, 1, 40),
        "relief": np.where(right, rng.uniform(0.5, 1.0, 40), rng.uniform(0.0, 0.4, 40)),
    })  # fmt: skip
    splits = np.where(np.arange(40) < 20, "val", "test")
    got = confidence_report(table, splits)
    assert got["chosen_on"] == "val" and not got["meets_target"]
    fitted = got["fitted"]
    assert set(fitted["weights"]) == {"peak_margin", "relief"} and fitted["weights"]["relief"] > 0
    assert fitted["meets_target"] and fitted["flagged_wrong"] >= 0.9 and fitted["kept_right"] == 1.0
    # test rows were not used to fit; the separation carries over
    assert fitted["test"]["flagged_wrong"] >= 0.9 and fitted["test"]["kept_right"] >= 0.9
    # single scans only: counting fixes changes nothing
    assert fitted["per_fix"]["test"] == fitted["test"] and fitted["per_fix"]["val"]["n_right"] == 10
    # bias_at_half moves the chosen threshold to 0.5: same flags on every row
    feats = table[["peak_margin", "relief"]].to_dict("records")
    at_fit = [confidence(f, fitted["bias"], fitted["weights"]) for f in feats]
    at_half = [confidence(f, fitted["bias_at_half"], fitted["weights"]) for f in feats]
    assert np.array_equal(np.array(at_fit) < fitted["threshold"], np.array(at_half) < 0.5)
    assert confidence(feats[0], fitted["bias_at_half"], fitted["weights"]) != at_fit[0]


def test_per_fix_rates_count_a_track_once() -> None:
    # track A: 4 right scans at confidence 0.2; track B: one right and one wrong scan at 0.3;
    # singles: s1 right at 0.9, s2 wrong at 0.1, s3 wrong at 0.8
    table = pd.DataFrame({
        "query": ["a0", "a1", "a2", "a3", "b0", "b1", "s1", "s2", "s3"],
        "track": ["A"] * 4 + ["B"] * 2 + [None, "", None],
    })  # fmt: skip
    keys = fix_keys(table)
    assert keys.tolist() == ["track:A"] * 4 + ["track:B"] * 2 + ["scan:s1", "scan:s2", "scan:s3"]
    conf = np.array([0.2] * 4 + [0.3] * 2 + [0.9, 0.1, 0.8])
    correct = np.array([True] * 4 + [True, False] + [True, False, False])
    per_scan = threshold_rates(conf, correct, 0.5)
    assert (per_scan["n_right"], per_scan["kept_right"]) == (6, pytest.approx(1 / 6))
    got = per_fix_rates(conf, correct, keys, 0.5)
    # fixes: A right (flagged), B wrong (half its scans right: not more than half), s1 right
    assert (got["n_right"], got["n_wrong"]) == (2, 3)
    assert got["kept_right"] == 0.5 and got["flagged_wrong"] == pytest.approx(2 / 3)


def test_displacement_is_seeded_and_kilometres() -> None:
    a = displacement("track4_000", seed=3, max_km=20)
    assert a == displacement("track4_000", seed=3, max_km=20)
    assert a != displacement("track4_001", seed=3, max_km=20)
    assert a != displacement("track4_000", seed=4, max_km=20)
    dists = [np.hypot(*displacement(f"q{i}", 0, 20)) for i in range(50)]
    assert 1000 <= min(dists) and max(dists) <= 20_000

    @dataclass
    class Cloud:
        x: np.ndarray
        y: np.ndarray
        z: np.ndarray

    cloud = Cloud(np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0, 6.0]))
    moved = displace(cloud, (1000.0, -2000.0))
    assert moved.x.tolist() == [1001.0, 1002.0] and moved.y.tolist() == [-1997.0, -1996.0]
    assert moved.z is cloud.z and cloud.x.tolist() == [1.0, 2.0]


def test_markdown_and_figures() -> None:
    table = _table()
    metrics = localisation_metrics({"model": table, "baseline": table})
    md = markdown_table(metrics)
    assert "| model | single | 6 | 7.50 | 33 % | 50 % | 67 % | 67 % |" in md
    assert "| baseline | track_4 | 0 | - |" in md
    fig = error_cdf_figure({"model": table, "baseline": table})
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) >= 4
    image = np.zeros((50, 60, 3), np.uint8)
    fig = error_map_figure(
        image, Affine(2.0, 0, 50.0, 0, -2.0, 260.0), {"model": table, "baseline": table}
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 3  # two panels and the colour bar


def test_displaced_queries_get_the_same_fix_and_keep_their_truth(
    tmp_path, oracle, oracle_map, heights
) -> None:
    from conftest import STATS, cloud_points, write_las

    from croco_pipeline.localisation.params import LocalizeParams
    from croco_pipeline.localisation.service import Context, localise_folder

    x, y, z = cloud_points(heights, slice(61, 101), slice(101, 141))
    write_las(tmp_path / "scan.laz", x, y, z)
    truth = ((x.min() + x.max()) / 2, (y.min() + y.max()) / 2)
    lmap, source = oracle_map
    rows = {}
    for km in (None, 30.0):
        params = LocalizeParams.from_params({"displace_km": km, "truth": "coords"})
        rows[km] = localise_folder(Context(oracle, lmap, source, STATS, params), tmp_path)[0][0]
    assert rows[None]["status"] == rows[30.0]["status"] == "ok"
    # the offset is not a multiple of the grid, so cells hold slightly different points: the fix
    # moves by centimetres, not by the kilometres of the offset
    assert rows[30.0]["x"] == pytest.approx(rows[None]["x"], abs=0.5)  # half a 1 m pixel
    assert rows[30.0]["y"] == pytest.approx(rows[None]["y"], abs=0.5)
    # truth from the scan's own coordinates, read before the displacement
    assert (rows[30.0]["truth_x"], rows[30.0]["truth_y"]) == pytest.approx(truth)
    assert rows[30.0]["error_m"] < 0.6
