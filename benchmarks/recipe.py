"""Compare training recipes: train with parameter overrides on the preprocessed scene, print test Top-1.

Reads what ``kedro run --pipelines=synthesize,ingest,preprocess`` (or ``--env autzen``) left in the
catalog, trains with ``train`` parameters overridden by a JSON object (deep-merged; an unknown key
is an error) through ``experiments.runner.train_from_params`` (what the train node runs), and
evaluates the paper protocol on the test tiles. Checkpoints go to a temporary folder, nothing in
``data/`` is written.

    python benchmarks/recipe.py '{"model": {"width": 64}, "lr": 0.001}' [--env autzen]

Last line: ``recipe=<overrides> train_s=<s> test_top1=<e2r> test_top5=<e2r> rgb_to_elevation_top1=<r2e>
train_top1=<e2r> val_top1=<e2r>`` (paper protocol per split; choose recipes by ``val_top1``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
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
    from croco_pipeline.evaluation.generalisation import paper_by_split
    from croco_pipeline.experiments.ablation_config import merge_overrides
    from croco_pipeline.experiments.runner import train_from_params
    from croco_pipeline.model.config import TrainConfig
    from croco_pipeline.model.runtime import load_model, resolve_device
    from croco_pipeline.pipelines.utils import materialise

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        context = session.load_context()
        catalog = context.catalog
        # a key unknown to the train parameters raises, naming it
        train_params = merge_overrides(context.params["train"], overrides, "train")
        stacks = materialise(catalog.load("aligned_stacks"))
        train_index = catalog.load("train_patch_index")
        eval_index = catalog.load("eval_patch_index")
        stats = NormalisationStats.from_dict(catalog.load("normalisation_stats"))
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig.from_params(dict(train_params, checkpoint_dir=tmp, resume=False))
        trained = train_from_params(stacks, train_index, eval_index, stats, config)
    print(trained.history.to_string(index=False), flush=True)
    device = resolve_device(config.device)
    # every split: the train-test gap beside the test figures (choose recipes by val_top1)
    by_split = paper_by_split(
        load_model(trained.bundle).to(device), list(stacks.values()), eval_index, stats, device
    )
    e2r, r2e = by_split["test"]["elevation_to_rgb"], by_split["test"]["rgb_to_elevation"]
    top1 = {k: v["elevation_to_rgb"]["top1"] for k, v in by_split.items()}
    print(
        f"recipe={json.dumps(overrides, separators=(',', ':'))} train_s={trained.train_time_s:.0f} "
        f"test_top1={e2r['top1']:.3f} test_top5={e2r['top5']:.3f} "
        f"rgb_to_elevation_top1={r2e['top1']:.3f} "
        f"train_top1={top1.get('train', float('nan')):.3f} val_top1={top1.get('val', float('nan')):.3f}"
    )


if __name__ == "__main__":
    main()
