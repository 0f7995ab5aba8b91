"""The exploration notebook runs headless on the tiny run's outputs and recomputes what the run
stored: its similarity rank must equal the evaluate node's, its xarray window the stack's pixels."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from croco_pipeline.data.stack_file import read_stack

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore_run.ipynb"


def _printed_json(nb: nbformat.NotebookNode) -> dict:
    """The JSON line the notebook's last explorer cell prints."""
    lines = [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        for line in output.get("text", "").splitlines()
        if line.startswith("{")
    ]
    assert len(lines) == 1, lines
    return json.loads(lines[0])


@pytest.mark.slow
def test_notebook_recomputes_what_the_run_stored(tiny_run, monkeypatch):
    monkeypatch.setenv("CROCO_PROJECT", str(tiny_run))
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tiny_run)}}
    ).execute()
    found = _printed_json(nb)
    records = pd.read_parquet(tiny_run / "data/07_model_output/retrieval_records.parquet")
    stored = records[
        (records["method"] == "model")
        & (records["direction"] == "elevation_to_rgb")
        & (records["tile"] == found["tile"])
        & (records["query_index"] == found["query"])
    ]
    assert len(stored) == 1
    assert found["rank"] == int(stored["rank"].iloc[0])  # the notebook's own embedding and search
    row, col, size = (int(stored[k].iloc[0]) for k in ("query_row", "query_col", "size_px"))
    stack = read_stack(tiny_run / f"data/03_primary/aligned_stacks/{found['tile']}.tif")
    window = stack.elevation[0, row : row + size, col : col + size]
    assert found["window_shape"] == [size, size]  # cut by map coordinates alone
    assert found["window_mean_height"] == pytest.approx(float(np.mean(window)), rel=1e-6)
