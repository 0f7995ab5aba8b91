"""The project's configuration loader: Kedro's ``OmegaConfigLoader`` with ``--params`` merged last.

Kedro merges runtime parameters into each configuration folder's parameters, then merges the
environment over ``base`` destructively (an environment's top-level key replaces base's). A runtime
key of a section the environment does not restate therefore replaces that whole section: with
``kedro run --env autzen --params localize.queries=<folder>`` every other ``localize`` parameter
was lost (its model's defaults applied instead). Here the environments are merged first and the
runtime parameters last, deep, so they change only the keys they name.
"""

from __future__ import annotations

from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf


class RuntimeParamsLastLoader(OmegaConfigLoader):
    """``OmegaConfigLoader`` whose runtime parameters are merged after the environments."""

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key != "parameters" or not self.runtime_params or key in self:
            return super().__getitem__(key)
        runtime = self.runtime_params
        self.runtime_params = {}
        try:
            merged = super().__getitem__(key)
        finally:
            self.runtime_params = runtime
        out = OmegaConf.to_container(OmegaConf.merge(merged, runtime), resolve=True)
        assert isinstance(out, dict)
        return out  # type: ignore[return-value]
