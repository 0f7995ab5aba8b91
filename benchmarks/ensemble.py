"""Ensembles of trained models: paper-protocol Top-1 of each model and of their average similarity.

An ensemble embeds a patch with every model and joins the unit embeddings, scaled by
``1/sqrt(n)``: the cosine between two joined embeddings is the mean of the models' cosines. Measured
on the scene an environment preprocessed (``--env``), per split, elevation -> RGB:

    python benchmarks/ensemble.py data/autzen/06_models/croco_model.pt other.pt --env autzen

Last line: ``ensemble n=<models> train_top1=<e2r> val_top1=<e2r> test_top1=<e2r> test_top5=<e2r>
best_single_val=<e2r>`` (choose by val).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

ROOT = Path(__file__).resolve().parents[1]


class JoinedEmbeddings(torch.nn.Module):
    """Models side by side: each embedding is the models' unit embeddings joined / sqrt(n)."""

    def __init__(self, models: list[Any]) -> None:
        super().__init__()
        self.models = torch.nn.ModuleList(models)
        self.scale = 1.0 / math.sqrt(len(models))

    def embed_rgb(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.embed_rgb(x) for m in self.models], 1) * self.scale

    def embed_elevation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.embed_elevation(x) for m in self.models], 1) * self.scale


def _line(name: str, by_split: dict[str, Any]) -> dict[str, float]:
    top = {s: v["elevation_to_rgb"] for s, v in by_split.items()}
    figures = {f"{s}_top1": t["top1"] for s, t in top.items()}
    figures["test_top5"] = top["test"]["top5"]
    print(name, " ".join(f"{k}={v:.3f}" for k, v in figures.items()), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="croco_model.pt files (two or more)")
    parser.add_argument("--env", default=None, help="Kedro environment (e.g. autzen)")
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error(f"an ensemble needs two or more model files, got {len(args.models)}")
    missing = [str(p) for p in args.models if not p.is_file()]
    if missing:
        parser.error(f"no such model file: {', '.join(missing)}")

    from croco_pipeline.data.stack import NormalisationStats
    from croco_pipeline.evaluation.generalisation import paper_by_split
    from croco_pipeline.model.runtime import load_model
    from croco_pipeline.pipelines.utils import materialise

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        catalog = session.load_context().catalog
        tiles = (
            list(materialise(catalog.load("aligned_stacks")).values()),
            catalog.load("eval_patch_index"),
            NormalisationStats.from_dict(catalog.load("normalisation_stats")),
        )
    models = [load_model(torch.load(p, weights_only=True)) for p in args.models]
    singles = [
        _line(f"model={p}", paper_by_split(m, *tiles))
        for p, m in zip(args.models, models, strict=True)
    ]
    joined = _line("joined", paper_by_split(JoinedEmbeddings(models).eval(), *tiles))
    print(
        f"ensemble n={len(models)} train_top1={joined['train_top1']:.3f} "
        f"val_top1={joined['val_top1']:.3f} test_top1={joined['test_top1']:.3f} "
        f"test_top5={joined['test_top5']:.3f} "
        f"best_single_val={max(s['val_top1'] for s in singles):.3f}"
    )


if __name__ == "__main__":
    main()
