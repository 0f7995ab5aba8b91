"""Ablation configuration: the checked ``ablation`` parameters (profiles, configurations, studies),
the effective parameters of one configuration and a stable hash of them."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import Field

from croco_pipeline.errors import CrocoConfigError, bad_param
from croco_pipeline.nesting import flatten
from croco_pipeline.params import StrictParams

#: the parameter blocks a profile or configuration may override
SECTIONS = ("preprocess", "train", "evaluate")
#: keys that say where or how verbosely a run works, not what it computes: left out of the hash
VOLATILE_KEYS = ("train.checkpoint_dir", "train.resume", "train.progress", "train.num_workers")
#: study table columns an axis name must not overwrite
RESERVED_AXES = ("configuration", "loc_stride_m", "top1", "top5")


class Overrides(StrictParams):
    """A configuration's overrides of the base ``preprocess`` / ``train`` / ``evaluate`` blocks
    (checked key by key against the base when merged)."""

    preprocess: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    evaluate: dict[str, Any] | None = None

    def sections(self) -> dict[str, dict[str, Any]]:
        """``{section: overrides}`` for the sections this layer sets."""
        return {s: dict(v) for s in SECTIONS if (v := getattr(self, s))}


class Profile(Overrides):
    """A profile: overrides applied under every configuration, a batch scale and exclusions."""

    batch_size_scale: float = Field(default=1.0, gt=0)
    exclude: list[str] = []


class PublishedResult(StrictParams):
    """The paper's numbers for one study row (NOTES.md section 1)."""

    setting: str = ""
    top1: float | None = None
    top5: float | None = None


class StudyRow(StrictParams):
    """One row of a study table: a configuration, its label and optional stride and published figures."""

    config: str
    label: str | int | float | None = None
    stride_m: float | None = Field(default=None, gt=0)
    paper: PublishedResult | None = None


class Study(StrictParams):
    """One paper-shaped table and plot: a title, the studied axis and its rows."""

    section: ClassVar[str] = "ablation.studies.*"

    title: str
    axis: str
    rows: list[StudyRow] = Field(min_length=1)


class AblationConfig(StrictParams):
    """``ablation.*``: the active profile, every profile, every configuration and the studies.

    ``from_params`` also checks the names that refer to each other (profile, exclusions, study rows).
    """

    section: ClassVar[str] = "ablation"

    profile: str
    work_dir: str
    profiles: dict[str, Profile | None]
    configurations: dict[str, Overrides | None]
    studies: dict[str, Study] = {}

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str | None = None) -> Self:
        config = super().from_params(params, where)
        config.check_references()
        return config

    def check_references(self) -> None:
        """Raise ``CrocoConfigError`` for a name that refers to nothing, naming its key path."""
        if self.profile not in self.profiles:
            raise bad_param("ablation.profile", self.profile, f"one of {sorted(self.profiles)}")
        known = sorted(self.configurations)
        for name in self.configurations:
            if "." in name or "-" in name:
                raise bad_param("ablation.configurations", name, "a name without '.' or '-'")
        for name, profile in self.profiles.items():
            for left_out in (profile or Profile()).exclude:
                if left_out not in self.configurations:
                    raise bad_param(
                        f"ablation.profiles.{name}.exclude", left_out, f"one of {known}"
                    )
        for name, study in self.studies.items():
            where = f"ablation.studies.{name}"
            if study.axis in RESERVED_AXES or study.axis.startswith(
                ("paper", "classical", "published")
            ):
                raise bad_param(f"{where}.axis", study.axis, f"a name other than {RESERVED_AXES}")
            for row in study.rows:
                if row.config not in self.configurations:
                    raise bad_param(f"{where}.rows.config", row.config, f"one of {known}")

    def active_profile(self) -> Profile:
        return self.profiles[self.profile] or Profile()

    def excluded(self) -> list[str]:
        """Configurations the active profile leaves out (``profiles.<profile>.exclude``)."""
        return list(self.active_profile().exclude)


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> dict:
    """Deep copy of ``base`` with ``overrides`` applied; a key unknown to ``base`` is an error.

    Raises:
        CrocoConfigError: naming the unknown key as ``<where>.<key>``.
    """
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        name = f"{where}.{key}"
        if key not in out:
            raise CrocoConfigError(f"parameter '{name}' is unknown: expected one of {sorted(out)}")
        if isinstance(value, Mapping) and isinstance(out[key], Mapping):
            out[key] = merge_overrides(out[key], value, name)
        else:
            out[key] = copy.deepcopy(value)
    return out


def effective_params(
    base: Mapping[str, Mapping[str, Any]], ablation: AblationConfig, config: str
) -> dict[str, dict[str, Any]]:
    """``{"preprocess", "train", "evaluate"}`` for one configuration: base <- profile <- config.

    The profile's ``batch_size_scale`` multiplies the final ``train.batch_size`` (and the LR
    scaling's ``base_batch_size``), so a tiny profile keeps the batch study's distinct points.
    """
    if config not in ablation.configurations:
        raise bad_param(
            "ablation.configurations", config, f"one of {sorted(ablation.configurations)}"
        )
    profile = ablation.active_profile()
    layers = (profile, ablation.configurations[config] or Overrides())
    params = {s: copy.deepcopy(dict(base[s])) for s in SECTIONS}
    for layer in layers:
        for section, overrides in layer.sections().items():
            params[section] = merge_overrides(params[section], overrides, section)
    train = params["train"]
    for key in ("batch_size", "base_batch_size"):
        train[key] = max(1, round(int(train[key]) * profile.batch_size_scale))
    return params


def params_hash(params: Mapping[str, Any]) -> str:
    """A stable short hash of the parameters that change a result (key order does not matter)."""
    relevant = {k: v for k, v in flatten(params).items() if k not in VOLATILE_KEYS}
    text = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
