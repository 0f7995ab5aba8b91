"""Two gloo processes on CPU: the gathered loss and DDP gradients equal one process on the global batch."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from affine import Affine
from rasterio.crs import CRS
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.model import distributed
from croco_pipeline.model.losses import nt_xent
from croco_pipeline.model.trainer import TrainConfig, train

WORLD, GLOBAL_BATCH, DIM = 2, 8, 6


class PairEncoder(nn.Module):
    """Per-sample linear encoders: no batch norm, so a split batch computes the same embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(DIM, 4), nn.Linear(DIM, 4)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(self.a(x_a), dim=1), F.normalize(self.b(x_b), dim=1)


class TinyPair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rgb = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.elev = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, rgb: torch.Tensor, elev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rgb(rgb), self.elev(elev)


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return torch.randn(GLOBAL_BATCH, DIM, generator=g), torch.randn(GLOBAL_BATCH, DIM, generator=g)


def _tiny_training_data() -> tuple[list[TileStack], pd.DataFrame]:
    pattern = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    stack = TileStack("t", np.stack([pattern] * 3), pattern[None].astype(np.float32),
                      np.ones((16, 16), bool), CRS.from_epsg(26915), Affine(1, 0, 0, 0, -1, 0), ("dsm",))  # fmt: skip
    index = pd.DataFrame(
        [{"tile": "t", "split": "train", "row": r, "col": c, "size_px": 4, "x": 0.0, "y": 0.0,
          "valid_fraction": 1.0} for r in range(0, 13, 4) for c in range(0, 13, 4)]
    )  # fmt: skip
    return [stack], index


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    # A forked child must not enter the parent's OpenMP pool (libgomp deadlocks): one thread each,
    # as DataLoader workers do.
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        model = DistributedDataParallel(PairEncoder())
        x_a, x_b = _global_batch()
        part = slice(rank * GLOBAL_BATCH // WORLD, (rank + 1) * GLOBAL_BATCH // WORLD)
        z_a, z_b = model(x_a[part], x_b[part])
        loss = nt_xent(distributed.gather_with_grad(z_a), distributed.gather_with_grad(z_b))
        loss.backward()
        grads = {n: p.grad for n, p in model.module.named_parameters()}
        torch.manual_seed(0)
        stacks, index = _tiny_training_data()
        config = TrainConfig(epochs=2, batch_size=8, device="cpu", progress=False,
                             checkpoint_dir=f"{out_dir}/ckpt", loss="info_nce")  # fmt: skip
        result = train(
            TinyPair(), stacks, index, NormalisationStats("global_minmax", 0, 255, 1), config
        )
        torch.save({"loss": loss.detach(), "grads": grads, "rank": distributed.rank(),
                    "world": distributed.world_size(), "last": result.last_state,
                    "history": len(result.history)}, f"{out_dir}/rank{rank}.pt")  # fmt: skip
    finally:
        distributed.cleanup()


@pytest.mark.slow  # two DDP processes
def test_gathered_loss_and_gradients_match_single_process(tmp_path: Path) -> None:
    # fork, not spawn: re-importing torch in each child costs more than the whole test.
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD,
                       start_method="fork")  # fmt: skip
    torch.manual_seed(0)
    reference = PairEncoder()
    x_a, x_b = _global_batch()
    loss = nt_xent(*reference(x_a, x_b))
    loss.backward()
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for r, res in enumerate(results):
        assert (res["rank"], res["world"]) == (r, WORLD)
        torch.testing.assert_close(res["loss"], loss.detach())
        # DDP averages over ranks the gradients that gather_with_grad made ``world`` times too large.
        for name, param in reference.named_parameters():
            torch.testing.assert_close(res["grads"][name], param.grad, rtol=1e-5, atol=1e-6)
    # The training loop keeps ranks in lock-step, and only rank 0 records history and checkpoints.
    for key, value in results[0]["last"].items():
        assert torch.equal(value, results[1]["last"][key])
    assert (results[0]["history"], results[1]["history"]) == (2, 0)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["best.pt", "last.pt"]


def test_single_process_helpers() -> None:
    z = torch.randn(3, 2)
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.gather_with_grad(z) is z
