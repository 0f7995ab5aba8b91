"""Localisation outputs: the results table, a GeoJSON of estimated footprints, an overview figure.

The GeoJSON follows RFC 7946: WGS84 longitude/latitude (QGIS and web maps read it as is); the map
CRS coordinates stay in the properties ``x``, ``y`` (and ``truth_x``, ``truth_y``) with ``crs``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from affine import Affine
from matplotlib.figure import Figure
from pyproj import CRS, Transformer

COLUMNS = ("query", "track", "file", "x", "y", "crs", "score", "confidence", "status", "reason")


def results_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a table: the ``COLUMNS`` first, then features, top-5 and truth when present."""
    table = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in table:
            table[col] = np.nan
    extra = [c for c in table.columns if c not in COLUMNS]
    return table[list(COLUMNS) + extra].reset_index(drop=True)


def _ring(x: float, y: float, w: float, h: float, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A densified closed rectangle around (x, y), counter-clockwise (RFC 7946 exterior rings)."""
    t = np.linspace(0, 1, n, endpoint=False)
    l, r, b, top = x - w / 2, x + w / 2, y - h / 2, y + h / 2  # noqa: E741
    xs = np.concatenate([l + (r - l) * t, np.full(n, r), r - (r - l) * t, np.full(n, l), [l]])
    ys = np.concatenate(
        [np.full(n, b), b + (top - b) * t, np.full(n, top), top - (top - b) * t, [b]]
    )
    return xs, ys


def _clean(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def footprints_geojson(table: pd.DataFrame, map_crs: str) -> dict[str, Any]:
    """A FeatureCollection: each located scan's estimated footprint (lon/lat), its row as properties."""
    to_wgs84 = Transformer.from_crs(
        CRS.from_user_input(map_crs), CRS.from_epsg(4326), always_xy=True
    )
    features = []
    for _, row in table.iterrows():
        geometry = None
        if row["status"] == "ok":
            xs, ys = _ring(row["x"], row["y"], row.get("width_m", 0.0), row.get("height_m", 0.0))
            lon, lat = to_wgs84.transform(xs, ys)
            geometry = {"type": "Polygon", "coordinates": [[[round(a, 8), round(b, 8)] for a, b in zip(lon, lat, strict=True)]]}  # fmt: skip
        props = {k: _clean(v) for k, v in row.items()}
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def overview_figure(image: np.ndarray, transform: Affine, table: pd.DataFrame) -> Figure:
    """All located queries on the ortho: estimated centres (and truth with an error line when known)."""
    fig = Figure(figsize=(8, 8 * image.shape[0] / max(image.shape[1], 1) + 0.6))
    ax = fig.add_subplot()
    left, top = transform.c, transform.f
    extent = (left, left + transform.a * image.shape[1], top + transform.e * image.shape[0], top)
    ax.imshow(image, extent=extent)
    ok = table[table["status"] == "ok"]
    if "truth_x" in ok:
        known = ok.dropna(subset=["truth_x"])
        for _, r in known.iterrows():
            ax.plot([r["truth_x"], r["x"]], [r["truth_y"], r["y"]], color="yellow", lw=1)
        ax.scatter(
            known["truth_x"], known["truth_y"], s=30, marker="x", color="yellow", label="truth"
        )
    sc = ax.scatter(ok["x"], ok["y"], c=ok["confidence"], cmap="RdYlGn", vmin=0, vmax=1, s=40,
                    edgecolors="black", label="estimate")  # fmt: skip
    for _, r in ok.iterrows():
        ax.annotate(str(r["query"]), (r["x"], r["y"]), fontsize=6, color="white")
    fig.colorbar(sc, ax=ax, label="confidence", shrink=0.7)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(f"{len(ok)} of {len(table)} scans located")
    ax.set_xlabel("x (map CRS)")
    ax.set_ylabel("y (map CRS)")
    return fig
