"""Ablation domain logic: override merging, the parameters hash, study tables and plots."""

import math
from pathlib import Path

import pytest
import yaml
from matplotlib.figure import Figure

from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.experiments.ablation import (
    effective_params,
    excluded,
    markdown_table,
    merge_overrides,
    params_hash,
    results_table,
    study_figure,
    study_table,
)

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "preprocess": {"gsd": 1.0, "patch_size_m": 32, "blocks": {"buffer_m": 32}},
    "train": {"batch_size": 128, "base_batch_size": 128, "model": {"stem": "fast"}},
    "evaluate": {"strides_m": [4], "n_queries": 300},
}
ABLATION = {
    "profile": "tiny",
    "profiles": {
        "tiny": {"batch_size_scale": 0.0625, "evaluate": {"n_queries": 10}},
        "full": {"train": {"model": {"stem": "cifar"}}},
    },
    "configurations": {
        "baseline": {},
        "batch_512": {"train": {"batch_size": 512}},
        "gsd_50cm": {"preprocess": {"gsd": 0.5}},
        "typo": {"train": {"bach_size": 1}},
    },
}


def test_merge_overrides_is_deep_and_leaves_base_alone():
    merged = merge_overrides(BASE["train"], {"model": {"stem": "cifar"}}, "train")
    assert merged == {"batch_size": 128, "base_batch_size": 128, "model": {"stem": "cifar"}}
    assert BASE["train"]["model"]["stem"] == "fast"


def test_effective_params_layers_profile_then_configuration_then_batch_scale():
    params = effective_params(BASE, ABLATION, "batch_512")
    assert params["train"]["batch_size"] == 32 and params["train"]["base_batch_size"] == 8
    assert params["evaluate"] == {"strides_m": [4], "n_queries": 10}
    assert effective_params(BASE, ABLATION, "gsd_50cm")["preprocess"]["gsd"] == 0.5
    full = effective_params(BASE, dict(ABLATION, profile="full"), "baseline")
    assert full["train"]["model"]["stem"] == "cifar" and full["train"]["batch_size"] == 128


def test_unknown_key_profile_or_configuration_raise_naming_them():
    with pytest.raises(CrocoConfigError, match=r"train\.bach_size"):
        effective_params(BASE, ABLATION, "typo")
    with pytest.raises(CrocoConfigError, match=r"ablation\.profile"):
        effective_params(BASE, dict(ABLATION, profile="gpu"), "baseline")
    with pytest.raises(CrocoConfigError, match=r"ablation\.configurations"):
        effective_params(BASE, ABLATION, "nope")


def test_hash_is_stable_order_free_and_sensitive():
    a = effective_params(BASE, ABLATION, "baseline")
    shuffled = {k: dict(reversed(list(v.items()))) for k, v in reversed(list(a.items()))}
    assert (
        params_hash(a)
        == params_hash(shuffled)
        == params_hash(effective_params(BASE, ABLATION, "baseline"))
    )
    assert params_hash(a) != params_hash(effective_params(BASE, ABLATION, "gsd_50cm"))
    moved = {**a, "train": {**a["train"], "checkpoint_dir": "elsewhere", "resume": True}}
    assert params_hash(moved) == params_hash(a)  # where a run works does not change its result


def _result(name, top1, strides=(4,)):
    loc = {f"{s:g}": {"top1": top1, "top5": min(1.0, 2 * top1)} for s in strides}
    metrics = {
        m: {"paper": {"top1": top1 / 2, "top5": top1}, "localisation": loc}
        for m in ("model", "baseline")
    }
    params = {"evaluate": {"strides_m": list(strides)}}
    return {"name": name, "hash": name, "status": "trained", "params": params,
            "metrics": metrics, "train_time_s": 1.0, "best_val_top1": 0.1}  # fmt: skip


STUDY = {
    "title": "Table 3: batch size",
    "axis": "batch size",
    "rows": [
        {
            "config": "batch_128",
            "label": 128,
            "paper": {"setting": "b128", "top1": 0.34, "top5": 0.5},
        },
        {"config": "batch_512", "label": 512, "stride_m": 2},
    ],
}


def test_study_table_puts_published_numbers_beside_ours():
    results = {
        "batch_128": _result("batch_128", 0.2),
        "batch_512": _result("batch_512", 0.3, (4, 2)),
    }
    table = study_table(STUDY, results)
    assert list(table["batch size"]) == ["128", "512"]
    assert table["top1"].tolist() == [0.2, 0.3] and table["loc_stride_m"].tolist() == ["4", "2"]
    assert table["published_top1"].iloc[0] == 0.34 and math.isnan(table["published_top1"].iloc[1])
    md = markdown_table(STUDY["title"], table)
    assert (
        "### Table 3: batch size" in md and "| 128 | batch_128 | 4 | 0.200" in md and "0.340" in md
    )
    rows = results_table(list(results.values()))
    assert {"model_loc2m_top1", "baseline_paper_top1", "params_hash"} <= set(rows.columns)
    with pytest.raises(CrocoConfigError, match="batch_512"):
        study_table(STUDY, {"batch_128": results["batch_128"]})
    # an axis named like one of the table's own columns would overwrite it
    with pytest.raises(CrocoConfigError, match="axis"):
        study_table(dict(STUDY, axis="configuration"), results)


def test_a_profile_can_leave_configurations_out():
    ablation = dict(ABLATION, profiles=dict(ABLATION["profiles"], tiny={"exclude": ["gsd_50cm"]}))
    assert excluded(ablation) == ["gsd_50cm"] and excluded(dict(ablation, profile="full")) == []
    # exclude is not a parameter section
    assert effective_params(BASE, ablation, "gsd_50cm")["preprocess"]["gsd"] == 0.5
    with pytest.raises(CrocoConfigError, match=r"ablation\.profiles\.tiny\.exclude"):
        excluded(dict(ablation, profiles={"tiny": {"exclude": ["gsd_5cm"]}}))
    # an excluded configuration has no figures: empty cells, not an error
    left_out = dict(_result("batch_512", 0.3), status="excluded", metrics={})
    table = study_table(STUDY, {"batch_128": _result("batch_128", 0.2), "batch_512": left_out})
    assert table["top1"].iloc[0] == 0.2
    assert math.isnan(table["top1"].iloc[1]) and math.isnan(table["paper_protocol_top1"].iloc[1])
    assert "| 512 | batch_512 | 2 |  |" in markdown_table(STUDY["title"], table)
    rows = results_table([_result("batch_128", 0.2), left_out])
    assert rows["status"].tolist() == ["trained", "excluded"]
    assert math.isnan(rows["model_paper_top1"].iloc[1])


def test_study_figure_renders_on_agg(tmp_path):
    table = study_table(
        STUDY,
        {"batch_128": _result("batch_128", 0.2), "batch_512": _result("batch_512", 0.3, (2,))},
    )
    fig = study_figure(STUDY["title"], table)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 4
    fig.savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 5000


def test_project_grid_is_consistent():
    """Every profile and configuration of conf/base merges onto the base parameters."""
    conf = {}
    for path in sorted((ROOT / "conf/base").glob("parameters*.yml")):
        conf.update(yaml.safe_load(path.read_text()))
    ablation = conf["ablation"]
    for profile in ablation["profiles"]:
        results = {}
        for name in ablation["configurations"]:
            params = effective_params(conf, dict(ablation, profile=profile), name)
            results[name] = _result(name, 0.1, params["evaluate"]["strides_m"])
            results[name]["params"] = params
        for study in ablation["studies"].values():
            assert len(study_table(study, results)) == len(study["rows"])
    assert "-" not in "".join(ablation["configurations"]) and "." not in "".join(
        ablation["configurations"]
    )
