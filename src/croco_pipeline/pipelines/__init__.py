"""Kedro pipelines: each sub-package wires domain functions into nodes."""
