"""Compare training recipes: train with parameter overrides on the preprocessed scene, print test Top-1.

Reads what ``kedro run --pipelines=synthesize,ingest,preprocess`` (or ``--env autzen``) left in the
catalog, trains with ``train`` parameters overridden by a JSON object (deep-merged; an unknown key
is an error) through the train pipeline's own node, and evaluates the paper protocol on the test
tiles. Checkpoints go to a
temporary folder, nothing in ``data/`` is written.

    python benchmarks/recipe.py '{"model": {"width": 64}, "lr": 0.001}' [--env autzen]

Last line: ``recipe=<overrides> train_s=<s> test_top1=<e2r> test_top5=<e2r> rgb_to_elevation_top1=<r2e>``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="?", default="{}", help="JSON object of train overrides")
    parser.add_argument("--env", default=None, help="Kedro environment (e.g. autzen)")
    args = parser.parse_args()
    overrides = json.loads(args.overrides)

    from croco_pipeline.data.stack import NormalisationStats
    from croco_pipeline.evaluation.protocols import paper_protocol
    from croco_pipeline.experiments.ablation import merge_overrides
    from croco_pipeline.model.models import ModelConfig, build_model
    from croco_pipeline.model.trainer import resolve_device
    from croco_pipeline.pipelines.train.nodes import train_model
    from croco_pipeline.pipelines.utils import materialise

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        context = session.load_context()
        catalog = context.catalog
        # a key unknown to the train parameters raises, naming it
        train_params = merge_overrides(context.params["train"], overrides, "train")
        loaded = {
            name: catalog.load(name)
            for name in (
                "aligned_stacks",
                "train_patch_index",
                "eval_patch_index",
                "normalisation_stats",
            )
        }
    with tempfile.TemporaryDirectory() as tmp:
        train_params.update(checkpoint_dir=tmp, resume=False)
        t0 = time.perf_counter()
        bundle, _, history = train_model(
            loaded["aligned_stacks"],
            loaded["train_patch_index"],
            loaded["eval_patch_index"],
            loaded["normalisation_stats"],
            train_params,
        )
        train_s = time.perf_counter() - t0
    print(history.to_string(index=False), flush=True)
    model = build_model(ModelConfig(**bundle["config"]))
    model.load_state_dict(bundle["state_dict"])
    device = resolve_device(str(train_params["device"]))
    stacks = materialise(loaded["aligned_stacks"])
    test = [s for s in stacks.values() if s.split == "test"]
    index = loaded["eval_patch_index"]
    result = paper_protocol(
        model.to(device).eval(),
        test,
        index[index["split"] == "test"],
        NormalisationStats.from_dict(loaded["normalisation_stats"]),
        device,
    )
    e2r, r2e = result["elevation_to_rgb"], result["rgb_to_elevation"]
    print(
        f"recipe={json.dumps(overrides, separators=(',', ':'))} train_s={train_s:.0f} "
        f"test_top1={e2r['top1']:.3f} test_top5={e2r['top5']:.3f} "
        f"rgb_to_elevation_top1={r2e['top1']:.3f}"
    )


if __name__ == "__main__":
    main()
