"""Joint training on two scenes: a share of every batch drawn from another scene's training tiles.

The lever "training on several scenes" of issue 13, measured beside pretraining (``train.init_from``).
Trains like ``benchmarks/recipe.py`` on the environment ``--env`` (overrides as JSON, deep-merged into
its ``train`` section), but each batch of ``batch_size`` pairs holds ``round(share * batch_size)``
pairs cut at random from the training tiles of ``--aux-env`` (preprocessed here, in memory, from
that environment's ingested rasters at the main environment's GSD and patch size, so both scenes
give patches of the same pixels). The other scene's pairs are negatives for this scene's and the
reverse. Validation, model selection and the figures are the main scene's alone.

    kedro run --env synthetic_dsm --pipelines=synthesize,ingest      # the other scene, ingested
    python benchmarks/joint_scenes.py '{}' --env autzen --aux-env synthetic_dsm --share 0.25

Both scenes must have the same elevation channel count. Nothing in ``data/`` is written. Last line:
``joint_scenes aux_env=<env> share=<s> recipe=<overrides> train_s=<s> train_top1=<e2r>
val_top1=<e2r> test_top1=<e2r> test_top5=<e2r>`` (paper protocol, elevation -> RGB; choose by val).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

ROOT = Path(__file__).resolve().parents[1]


class TwoScenePairs(torch.utils.data.IterableDataset):
    """Batches of the main scene's sampler with the other scene's batch of the same index appended."""

    def __init__(self, main: Any, other: Any) -> None:
        super().__init__()
        self.main, self.other = main, other
        self.n_batches = main.n_batches

    def __len__(self) -> int:
        return int(self.n_batches)

    def set_epoch(self, epoch: int) -> None:
        self.main.set_epoch(epoch)
        self.other.set_epoch(epoch)

    def state_dict(self) -> dict[str, int]:
        return dict(self.main.state_dict())

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.main.load_state_dict(state)
        self.other.load_state_dict(state)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for (rgb, elev), (rgb2, elev2) in zip(self.main, self.other, strict=True):
            yield torch.cat([rgb, rgb2]), torch.cat([elev, elev2])


def _load(env: str | None) -> tuple[dict[str, Any], Any]:
    with KedroSession.create(project_path=ROOT, env=env) as session:
        context = session.load_context()
        return context.params, context.catalog


def _other_scene(env: str, main_preprocess: dict[str, Any]) -> Any:
    """The other environment's scene, preprocessed at the main one's GSD and patch size."""
    from croco_pipeline.data.params import PreprocessConfig
    from croco_pipeline.data.prepare import prepare_scene
    from croco_pipeline.pipelines.utils import materialise

    params, catalog = _load(env)
    same = {
        k: main_preprocess[k] for k in ("gsd", "patch_size_m", "train_stride_m", "normalisation")
    }
    config = PreprocessConfig.from_params({**params["preprocess"], **same})
    rasters = materialise(catalog.load("ingested_rasters"))
    return prepare_scene(rasters, catalog.load("ingest_manifest"), config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="?", default="{}", help="JSON object of train overrides")
    parser.add_argument("--env", default=None, help="the scene trained and judged (e.g. autzen)")
    parser.add_argument("--aux-env", required=True, help="the other scene (e.g. synthetic_dsm)")
    parser.add_argument(
        "--share", type=float, default=0.25, help="the other scene's share of a batch"
    )
    args = parser.parse_args()
    if not 0 < args.share < 1:
        parser.error(f"--share must lie strictly between 0 and 1, got {args.share}")

    import croco_pipeline.model.trainer as trainer_module
    from croco_pipeline.data.stack import NormalisationStats
    from croco_pipeline.evaluation.generalisation import paper_by_split
    from croco_pipeline.experiments.ablation_config import merge_overrides
    from croco_pipeline.experiments.runner import train_from_params
    from croco_pipeline.model.config import TrainConfig
    from croco_pipeline.model.runtime import load_model, resolve_device
    from croco_pipeline.model.sampling import PairSampler
    from croco_pipeline.pipelines.utils import materialise

    bootstrap_project(ROOT)
    params, catalog = _load(args.env)
    stacks = materialise(catalog.load("aligned_stacks"))
    eval_index = catalog.load("eval_patch_index")
    stats = NormalisationStats.from_dict(catalog.load("normalisation_stats"))
    other = _other_scene(args.aux_env, params["preprocess"])
    other_train = [s for s in other.stacks.values() if s.split == "train"]
    n_main = len(next(iter(stacks.values())).channels)
    if len(other_train[0].channels) != n_main:
        raise SystemExit(
            f"--aux-env {args.aux_env} has elevation channels {other_train[0].channels}; "
            f"the main scene has {n_main}"
        )

    def two_scenes(
        main_stacks: Any, index: Any, main_stats: Any, batch_size: int, **kw: Any
    ) -> Any:
        n_other = round(args.share * batch_size)
        main = PairSampler(main_stacks, index, main_stats, batch_size - n_other, **kw)
        kw_other = dict(kw, mode="random", seed=kw.get("seed", 0) + 1000)
        train_rows = other.train_index[other.train_index["split"] == "train"]
        return TwoScenePairs(
            main, PairSampler(other_train, train_rows, other.stats, n_other, **kw_other)
        )

    trainer_module.PairSampler = two_scenes  # type: ignore[assignment,misc]
    train_params = merge_overrides(params["train"], json.loads(args.overrides), "train")
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig.from_params(dict(train_params, checkpoint_dir=tmp, resume=False))
        trained = train_from_params(
            stacks, catalog.load("train_patch_index"), eval_index, stats, config
        )
    print(trained.history.to_string(index=False), flush=True)
    device = resolve_device(config.device)
    model = load_model(trained.bundle).to(device)
    by_split = paper_by_split(model, list(stacks.values()), eval_index, stats, device)
    top1 = {k: v["elevation_to_rgb"]["top1"] for k, v in by_split.items()}
    print(
        f"joint_scenes aux_env={args.aux_env} share={args.share} "
        f"recipe={json.dumps(json.loads(args.overrides), separators=(',', ':'))} "
        f"train_s={trained.train_time_s:.0f} train_top1={top1['train']:.3f} "
        f"val_top1={top1['val']:.3f} test_top1={top1['test']:.3f} "
        f"test_top5={by_split['test']['elevation_to_rgb']['top5']:.3f}"
    )


if __name__ == "__main__":
    main()
