"""Ablation domain logic: override merging, the parameters hash, study tables and plots."""

import math
from pathlib import Path

import pytest
import yaml
from matplotlib.figure import Figure

from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.experiments.ablation_config import (
    AblationConfig,
    Study,
    effective_params,
    merge_overrides,
    params_hash,
)
from croco_pipeline.experiments.ablation_report import (
    ablation_report,
    markdown_table,
    results_table,
    study_figure,
    study_table,
)
from croco_pipeline.experiments.runner import ExperimentConfig

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "preprocess": {"gsd": 1.0, "patch_size_m": 32, "blocks": {"buffer_m": 32}},
    "train": {"batch_size": 128, "base_batch_size": 128, "model": {"stem": "fast"}},
    "evaluate": {"strides_m": [4], "n_queries": 300},
}
ABLATION_PARAMS = {
    "profile": "tiny",
    "work_dir": "unused",
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
ABLATION = AblationConfig.from_params(ABLATION_PARAMS)


def _ablation(**changes) -> AblationConfig:
    return AblationConfig.from_params({**ABLATION_PARAMS, **changes})


def test_merge_overrides_is_deep_and_leaves_base_alone():
    merged = merge_overrides(BASE["train"], {"model": {"stem": "cifar"}}, "train")
    assert merged == {"batch_size": 128, "base_batch_size": 128, "model": {"stem": "cifar"}}
    assert BASE["train"]["model"]["stem"] == "fast"


def test_effective_params_layers_profile_then_configuration_then_batch_scale():
    params = effective_params(BASE, ABLATION, "batch_512")
    assert params["train"]["batch_size"] == 32 and params["train"]["base_batch_size"] == 8
    assert params["evaluate"] == {"strides_m": [4], "n_queries": 10}
    assert effective_params(BASE, ABLATION, "gsd_50cm")["preprocess"]["gsd"] == 0.5
    full = effective_params(BASE, _ablation(profile="full"), "baseline")
    assert full["train"]["model"]["stem"] == "cifar" and full["train"]["batch_size"] == 128


def test_unknown_key_profile_or_configuration_raise_naming_them():
    with pytest.raises(CrocoConfigError, match=r"train\.bach_size"):
        effective_params(BASE, ABLATION, "typo")
    with pytest.raises(CrocoConfigError, match=r"ablation\.profile"):
        _ablation(profile="gpu")
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


STUDY_PARAMS = {
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
STUDY = Study.from_params(STUDY_PARAMS)


def test_study_table_puts_published_numbers_beside_ours():
    results = {
        "batch_128": _result("batch_128", 0.2),
        "batch_512": _result("batch_512", 0.3, (4, 2)),
    }
    table = study_table(STUDY, results)
    assert list(table["batch size"]) == ["128", "512"]
    assert table["top1"].tolist() == [0.2, 0.3] and table["loc_stride_m"].tolist() == ["4", "2"]
    assert table["published_top1"].iloc[0] == 0.34 and math.isnan(table["published_top1"].iloc[1])
    md = markdown_table(STUDY.title, table)
    assert (
        "### Table 3: batch size" in md and "| 128 | batch_128 | 4 | 0.200" in md and "0.340" in md
    )
    rows = results_table(list(results.values()))
    assert {"model_loc2m_top1", "baseline_paper_top1", "params_hash"} <= set(rows.columns)
    with pytest.raises(CrocoConfigError, match="batch_512"):
        study_table(STUDY, {"batch_128": results["batch_128"]})
    # an axis named like one of the table's own columns would overwrite it
    with pytest.raises(CrocoConfigError, match=r"ablation\.studies\.t3\.axis"):
        _ablation(studies={"t3": dict(STUDY_PARAMS, axis="configuration")})


def test_a_profile_can_leave_configurations_out():
    profiles = dict(ABLATION_PARAMS["profiles"], tiny={"exclude": ["gsd_50cm"]})
    ablation = _ablation(profiles=profiles)
    assert ablation.excluded() == ["gsd_50cm"]
    assert _ablation(profiles=profiles, profile="full").excluded() == []
    # exclude is not a parameter section
    assert effective_params(BASE, ablation, "gsd_50cm")["preprocess"]["gsd"] == 0.5
    with pytest.raises(CrocoConfigError, match=r"ablation\.profiles\.tiny\.exclude"):
        _ablation(profiles={"tiny": {"exclude": ["gsd_5cm"]}})
    # an excluded configuration has no figures: empty cells, not an error
    left_out = dict(_result("batch_512", 0.3), status="excluded", metrics={})
    table = study_table(STUDY, {"batch_128": _result("batch_128", 0.2), "batch_512": left_out})
    assert table["top1"].iloc[0] == 0.2
    assert math.isnan(table["top1"].iloc[1]) and math.isnan(table["paper_protocol_top1"].iloc[1])
    assert "| 512 | batch_512 | 2 |  |" in markdown_table(STUDY.title, table)
    rows = results_table([_result("batch_128", 0.2), left_out])
    assert rows["status"].tolist() == ["trained", "excluded"]
    assert math.isnan(rows["model_paper_top1"].iloc[1])


def test_study_figure_renders_on_agg(tmp_path):
    table = study_table(
        STUDY,
        {"batch_128": _result("batch_128", 0.2), "batch_512": _result("batch_512", 0.3, (2,))},
    )
    fig = study_figure(STUDY.title, table)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 4
    drawn = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].lines}
    assert drawn["ours, localisation"] == table["top1"].tolist()
    assert drawn["ours, paper protocol"] == table["paper_protocol_top1"].tolist()
    assert drawn["published (DFC2018)"][0] == 0.34
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == table["batch size"].tolist()


def test_project_grid_is_consistent():
    """Every profile and configuration of conf/base merges onto the base parameters into checked
    preprocess/train/evaluate groups, and the report has every study's rows."""
    conf = {}
    for path in sorted((ROOT / "conf/base").glob("parameters*.yml")):
        conf.update(yaml.safe_load(path.read_text()))
    for profile in conf["ablation"]["profiles"]:
        ablation = AblationConfig.from_params(dict(conf["ablation"], profile=profile))
        results = []
        for name in ablation.configurations:
            params = effective_params(conf, ablation, name)
            checked = ExperimentConfig.from_params(params)
            assert checked.train.batch_size == params["train"]["batch_size"]
            results.append(dict(_result(name, 0.1, checked.evaluate.strides_m), params=params))
        report = ablation_report(ablation, results)
        for name, study in ablation.studies.items():
            assert len(report["tables"].query("study == @name")) == len(study.rows)
            assert isinstance(report["plots"][f"{name}.png"], Figure)
