"""Kedro project settings: ``base`` and ``local`` environments, and a configuration loader that
merges ``--params`` after the environments (``config_loader.RuntimeParamsLastLoader``)."""

from croco_pipeline.config_loader import RuntimeParamsLastLoader

CONFIG_LOADER_CLASS = RuntimeParamsLastLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
