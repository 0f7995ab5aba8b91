"""Every ``kedro run`` evaluation reports generalisation: per-split paper protocol with query counts
from the patch index, the gap, the baseline's best validation setting and the comparison."""

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # reads the outputs of a real ``kedro run``


def test_metrics_hold_every_split_the_gap_and_the_best_baseline(tiny_run):
    metrics = json.loads((tiny_run / "data/08_reporting/metrics.json").read_text())
    index = pd.read_parquet(tiny_run / "data/04_feature/eval_patch_index.parquet")
    gen = metrics["generalisation"]
    for method in ("model", "baseline"):
        for split in ("train", "val", "test"):
            e2r = gen[method]["paper"][split]["elevation_to_rgb"]
            assert e2r["n_queries"] == (index["split"] == split).sum()
        top1 = {s: gen[method]["paper"][s]["elevation_to_rgb"]["top1"] for s in ("train", "test")}
        gap = gen[method]["gap"]["top1_train_minus_test"]
        assert gap == pytest.approx(top1["train"] - top1["test"])
    # the test split's figures are the same numbers the existing keys report
    assert gen["model"]["paper"]["test"] == metrics["model"]["paper"]
    best = metrics["baseline_best"]
    assert best["setting"]["coarsen"] in (1, 2) and 0 <= best["val"]["top1"] <= 1
    c = metrics["comparison"]
    stronger = max(
        metrics["baseline"]["paper"]["elevation_to_rgb"]["top1"],
        best["paper"]["elevation_to_rgb"]["top1"],
    )
    assert c["stronger_baseline_top1"] == pytest.approx(stronger)
    report = (tiny_run / "data/08_reporting/report.md").read_text()
    assert "| train tiles |" in report and "top1_train_minus_test" in report
