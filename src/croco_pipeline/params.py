"""Checked parameters: the pydantic base of every parameter group and its one error format.

A typo or a wrong type anywhere under ``preprocess``, ``train``, ``evaluate`` or ``ablation`` raises
one ``CrocoConfigError`` naming the full key path, e.g.
``evaluate.figures.n_heatmap: unknown key, did you mean n_heatmaps?``.
"""

from __future__ import annotations

import contextvars
import difflib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Self, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from croco_pipeline.errors import CrocoConfigError

#: how many StrictParams validations are running: only the outermost one reports, with full paths
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("croco_params_depth", default=0)


@contextmanager
def _validating() -> Iterator[int]:
    token = _DEPTH.set(_DEPTH.get() + 1)
    try:
        yield _DEPTH.get()
    finally:
        _DEPTH.reset(token)


class StrictParams(BaseModel):
    """Frozen, strict (no silent casts: ``true`` is not 1, ``1.5`` is not an int), unknown keys refused.

    ``section`` is where the group lives in the parameters (``"train.model"``): building one from
    parameters (``from_params``) or directly in code raises one ``CrocoConfigError`` whose paths
    start there. A group nested in another is reported by the outermost, with the full path.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    section: ClassVar[str] = ""

    def __init__(self, **data: Any) -> None:
        with _validating() as depth:
            try:
                super().__init__(**data)
            except ValidationError as exc:
                if depth > 1:  # pydantic is building this group inside an outer one
                    raise
                raise config_error(exc, type(self).section, type(self)) from None

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str | None = None) -> Self:
        """Validate a parameters mapping; errors name keys under ``where`` (default ``section``)."""
        with _validating():
            try:
                return cls.model_validate(dict(params or {}))
            except ValidationError as exc:
                raise config_error(exc, cls.section if where is None else where, cls) from None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The parameter model inside ``X``, ``X | None``, ``list[X]`` or ``dict[str, X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(get_args(annotation)):  # a dict's values come last
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) group that holds the last key of ``loc``."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None:
            return []
        if isinstance(part, str) and part in current.model_fields:
            current = _nested_model(current.model_fields[part].annotation)
        # else: a dict key or list index inside a container field: stay on its value model
    return list(current.model_fields) if current is not None else []


def _describe(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(model, loc), n=1)
        return "unknown key" + (f", did you mean {close[0]}?" if close else "")
    if error["type"] == "missing":
        return "missing (a required key)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{message} (got {error['input']!r})"


def config_error(exc: ValidationError, where: str, model: type[BaseModel]) -> CrocoConfigError:
    """One ``CrocoConfigError`` listing every failure as ``<where>.<key path>: <what is wrong>``."""
    lines = []
    for error in exc.errors():
        path = ".".join([where] * bool(where) + [str(p) for p in error["loc"]])
        lines.append(f"{path}: {_describe(error, model)}")
    return CrocoConfigError("; ".join(lines))
