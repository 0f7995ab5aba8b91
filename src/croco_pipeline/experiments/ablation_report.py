"""Ablation reporting: the numbers each configuration contributes, the results table, the
paper-shaped study tables with the published numbers beside ours, their Markdown and plots."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from croco_pipeline.errors import bad_param
from croco_pipeline.experiments.ablation_config import AblationConfig, PublishedResult, Study


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


def study_table(study: Study, results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """A paper-shaped table: our Top-1/Top-5 (both protocols, model and classical baseline) per row,
    with the paper's published numbers beside them (empty where it reports none)."""
    rows = []
    for spec in study.rows:
        name = spec.config
        if name not in results:
            raise bad_param("ablation.studies.*.rows.config", name, "a configuration of the run")
        r = results[name]
        stride = None if spec.stride_m is None else f"{spec.stride_m:g}"
        used = stride or f"{float(r['params']['evaluate']['strides_m'][0]):g}"
        paper = spec.paper or PublishedResult()
        loc, base_loc = _loc(r, "model", stride), _loc(r, "baseline", stride)
        paper_protocol = r["metrics"].get("model", {}).get("paper", {})
        rows.append(
            {
                study.axis: str(name if spec.label is None else spec.label),
                "configuration": name,
                "loc_stride_m": used,
                "top1": loc["top1"],
                "top5": loc["top5"],
                "paper_protocol_top1": paper_protocol.get("top1", math.nan),
                "paper_protocol_top5": paper_protocol.get("top5", math.nan),
                "classical_top1": base_loc["top1"],
                "classical_top5": base_loc["top5"],
                "published_setting": paper.setting,
                "published_top1": math.nan if paper.top1 is None else paper.top1,
                "published_top5": math.nan if paper.top5 is None else paper.top5,
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


def ablation_report(
    ablation: AblationConfig, results: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """All configurations' results -> the results table, every study's table (stacked), the
    Markdown report and one plot per study.

    Returns:
        ``{"results": DataFrame, "tables": DataFrame, "markdown": str, "plots": {"<study>.png":
        Figure}}``.
    """
    by_name = {r["name"]: r for r in results}
    tables, sections, plots = [], [f"# Ablation (profile `{ablation.profile}`)\n"], {}
    for name, study in sorted(ablation.studies.items()):
        table = study_table(study, by_name)
        sections.append(markdown_table(study.title, table))
        plots[f"{name}.png"] = study_figure(study.title, table)
        renamed = table.rename(columns={study.axis: "setting"})
        tables.append(renamed.assign(study=name, axis=study.axis))
    left_out = [r["name"] for r in results if r.get("status") == "excluded"]
    if left_out:
        sections.append(
            f"Left out by profile `{ablation.profile}` (empty cells): {', '.join(left_out)}\n"
        )
    combined = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if tables:
        combined["setting"] = combined["setting"].astype(str)
    return {
        "results": results_table(results),
        "tables": combined,
        "markdown": "\n".join(sections),
        "plots": plots,
    }
