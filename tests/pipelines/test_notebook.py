"""The exploration notebook runs headless on the tiny run's outputs, so it cannot rot."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore_run.ipynb"


def test_notebook_executes_on_a_run(tiny_run, monkeypatch):
    monkeypatch.setenv("CROCO_PROJECT", str(tiny_run))
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tiny_run)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "true patch rank:" in outputs
    assert "elevation_to_rgb" in outputs
    assert os.environ["CROCO_PROJECT"] == str(tiny_run)
