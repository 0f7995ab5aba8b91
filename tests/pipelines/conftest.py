"""A throw-away copy of the Kedro project on tiny synthetic data, run for real with ``kedro run``.

Each run is its own process, as for a user: kedro-mlflow's hook is a process-wide singleton that
keeps MLflow run state between sessions of one process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

#: parameters that make every pipeline run in seconds: a 2 x 3 grid of 64 m tiles at 1 m, 16 m patches
TINY_PARAMS: dict[str, Any] = {
    "synthetic": {
        "tile_width_m": 64,
        "tile_height_m": 64,
        "n_rows": 2,
        "n_cols": 3,
        "rgb_gsd": 0.5,
        "seed": 23,
    },
    "preprocess": {"gsd": 1.0, "patch_size_m": 16, "train_stride_m": 8},
    "train": {
        "epochs": 2,
        "steps_per_epoch": 2,
        "batch_size": 16,
        "warmup_epochs": 0,
        "progress": False,
        "model": {"embedding_dim": 32},
    },
    "evaluate": {"strides_m": [8], "n_queries": 20, "batch_size": 64},
    "make_queries": {"size_m": 24, "n_single": 6, "tracks": {2: 2, 4: 1, 8: 0}, "min_points": 200},
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: ``extra`` wins."""
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else value
    return out


def _parameters(conf: Path) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for path in sorted(conf.glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()) or {})
    return params


def make_project(path: Path) -> Path:
    """A copy of the project's conf and metadata at ``path`` (outputs go to ``path/data``)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, path / name)
    shutil.copytree(ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    (path / "data").mkdir()
    (path / "src").mkdir()  # Kedro checks it exists; the package itself is installed
    return path


@pytest.fixture
def kedro_project(tmp_path: Path) -> Path:
    """A fresh copy of the project in ``tmp_path``."""
    return make_project(tmp_path / "project")


class KedroRunError(RuntimeError):
    """``kedro run`` exited non-zero; the message holds its output."""


def kedro_run(
    project: Path,
    pipelines: list[str],
    params: dict[str, Any] | None = None,
    env: str = "local",
    cli_args: list[str] | None = None,
) -> str:
    """``kedro run`` of a copied project with the tiny parameters (plus ``params``) in ``env``.

    The parameters are written as whole top-level blocks into the environment's folder, so they
    replace the base ones the way a user's ``conf/local`` would.
    """
    env_dir = project / "conf" / env
    base = merge(_parameters(project / "conf" / "base"), _parameters(ROOT / "conf" / env))
    wanted = merge(TINY_PARAMS, params or {})
    block = {k: merge(base.get(k, {}), v) for k, v in wanted.items()}
    for path in env_dir.glob("parameters*.yml"):  # one env may define a key in one file only
        own = yaml.safe_load(path.read_text()) or {}
        path.write_text(yaml.safe_dump({k: v for k, v in own.items() if k not in block}))
    (env_dir / "parameters_test.yml").write_text(yaml.safe_dump(block))
    cmd = [sys.executable, "-m", "kedro", "run", f"--pipelines={','.join(pipelines)}"]
    if env != "local":
        cmd.append(f"--env={env}")
    cmd += cli_args or []  # e.g. ["--params", "localize.queries=<folder>"] (runtime parameters)
    environ = dict(os.environ, KEDRO_DISABLE_TELEMETRY="true", MPLBACKEND="Agg")
    done = subprocess.run(cmd, cwd=project, env=environ, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise KedroRunError(output[-6000:])
    return output


@pytest.fixture
def run_kedro(kedro_project: Path) -> Callable[..., str]:
    """``kedro_run`` bound to the fresh ``kedro_project``."""
    return lambda *args, **kwargs: kedro_run(kedro_project, *args, **kwargs)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full default run (synthesize -> ... -> evaluate) on tiny data, shared by the tests."""
    project = make_project(tmp_path_factory.mktemp("tiny") / "project")
    kedro_run(project, ["__default__"])
    return project
