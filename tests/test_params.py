"""Checked parameters: every group's typo names its full key path and the closest valid key, a
wrong type names the key, and every environment's merged parameters validate."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader

from croco_pipeline.data.params import PreprocessConfig
from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.evaluation.params import EvaluateConfig
from croco_pipeline.experiments.ablation_config import AblationConfig, effective_params
from croco_pipeline.experiments.runner import ExperimentConfig
from croco_pipeline.model.config import TrainConfig
from croco_pipeline.model.models import ModelConfig
from croco_pipeline.model.sampling import Augmentation
from croco_pipeline.params import StrictParams

ROOT = Path(__file__).resolve().parents[1]
#: every environment a user can pass to ``kedro run --env`` (local: base alone here)
ENVIRONMENTS = sorted({p.name for p in (ROOT / "conf").iterdir() if p.is_dir()} - {"base"})
GROUPS: dict[str, type[StrictParams]] = {
    "preprocess": PreprocessConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "ablation": AblationConfig,
}


def _parameters(env: str) -> dict[str, Any]:
    """The merged parameters of ``conf/base`` + ``conf/<env>``, as ``kedro run --env`` sees them."""
    loader = OmegaConfigLoader(conf_source=str(ROOT / "conf"), base_env="base", default_run_env=env)
    return dict(loader["parameters"])


@pytest.fixture(scope="module")
def base_params() -> dict[str, Any]:
    return _parameters("local")


def _rename(params: dict[str, Any], path: str, new_key: str) -> dict[str, Any]:
    """A deep copy of ``params`` with the key at ``path`` (dotted) renamed to ``new_key``."""
    out = copy.deepcopy(params)
    *parents, key = path.split(".")
    holder = out
    for part in parents:
        holder = holder[int(part)] if isinstance(holder, list) else holder[part]
    holder[new_key] = holder.pop(key)
    return out


@pytest.mark.parametrize(
    ("group", "path", "typo", "suggestion"),
    [
        ("preprocess", "patch_size_m", "patch_size", "patch_size_m"),
        ("preprocess", "blocks.buffer_m", "bufer_m", "buffer_m"),
        ("train", "epochs", "epoch", "epochs"),
        ("train", "model.width", "widht", "width"),
        ("train", "augmentation.rotate_flip", "rotate_flp", "rotate_flip"),
        ("evaluate", "strides_m", "stride_m", "strides_m"),
        ("evaluate", "figures.n_heatmaps", "n_heatmap", "n_heatmaps"),
        ("evaluate", "baseline.downsample", "down_sample", "downsample"),
        ("ablation", "profiles.cpu.batch_size_scale", "batch_size_scal", "batch_size_scale"),
        ("ablation", "studies.table3_batch.rows.0.config", "confg", "config"),
    ],
)
def test_a_typo_names_the_key_path_and_the_closest_key(
    base_params: dict[str, Any], group: str, path: str, typo: str, suggestion: str
) -> None:
    params = _rename(base_params[group], path, typo)
    full = ".".join([group, *path.split(".")[:-1], typo])
    expected = f"{full}: unknown key, did you mean {suggestion}?"
    with pytest.raises(CrocoConfigError, match=re.escape(expected)):
        GROUPS[group].from_params(params)


@pytest.mark.parametrize(
    ("group", "key", "value", "message"),
    [
        ("preprocess", "gsd", True, "valid number"),
        ("preprocess", "max_nodata_fraction", 1.5, "less than or equal to 1"),
        ("train", "epochs", "ten", "valid integer"),
        ("train", "steps_per_epoch", 1.5, "valid integer"),
        ("train", "loss", "triplet", "'nt_xent' or 'info_nce'"),
        ("evaluate", "n_queries", 2.5, "valid integer"),
        ("evaluate", "ks", [1, 0], "greater than 0"),
    ],
)
def test_a_wrong_type_or_value_names_the_key(
    base_params: dict[str, Any], group: str, key: str, value: Any, message: str
) -> None:
    params = dict(base_params[group], **{key: value})
    with pytest.raises(CrocoConfigError, match=rf"^{group}\.{key}\b.*{re.escape(message)}"):
        GROUPS[group].from_params(params)


def test_cross_field_and_reference_checks_name_the_key(base_params: dict[str, Any]) -> None:
    with pytest.raises(CrocoConfigError, match=r"train\.warmup_epochs: at most epochs=2"):
        TrainConfig.from_params(dict(base_params["train"], epochs=2, warmup_epochs=3))
    with pytest.raises(CrocoConfigError, match=r"ablation\.profile"):
        AblationConfig.from_params(dict(base_params["ablation"], profile="gpu"))


def test_groups_built_in_code_name_their_section() -> None:
    with pytest.raises(
        CrocoConfigError, match=r"^train\.augmentation\.colour_jitter: .*less than 1"
    ):
        Augmentation(colour_jitter=1.5)
    with pytest.raises(CrocoConfigError, match=r"^train\.model\.width: .*greater than or equal"):
        TrainConfig(model={"width": 0})  # type: ignore[arg-type]


def test_nested_groups_alone_name_their_section() -> None:
    with pytest.raises(
        CrocoConfigError, match=r"^train\.augmentation\.colour_jitter: .*less than 1"
    ):
        Augmentation.from_params({"colour_jitter": 1.5})
    with pytest.raises(CrocoConfigError, match=r"^train\.model\.stem: .*'cifar'"):
        ModelConfig.from_params({"stem": "vgg"})


def test_several_errors_are_reported_together(base_params: dict[str, Any]) -> None:
    params = dict(_rename(base_params["evaluate"], "seed", "sed"), batch_size=0)
    with pytest.raises(CrocoConfigError) as info:
        EvaluateConfig.from_params(params)
    assert "evaluate.sed: unknown key, did you mean seed?" in str(info.value)
    assert "evaluate.batch_size: Input should be greater than or equal to 1 (got 0)" in str(
        info.value
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_validates_with_its_values_kept(env: str) -> None:
    params = _parameters(env)
    checked = ExperimentConfig.from_params(
        {g: params[g] for g in ("preprocess", "train", "evaluate")}
    )
    # values arrive unchanged (numbers as numbers, lists as lists)
    assert checked.preprocess.channels == params["preprocess"]["channels"]
    assert checked.preprocess.gsd == params["preprocess"]["gsd"]
    assert checked.train.lr == params["train"]["lr"]
    assert checked.train.model.stem == params["train"]["model"]["stem"]
    assert checked.evaluate.strides_m == params["evaluate"]["strides_m"]
    assert checked.evaluate.baseline.downsample == params["evaluate"]["baseline"]["downsample"]
    ablation = AblationConfig.from_params(params["ablation"])
    for profile in ablation.profiles:
        grid = AblationConfig.from_params(dict(params["ablation"], profile=profile))
        for name in set(grid.configurations) - set(grid.excluded()):
            ExperimentConfig.from_params(effective_params(params, grid, name))


def _data_root(env: str) -> str:
    """``globals.data_root`` as ``kedro run --env`` resolves it."""
    loader = OmegaConfigLoader(conf_source=str(ROOT / "conf"), base_env="base", default_run_env=env)
    return str(loader["globals"]["data_root"])


def test_a_starting_model_comes_from_an_environment_it_fits() -> None:
    """``train.init_from`` naming another environment's model: that environment trains the same
    network on as many elevation channels with the same height normalisation, so every tensor
    loads and means the same (autzen <- synthetic_dsm)."""
    roots = {_data_root(env): env for env in ENVIRONMENTS}
    pairs = []
    for env in ENVIRONMENTS:
        init = _parameters(env)["train"]["init_from"]
        source = roots.get(str(Path(init).parent.parent)) if init else None
        if source is not None and source != env:
            pairs.append((env, source))
    assert ("autzen", "synthetic_dsm") in pairs
    for env, source in pairs:
        params, other = _parameters(env), _parameters(source)
        assert other["preprocess"]["normalisation"] == params["preprocess"]["normalisation"]
        assert len(other["preprocess"]["channels"]) == len(params["preprocess"]["channels"]), source
        assert other["train"]["model"] == params["train"]["model"], source


def test_defaults_equal_the_documented_code_defaults() -> None:
    """The models' defaults are the ones the code used before parameters were checked."""
    train = TrainConfig()
    assert (train.epochs, train.batch_size, train.loss, train.optimizer, train.lr) == (
        10, 128, "nt_xent", "adam", 1e-3
    )  # fmt: skip
    assert (train.sampling, train.min_valid_fraction, train.progress) == ("grid", 0.5, True)
    evaluate = EvaluateConfig()
    assert (evaluate.strides_m, evaluate.ks, evaluate.n_queries) == ([2.0, 4.0], [1, 5, 10], 500)
    assert (evaluate.min_valid_fraction, evaluate.batch_size, evaluate.device) == (0.9, 256, "auto")
    assert (evaluate.figures.n_heatmaps, evaluate.figures.n_failures) == (3, 8)
