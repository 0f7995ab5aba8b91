"""Generalisation metrics: per-split paper protocol, the train-test gap, and the stronger baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter
from torch import Tensor, nn

from croco_pipeline.data.stack import NormalisationStats
from croco_pipeline.evaluation.baseline import BaselineModel
from croco_pipeline.evaluation.generalisation import (
    generalisation_markdown,
    generalisation_metrics,
    paper_by_split,
)
from croco_pipeline.evaluation.params import BaselineSweepParams
from croco_pipeline.evaluation.protocols import flatten_metrics, paper_protocol
from fixtures_geo import make_stack, patch_grid

STATS = NormalisationStats("global_minmax", 0.0, 1.0, 1.0)


def _scene() -> tuple[list, pd.DataFrame]:
    """Train tiles whose heights copy the photo; val and test tiles whose heights are unrelated
    to it, so a model keyed on the photo-height match scores far better on seen ground."""
    rng = np.random.default_rng(0)
    stacks = []
    for i, split in enumerate(["train", "train", "val", "test"]):
        photo = gaussian_filter(rng.normal(size=(48, 48)), 1.5)
        photo = (photo - photo.min()) / (photo.max() - photo.min())
        heights = photo if split == "train" else gaussian_filter(rng.normal(size=(48, 48)), 1.5)
        stack = make_stack(f"t{i}", (48, 48), gsd=1.0, origin=(1000.0 + 60 * i, 5000.0),
                           split=split, elevation=heights[None].astype(np.float32))  # fmt: skip
        stack.rgb = np.repeat(np.round(photo * 255).astype(np.uint8)[None], 3, axis=0)
        stacks.append(stack)
    index = pd.concat([patch_grid(s, 8, 8, split=s.split) for s in stacks], ignore_index=True)
    return stacks, index


class Identity(nn.Module):
    """Embeds the zero-mean grey / first height channel pixels themselves."""

    def _embed(self, x: Tensor) -> Tensor:
        flat = x[:, 0].flatten(1) if x.shape[1] == 1 else x.mean(dim=1).flatten(1)
        return nn.functional.normalize(flat - flat.mean(dim=1, keepdim=True), dim=1)

    embed_rgb = _embed
    embed_elevation = _embed


def test_per_split_figures_equal_the_paper_protocol_on_each_split() -> None:
    stacks, index = _scene()
    by_split = paper_by_split(Identity(), stacks, index, STATS)
    assert list(by_split) == ["train", "val", "test"]
    for split in ("train", "test"):
        mine = [s for s in stacks if s.split == split]
        want = paper_protocol(Identity(), mine, index[index["split"] == split], STATS)
        assert by_split[split]["elevation_to_rgb"] == want["elevation_to_rgb"]
    assert by_split["train"]["elevation_to_rgb"]["n_queries"] == 2 * 36


def test_gap_and_comparison_with_the_stronger_baseline() -> None:
    stacks, index = _scene()
    sweep = BaselineSweepParams(coarsen=[1], sigmas_px=[0.0, 1.0], downsamples=[1],
                                gradients=["magnitude"])  # fmt: skip
    metrics, table = generalisation_metrics(
        Identity(), BaselineModel(), stacks, index, STATS, sweep
    )
    gen = metrics["generalisation"]["model"]
    train, test = (gen["paper"][s]["elevation_to_rgb"]["top1"] for s in ("train", "test"))
    assert train == 1.0 and test < 0.3  # memorised ground vs unrelated heights
    assert gen["gap"]["top1_train_minus_test"] == pytest.approx(train - test)
    assert gen["gap"]["top1_test_over_train"] == pytest.approx(test / train)
    assert table is not None and len(table) == 2
    best = metrics["baseline_best"]
    assert best["setting"]["sigma_px"] in (0.0, 1.0) and best["setting"]["gsd_m"] == 1.0
    assert best["val"]["top1"] == table["top1"].max()
    c = metrics["comparison"]
    tops = {"baseline": metrics["generalisation"]["baseline"]["paper"]["test"],
            "baseline_best": best["paper"]}  # fmt: skip
    stronger = max(tops, key=lambda k: tops[k]["elevation_to_rgb"]["top1"])
    assert c["stronger_baseline"] == stronger
    assert c["model_over_stronger_baseline"] == pytest.approx(
        test / tops[stronger]["elevation_to_rgb"]["top1"]
    )
    flat = flatten_metrics(metrics)
    assert "generalisation/model/gap/top1_train_minus_test" in flat
    assert "baseline_best/paper/elevation_to_rgb/top1" in flat
    report = generalisation_markdown(metrics)
    assert "| train tiles | 1.000 |" in report and "top1_train_minus_test" in report


def test_sweep_off_leaves_the_configured_baseline_alone() -> None:
    stacks, index = _scene()
    metrics, table = generalisation_metrics(
        Identity(), BaselineModel(), stacks, index, STATS, BaselineSweepParams(enabled=False)
    )
    assert table is None and "baseline_best" not in metrics
    assert metrics["comparison"]["stronger_baseline"] == "baseline"
