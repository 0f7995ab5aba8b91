"""A training run killed with SIGKILL mid-epoch resumes from its last checkpoint to the exact weights.

tests/model/test_trainer.py covers a clean stop after an epoch; here the process dies without any
chance to clean up (``kill -9``), part-way through an epoch after at least one checkpoint exists.
Training runs in a child process through the domain trainer API (no Kedro, to keep it fast).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

EPOCHS, STEPS = 4, 12

SCRIPT = r"""
import sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from affine import Affine
from rasterio.crs import CRS
from torch import nn

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.model.trainer import TrainConfig, train

ckpt_dir, out, resume, slow = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
EPOCHS, STEPS, SIZE, PATCH = int(sys.argv[5]), int(sys.argv[6]), 32, 8
torch.set_num_threads(1)


class TinyPair(nn.Module):
    def __init__(self):
        super().__init__()
        self.rgb, self.elev = self._branch(3), self._branch(2)
        self.epoch, self.step = 0, 0

    @staticmethod
    def _branch(c):
        return nn.Sequential(nn.Conv2d(c, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 16))

    def forward(self, rgb, elev):
        if self.training:  # a visible heartbeat, slowed so the parent can kill mid-epoch
            print(f"step {self.step}", flush=True)
            self.step += 1
            if slow:
                time.sleep(0.05)
        return F.normalize(self.rgb(rgb), dim=1), F.normalize(self.elev(elev), dim=1)


stacks = []
for i in range(2):
    pattern = np.random.default_rng(i).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    stacks.append(TileStack(f"t{i}", np.stack([pattern] * 3),
                            np.stack([pattern, 255 - pattern]).astype(np.float32),
                            np.ones((SIZE, SIZE), bool), CRS.from_epsg(26915),
                            Affine(0.5, 0, 0, 0, -0.5, 0), ("dsm", "inv")))
index = pd.DataFrame.from_records(
    [{"tile": s.name, "split": "train", "row": r, "col": c, "size_px": PATCH, "x": 0.0, "y": 0.0,
      "valid_fraction": 1.0}
     for s in stacks for r in range(0, SIZE - PATCH + 1, 4) for c in range(0, SIZE - PATCH + 1, 4)])
config = TrainConfig.from_params({
    "epochs": EPOCHS, "batch_size": 16, "steps_per_epoch": STEPS, "optimizer": "adam",
    "lr": 1e-2, "device": "cpu", "progress": False, "seed": 7, "sampling": "random",
    "warmup_epochs": 1, "min_lr_ratio": 0.1, "checkpoint_dir": ckpt_dir, "resume": resume,
    "augmentation": {"rotate_flip": True, "colour_jitter": 0.2, "height_offset": 0.05}})
torch.manual_seed(0 if not resume else 123)  # a resumed run must take everything from last.pt
model = TinyPair()
result = train(model, stacks, index, NormalisationStats("global_minmax", 0.0, 255.0, 50.0), config,
               on_epoch_end=lambda e, m: print(f"epoch {e} done", flush=True))
torch.save({"state": result.last_state, "losses": [h["loss"] for h in result.history]}, out)
print("finished", flush=True)
"""


def _run(script: Path, ckpt: Path, out: Path, resume: bool, slow: bool) -> subprocess.Popen[str]:
    args = [str(ckpt), str(out), str(int(resume)), str(int(slow)), str(EPOCHS), str(STEPS)]
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )


def _kill_mid_epoch(proc: subprocess.Popen[str], ckpt: Path, timeout_s: float = 120.0) -> int:
    """SIGKILL ``proc`` a few steps into the epoch after its first checkpoint; returns that epoch."""
    assert proc.stdout is not None
    deadline, seen, steps_after = time.monotonic() + timeout_s, [], 0
    for line in proc.stdout:
        seen.append(line)
        if (ckpt / "last.pt").exists() and line.startswith("step"):
            steps_after += 1  # steps of the epoch after a checkpoint was written
        if steps_after == STEPS // 2 or time.monotonic() > deadline:
            break
    assert proc.poll() is None, "training ended before it could be killed:\n" + "".join(seen)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert steps_after == STEPS // 2, "no checkpoint before the deadline:\n" + "".join(seen[-20:])
    return int(torch.load(ckpt / "last.pt", weights_only=True)["epoch"])


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_gives_identical_weights(tmp_path: Path) -> None:
    script = tmp_path / "train_tiny.py"
    script.write_text(SCRIPT)

    straight = _run(script, tmp_path / "a", tmp_path / "a.pt", resume=False, slow=False)
    out, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, out

    killed = _run(script, tmp_path / "b", tmp_path / "b.pt", resume=False, slow=True)
    last_epoch = _kill_mid_epoch(killed, tmp_path / "b")
    assert 0 <= last_epoch < EPOCHS - 1 and not (tmp_path / "b.pt").exists()
    # the kill left only finished files: no temporary checkpoint beside them
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["best.pt", "last.pt"]

    resumed = _run(script, tmp_path / "b", tmp_path / "b.pt", resume=True, slow=False)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert out.count("done") == EPOCHS - 1 - last_epoch  # only the epochs the killed run lost

    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    assert a["state"].keys() == b["state"].keys()
    for key, value in a["state"].items():
        assert torch.equal(value, b["state"][key]), key
    assert a["losses"] == b["losses"] and len(a["losses"]) == EPOCHS
