"""Ablation studies (the paper's Tables 1-4 and our recipe switches): effective parameters per
configuration, a stable hash of them, study tables beside the published numbers, and plots.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from croco_pipeline.errors import CrocoConfigError, bad_param
from croco_pipeline.nesting import flatten

#: the parameter blocks a profile or configuration may override
SECTIONS = ("preprocess", "train", "evaluate")
#: keys that say where or how verbosely a run works, not what it computes: left out of the hash
VOLATILE_KEYS = ("train.checkpoint_dir", "train.resume", "train.progress", "train.num_workers")


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> dict:
    """Deep copy of ``base`` with ``overrides`` applied; a key unknown to ``base`` is an error.

    Raises:
        CrocoConfigError: naming the unknown key as ``<where>.<key>``.
    """
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        name = f"{where}.{key}"
        if key not in out:
            raise CrocoConfigError(f"parameter '{name}' is unknown: expected one of {sorted(out)}")
        if isinstance(value, Mapping) and isinstance(out[key], Mapping):
            out[key] = merge_overrides(out[key], value, name)
        else:
            out[key] = copy.deepcopy(value)
    return out


def effective_params(
    base: Mapping[str, Mapping[str, Any]], ablation: Mapping[str, Any], config: str
) -> dict[str, dict[str, Any]]:
    """``{"preprocess", "train", "evaluate"}`` for one configuration: base <- profile <- config.

    The profile's ``batch_size_scale`` multiplies the final ``train.batch_size`` (and the LR
    scaling's ``base_batch_size``), so a tiny profile keeps the batch study's distinct points.
    """
    profiles = ablation.get("profiles", {})
    profile_name = ablation.get("profile")
    if profile_name not in profiles:
        raise bad_param("ablation.profile", profile_name, f"one of {sorted(profiles)}")
    configurations = ablation.get("configurations", {})
    if config not in configurations:
        raise bad_param("ablation.configurations", config, f"one of {sorted(configurations)}")
    profile = dict(profiles[profile_name] or {})
    profile.pop("exclude", None)
    scale = float(profile.pop("batch_size_scale", 1.0))
    if not scale > 0:
        raise bad_param(f"ablation.profiles.{profile_name}.batch_size_scale", scale, "> 0")
    layers = [
        (profile, f"ablation.profiles.{profile_name}"),
        (configurations[config] or {}, f"ablation.configurations.{config}"),
    ]
    params = {s: copy.deepcopy(dict(base[s])) for s in SECTIONS}
    for layer, where in layers:
        for section, overrides in layer.items():
            if section not in SECTIONS:
                raise CrocoConfigError(
                    f"parameter '{where}.{section}' is unknown: expected one of {list(SECTIONS)}"
                )
            params[section] = merge_overrides(params[section], overrides or {}, section)
    train = params["train"]
    for key in ("batch_size", "base_batch_size"):
        train[key] = max(1, round(int(train[key]) * scale))
    return params


def excluded(ablation: Mapping[str, Any]) -> list[str]:
    """Configurations the current profile leaves out (``profiles.<profile>.exclude``), validated."""
    profile_name = ablation.get("profile")
    names = list((ablation.get("profiles", {}).get(profile_name) or {}).get("exclude") or [])
    known = ablation.get("configurations", {})
    for name in names:
        if name not in known:
            raise bad_param(
                f"ablation.profiles.{profile_name}.exclude", name, f"one of {sorted(known)}"
            )
    return names


def params_hash(params: Mapping[str, Any]) -> str:
    """A stable short hash of the parameters that change a result (key order does not matter)."""
    relevant = {k: v for k, v in flatten(params).items() if k not in VOLATILE_KEYS}
    text = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def summarise_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers the tables need from ``evaluate_model``'s metrics, for model and baseline.

    Returns:
        ``{"model"|"baseline": {"paper": {"top1", "top5"}, "localisation": {"<s>": {"top1",
        "top5"}}}}`` (elevation -> RGB; localisation hits within one stride ``s`` metres).
    """
    out: dict[str, Any] = {}
    for method in ("model", "baseline"):
        paper = metrics[method]["paper"]["elevation_to_rgb"]
        loc: dict[str, dict[str, float]] = {}
        for key, directions in metrics[method]["localisation"].items():
            stride = float(key.removeprefix("stride_").removesuffix("m"))
            e2r = directions["elevation_to_rgb"]
            loc[f"{stride:g}"] = {
                f"top{k}": float(e2r[f"top{k}_within_{stride:g}m"]) for k in (1, 5)
            }
        out[method] = {
            "paper": {"top1": float(paper["top1"]), "top5": float(paper["top5"])},
            "localisation": loc,
        }
    return out


def _loc(result: Mapping[str, Any], method: str, stride: str | None) -> dict[str, float]:
    if method not in result["metrics"]:
        return {"top1": math.nan, "top5": math.nan}
    loc = result["metrics"][method]["localisation"]
    if stride is None:
        stride = f"{float(result['params']['evaluate']['strides_m'][0]):g}"
    return loc.get(stride, {"top1": math.nan, "top5": math.nan})


def results_table(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per configuration: status, hash, time and every headline number."""
    rows = []
    for r in results:
        row: dict[str, Any] = {
            "configuration": r["name"],
            "status": r.get("status", ""),
            "params_hash": r["hash"],
            "train_time_s": r.get("train_time_s", math.nan),
            "best_val_top1": r.get("best_val_top1", math.nan),
        }
        for method in ("model", "baseline"):
            if method not in r["metrics"]:  # an excluded configuration: no figures
                continue
            m = r["metrics"][method]
            row[f"{method}_paper_top1"] = m["paper"]["top1"]
            row[f"{method}_paper_top5"] = m["paper"]["top5"]
            for stride, v in sorted(m["localisation"].items(), key=lambda kv: float(kv[0])):
                row[f"{method}_loc{stride}m_top1"] = v["top1"]
                row[f"{method}_loc{stride}m_top5"] = v["top5"]
        rows.append(row)
    return pd.DataFrame(rows)


def study_table(study: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """A paper-shaped table: our Top-1/Top-5 (both protocols, model and classical baseline) per row,
    with the paper's published numbers beside them (empty where it reports none)."""
    reserved = ("configuration", "loc_stride_m", "top1", "top5")
    if study["axis"] in reserved or str(study["axis"]).startswith(
        ("paper", "classical", "published")
    ):
        raise bad_param("ablation.studies.*.axis", study["axis"], f"a name other than {reserved}")
    rows = []
    for spec in study["rows"]:
        name = spec["config"]
        if name not in results:
            raise bad_param("ablation.studies.*.rows.config", name, "a configuration of the run")
        r = results[name]
        stride = None if spec.get("stride_m") is None else f"{float(spec['stride_m']):g}"
        used = stride or f"{float(r['params']['evaluate']['strides_m'][0]):g}"
        paper = spec.get("paper") or {}
        loc, base_loc = _loc(r, "model", stride), _loc(r, "baseline", stride)
        paper_protocol = r["metrics"].get("model", {}).get("paper", {})
        rows.append(
            {
                study["axis"]: str(spec.get("label", name)),
                "configuration": name,
                "loc_stride_m": used,
                "top1": loc["top1"],
                "top5": loc["top5"],
                "paper_protocol_top1": paper_protocol.get("top1", math.nan),
                "paper_protocol_top5": paper_protocol.get("top5", math.nan),
                "classical_top1": base_loc["top1"],
                "classical_top5": base_loc["top5"],
                "published_setting": paper.get("setting", ""),
                "published_top1": paper.get("top1", math.nan),
                "published_top5": paper.get("top5", math.nan),
            }
        )
    return pd.DataFrame(rows)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def markdown_table(title: str, table: pd.DataFrame) -> str:
    """``table`` as a titled Markdown table (NaN as an empty cell)."""
    lines = [f"### {title}", "", "| " + " | ".join(map(str, table.columns)) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def study_figure(title: str, table: pd.DataFrame) -> Figure:
    """Top-1 (localisation and paper protocol, classical baseline, published) against the axis."""
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    FigureCanvasAgg(fig)  # Agg canvas: renders and saves without pyplot or a display
    ax = fig.add_subplot()
    axis = str(table.columns[0])
    x = list(range(len(table)))
    series = (
        ("top1", "ours, localisation", "o-"),
        ("paper_protocol_top1", "ours, paper protocol", "s--"),
        ("classical_top1", "classical baseline", "^:"),
        ("published_top1", "published (DFC2018)", "D-"),
    )
    for column, label, style in series:
        values = table[column].astype(float)
        if values.notna().any():
            ax.plot(x, values, style, label=label)
    ax.set_xticks(x, [str(v) for v in table[axis]], rotation=20 if len(x) > 3 else 0)
    ax.set(xlabel=axis, ylabel="Top-1", title=title, ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
