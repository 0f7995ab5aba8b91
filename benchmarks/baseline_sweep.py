"""The classical baseline's best setting on a scene across GSDs, chosen on validation tiles.

The evaluate pipeline sweeps the baseline at the scene's own GSD and coarser (``evaluate.
baseline_sweep``); finer GSDs need the scene preprocessed at that GSD. This script takes the data
roots of one scene preprocessed at several GSDs (``kedro run --pipelines=ingest,preprocess`` with
``preprocess.gsd`` set, each in its own ``globals.data_root``), sweeps each on its validation tiles,
picks the best validation Top-1 over all of them and reports that setting on the test tiles.

    python benchmarks/baseline_sweep.py data/autzen_g05 data/autzen_g1 data/autzen

Last line: ``best gsd_m=<> patch_px=<> ... val_top1=<> test_top1=<> test_top5=<>``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from croco_pipeline.data.datasets import TileStackDataset
from croco_pipeline.data.stack import NormalisationStats
from croco_pipeline.evaluation.baseline_sweep import best_setting, score_setting, sweep_baseline
from croco_pipeline.evaluation.params import BaselineSweepParams


def _scene(root: Path) -> tuple[list, pd.DataFrame, NormalisationStats]:
    folder = root / "03_primary" / "aligned_stacks"
    stacks = [TileStackDataset(str(p)).load() for p in sorted(folder.glob("*.tif"))]
    index = pd.read_parquet(root / "04_feature" / "eval_patch_index.parquet")
    stats = json.loads((root / "04_feature" / "normalisation_stats.json").read_text())
    return stacks, index, NormalisationStats.from_dict(stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", help="data roots of the scene at several GSDs")
    parser.add_argument("--sweep", default="{}", help="JSON overrides of evaluate.baseline_sweep")
    args = parser.parse_args()
    params = BaselineSweepParams.from_params(json.loads(args.sweep))
    tables, scenes = [], {}
    for root in map(Path, args.roots):
        stacks, index, stats = _scene(root)
        val = [s for s in stacks if s.split == "val"]
        t0 = time.perf_counter()
        table = sweep_baseline(val, index[index["split"] == "val"], stats, params)
        print(
            f"{root}: {len(table)} settings on val in {time.perf_counter() - t0:.0f} s", flush=True
        )
        tables.append(table.assign(root=str(root)))
        scenes[str(root)] = (stacks, index, stats)
    table = pd.concat(tables, ignore_index=True).sort_values("top1", ascending=False)
    print(table.to_string(index=False), flush=True)
    best = best_setting(table)
    row = table.iloc[0]
    stacks, index, stats = scenes[row["root"]]
    test = [s for s in stacks if s.split == "test"]
    result = score_setting(best, test, index[index["split"] == "test"], stats)
    assert result is not None
    e2r = result["elevation_to_rgb"]
    print(
        f"best root={row['root']} gsd_m={row['gsd_m']:g} patch_px={row['patch_px']} "
        f"sigma_px={best.sigma_px:g} downsample={best.downsample} gradient={best.gradient} "
        f"val_top1={row['top1']:.3f} test_top1={e2r['top1']:.3f} test_top5={e2r['top5']:.3f} "
        f"test_queries={e2r['n_queries']:.0f}"
    )


if __name__ == "__main__":
    main()
