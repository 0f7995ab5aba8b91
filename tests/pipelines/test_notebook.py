"""The exploration notebook runs headless on the tiny run's outputs and recomputes what the run
stored: its similarity rank must equal the evaluate node's, its xarray window the stack's pixels, its
localisation table the metrics JSON, and the vote peak it finds in a query's heatmap GeoTIFF the
localiser's own winning candidate, support and (within the refinement's reach) estimate."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from croco_pipeline.data.stack_file import read_stack

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore_run.ipynb"


def _printed_json(nb: nbformat.NotebookNode) -> list[dict]:
    """The JSON lines the notebook's explorer cells print, in order."""
    return [
        json.loads(line)
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        for line in output.get("text", "").splitlines()
        if line.startswith("{")
    ]


@pytest.mark.slow
def test_notebook_recomputes_what_the_run_stored(tiny_run, monkeypatch):
    monkeypatch.setenv("CROCO_PROJECT", str(tiny_run))
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tiny_run)}}
    ).execute()
    printed = _printed_json(nb)
    assert len(printed) == 2, printed
    found, localisation = printed[0], printed[1]["localisation"]
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

    _check_localisation_section(tiny_run, nb, localisation)


def _check_localisation_section(project: Path, nb: nbformat.NotebookNode, found: dict) -> None:
    """The notebook's localisation table and heatmap peak against what localize(_eval) wrote."""
    metrics = json.loads((project / "data/08_reporting/localisation_metrics.json").read_text())
    for method in ("model", "baseline"):
        for kind in ("single", "track_2", "track_4", "track_8"):
            expected = metrics[method][kind]["within_8m"]
            assert found["within_8m"][f"{method}/{kind}"] == pytest.approx(expected)
    assert metrics["model"]["single"]["n"] > 0
    assert found["csv_single_within_8m"] == pytest.approx(metrics["model"]["single"]["within_8m"])
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # error map, error CDF, heatmap shown inline
    table = pd.read_csv(project / "data/07_model_output/localisations.csv")
    scan = table[table["query"] == found["query"]].iloc[0]
    assert pd.isna(scan["track"]) and scan["status"] == "ok"
    assert found["crs"] == scan["crs"]  # the heatmap is in the map CRS the estimates are given in
    # the GeoTIFF holds the very votes of the search, where they fell: its 3 x 3 support peak is the
    # strongest of the localiser's candidates (re-ranking may then choose another), at its centre
    support, centres = json.loads(scan["top5_support"]), json.loads(scan["top5"])
    strongest = int(np.argmax(support))
    assert found["support_max"] == pytest.approx(support[strongest], abs=6e-5)  # CSV: 4 decimals
    np.testing.assert_allclose(found["winner_xy"], centres[strongest], atol=0.006)  # CSV: 0.01 m
    # the chosen candidate (first) holds the score; the refinement moves the estimate from its
    # centre by at most one stride + 1.5 px (coarse, fine, sub-pixel)
    assert support[0] == pytest.approx(scan["score"] * scan["n_tiles"], abs=6e-5)
    meta = json.loads((project / "data/06_models/localisation_map/metadata.json").read_text())
    assert found["step_m"] == pytest.approx(meta["stride_m"])
    reach = meta["stride_m"] + 1.5 * meta["gsd"]
    assert np.all(np.abs(np.subtract([scan["x"], scan["y"]], centres[0])) <= reach + 1e-6)
