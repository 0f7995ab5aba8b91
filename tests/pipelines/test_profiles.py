"""The GPU profiles start and train on CPU: ``--env gpu`` (the winning recipe at GPU scale) and
``--env paper`` (the paper's recipe) run a few steps on the tiny synthetic scene, with the profile's
own model, loss, optimiser, sampling and precision reaching the trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from .conftest import ROOT, kedro_run, make_project

#: the tiny scene's sizes with the profile's recipe: only the scale shrinks
SMALL = {"train": {"num_workers": 0}}


def _profile(env: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / env / "parameters.yml").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("env", ["gpu", "paper"])
def test_profile_starts_and_trains_a_few_steps(tmp_path: Path, env: str) -> None:
    project = make_project(tmp_path / "project")
    kedro_run(project, ["synthesize", "ingest", "preprocess", "train"], SMALL, env=env)
    root = project / yaml.safe_load((ROOT / "conf" / env / "globals.yml").read_text())["data_root"]
    ckpt = torch.load(root / "06_models/checkpoints/last.pt", weights_only=True)
    config, profile = ckpt["config"], _profile(env)["train"]
    for key in ("loss", "optimizer", "sampling", "precision", "scale_lr", "queue_size"):
        if key in profile:
            assert config[key] == profile[key], key
    assert len(ckpt["history"]) == 2  # the tiny override: 2 epochs of 2 steps
    bundle = torch.load(root / "06_models/croco_model.pt", weights_only=True)
    for key in ("stem", "width"):  # the architecture travels with the saved model
        assert bundle["config"][key] == profile["model"][key], key
