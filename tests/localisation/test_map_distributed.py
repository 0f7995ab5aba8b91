"""Two gloo processes build the same map as one: blocks shared out by rank, rank 0 writes it."""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import MAP_OPTS, SPEC, height_field, scene_stack

from croco_pipeline.evaluation.baseline import BaselineModel
from croco_pipeline.localisation.datasets import LocalisationMapDataset, read_map
from croco_pipeline.localisation.mapping import build_map
from croco_pipeline.localisation.ortho import StackMosaic
from croco_pipeline.model import distributed

WORLD = 2
OPTS = MAP_OPTS | {"block_px": 32}  # 30 blocks: both ranks get several


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)  # a forked child must not enter the parent's OpenMP pool
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        lmap = build_map(BaselineModel(), StackMosaic([scene_stack(height_field())]), SPEC, OPTS)
        LocalisationMapDataset(f"{out_dir}/map").save(lmap)  # only rank 0 writes
        (Path(out_dir) / f"rank{rank}.bin").write_bytes(lmap.index.to_bytes())
    finally:
        distributed.cleanup()


@pytest.mark.slow
def test_two_process_map_equals_one_process_map(tmp_path: Path) -> None:
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD,
                       start_method="fork")  # fmt: skip
    single = build_map(BaselineModel(), StackMosaic([scene_stack(height_field())]), SPEC, OPTS)
    written = read_map(tmp_path / "map")
    assert written.centres.equals(single.centres)
    assert written.metadata == single.metadata
    assert written.index.to_bytes() == single.index.to_bytes()
    # every rank ends with the whole map, identical to rank 0's
    assert (tmp_path / "rank0.bin").read_bytes() == (tmp_path / "rank1.bin").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
