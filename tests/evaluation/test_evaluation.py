"""Tests of the retrieval protocols, chance levels, the classical baseline and the report forms."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS
from scipy.ndimage import gaussian_filter
from torch import Tensor, nn

from croco_pipeline.data.stack import NormalisationStats, TileStack
from croco_pipeline.evaluation.baseline import (
    BaselineModel,
    baseline_embed_elevation,
    baseline_embed_rgb,
)
from croco_pipeline.evaluation.params import ProtocolSettings
from croco_pipeline.evaluation.protocols import (
    evaluate_all,
    flatten_metrics,
    localisation_protocol,
    markdown_report,
    paper_protocol,
)
from fixtures_geo import patch_grid

STATS = NormalisationStats("global_minmax", 0.0, 1.0, 1.0)  # identity on [0, 1] heights


def make_stacks(n_tiles: int, side: int, seed: int = 0, sigma: float = 2.0) -> list[TileStack]:
    """Tiles side by side on a 1 m grid whose first elevation channel equals the grey RGB / 255."""
    rng = np.random.default_rng(seed)
    stacks = []
    for t in range(n_tiles):
        grey = gaussian_filter(rng.normal(size=(side, side)), sigma)
        grey = (grey - grey.min()) / (grey.max() - grey.min())
        rgb = np.repeat(np.round(grey * 255).astype(np.uint8)[None], 3, axis=0)
        elevation = np.stack([rgb[0] / np.float32(255), rng.random((side, side))]).astype(
            np.float32
        )
        stacks.append(
            TileStack(
                name=f"tile{t}",
                rgb=rgb,
                elevation=elevation,
                valid=np.ones((side, side), bool),
                crs=CRS.from_epsg(26915),
                transform=Affine(1.0, 0, 1000.0 + t * side, 0, -1.0, 5000.0),
                channels=("grey", "noise"),
                split="test",
            )
        )
    return stacks


def grid_index(stacks: list[TileStack], size: int) -> pd.DataFrame:
    """The non-overlapping patch grid of every tile (the patch index's columns)."""
    return pd.concat([patch_grid(s, size, size) for s in stacks], ignore_index=True)


class OracleModel(nn.Module):
    """Embeds channel 0 (grey RGB == first height channel) by an orthogonal random projection of
    the zero-mean flattened patch, so co-located RGB and elevation patches get the same vector."""

    def __init__(self, size: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(size * size, size * size, generator=g))
        self.projection = nn.Parameter(q, requires_grad=False)

    def _embed(self, x: Tensor) -> Tensor:
        flat = x[:, 0].flatten(1)
        flat = flat - flat.mean(dim=1, keepdim=True)
        return nn.functional.normalize(flat @ self.projection, dim=1)

    embed_rgb = _embed
    embed_elevation = _embed


class RandomModel(nn.Module):
    """Ignores its input: random unit vectors."""

    def __init__(self) -> None:
        super().__init__()
        self.g = torch.Generator().manual_seed(123)

    def _embed(self, x: Tensor) -> Tensor:
        return nn.functional.normalize(torch.randn(len(x), 16, generator=self.g), dim=1)

    embed_rgb = _embed
    embed_elevation = _embed


def test_paper_protocol_oracle_is_perfect_and_chance_is_one_over_324() -> None:
    stacks = make_stacks(2, 144)  # 18 x 18 = 324 patches of 8 px per tile
    out = paper_protocol(OracleModel(8), stacks, grid_index(stacks, 8), STATS, batch_size=100)
    for d in ("elevation_to_rgb", "rgb_to_elevation"):
        m = out[d]
        assert m["top1"] == 1.0 and m["top5"] == 1.0
        assert m["chance_top1"] == pytest.approx(1 / 324)
        assert m["chance_top5"] == pytest.approx(5 / 324)
        assert m["n_queries"] == 648
    rec = out["records"]
    assert len(rec) == 2 * 648 and (rec["rank"] == 0).all()
    assert set(rec.columns) >= {
        "tile",
        "query_row",
        "query_col",
        "x",
        "y",
        "true_index",
        "top5_indices",
        "top5_scores",
        "rank",
    }
    first = rec.iloc[0]
    assert list(first["top5_indices"])[0] == first["true_index"]


def test_paper_protocol_random_model_is_near_chance() -> None:
    stacks = make_stacks(2, 128)  # 64 patches of 16 px per tile
    out = paper_protocol(RandomModel(), stacks, grid_index(stacks, 16), STATS)
    m = out["elevation_to_rgb"]
    assert m["chance_top1"] == pytest.approx(1 / 64)
    assert m["top1"] < 0.08 and m["top5"] < 0.25
    ranks = out["records"]["rank"]
    assert 20 < ranks.mean() < 44  # truth ranks uniformly in [0, 63]


def test_paper_protocol_small_tile_and_bad_index() -> None:
    stacks = make_stacks(1, 24)  # 3 x 3 = 9 patches: chance top-5 = 5/9
    out = paper_protocol(OracleModel(8), stacks, grid_index(stacks, 8), STATS)
    assert out["elevation_to_rgb"]["chance_top5"] == pytest.approx(5 / 9)
    with pytest.raises(ValueError, match="no patches"):
        paper_protocol(
            OracleModel(8), stacks, grid_index(make_stacks(1, 24, 1), 8).assign(tile="x"), STATS
        )


def test_localisation_oracle_hits_within_stride() -> None:
    stacks = make_stacks(2, 64, sigma=2.5)
    out = localisation_protocol(
        OracleModel(16), stacks, STATS, stride_m=4.0, patch_size_px=16, n_queries=60, seed=1
    )
    for d in ("elevation_to_rgb", "rgb_to_elevation"):
        m = out[d]
        assert m["gallery_size"] == 2 * 13 * 13 and m["n_queries"] == 60
        assert m["top1_within_4m"] >= 0.9 and m["top5_within_8m"] == 1.0
        assert m["median_error_m"] <= 4.0 * 0.75
        assert 0 < m["chance_top1_within_4m"] < m["chance_top10_within_4m"] < 0.5
        assert set(m) >= {f"top{k}_within_{r}m" for k in (1, 5, 10) for r in (4, 8)}


def test_localisation_dense_gallery_gives_zero_error_and_is_seeded() -> None:
    stacks = make_stacks(1, 40)
    kw: dict[str, Any] = {
        "stride_m": 1.0,
        "patch_size_px": 16,
        "n_queries": 30,
        "radii_m": (0.5,),
        "ks": (1,),
    }
    a = localisation_protocol(OracleModel(16), stacks, STATS, seed=3, **kw)
    b = localisation_protocol(OracleModel(16), stacks, STATS, seed=3, **kw)
    assert a == b
    assert a["elevation_to_rgb"]["median_error_m"] == 0.0
    assert a["elevation_to_rgb"]["top1_within_0.5m"] == 1.0
    assert a["elevation_to_rgb"]["chance_top1_within_0.5m"] == pytest.approx(1 / 25**2)


def test_localisation_rejects_invalid_windows() -> None:
    stacks = make_stacks(1, 40)
    stacks[0].valid[:] = False
    with pytest.raises(ValueError, match="min_valid_fraction"):
        localisation_protocol(OracleModel(16), stacks, STATS, 4.0, 16, n_queries=5)


def test_baseline_cosine_is_ncc_of_gradient_magnitude_and_scale_invariant() -> None:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (2, 3, 12, 12), dtype=np.uint8)
    elev = rng.normal(size=(2, 2, 12, 12)).astype(np.float32)
    a, b = baseline_embed_rgb(rgb)[0].numpy(), baseline_embed_elevation(elev)[1].numpy()
    grey = np.einsum("chw,c->hw", rgb[0].astype(np.float64), [0.299, 0.587, 0.114])

    def grad(x: np.ndarray) -> np.ndarray:
        gx, gy = x[1:-1, 2:] - x[1:-1, :-2], x[2:, 1:-1] - x[:-2, 1:-1]
        return np.hypot(gx, gy).ravel()

    ncc = np.corrcoef(grad(grey), grad(elev[1, 0].astype(np.float64)))[0, 1]
    assert float(a @ b) == pytest.approx(ncc, abs=1e-5)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    scaled = baseline_embed_elevation(elev * 3.0 - 7.0)
    np.testing.assert_allclose(scaled.numpy(), baseline_embed_elevation(elev).numpy(), atol=1e-5)
    assert baseline_embed_rgb(rgb, downsample=2).shape == (2, 25)
    with pytest.raises(ValueError, match="downsample"):
        BaselineModel(downsample=0)


def test_evaluate_all_shape_flatten_and_report() -> None:
    stacks = make_stacks(2, 64)
    metrics = evaluate_all(
        OracleModel(16),
        BaselineModel(),
        stacks,
        grid_index(stacks, 16),
        STATS,
        ProtocolSettings(strides_m=[4.0, 8.0], n_queries=20, batch_size=64),
    )
    assert isinstance(metrics, dict) and set(metrics) == {"model", "baseline"}
    for name in ("model", "baseline"):
        assert set(metrics[name]) == {"paper", "localisation"}
        assert set(metrics[name]["localisation"]) == {"stride_4m", "stride_8m"}
        for d in ("elevation_to_rgb", "rgb_to_elevation"):
            assert set(metrics[name]["paper"][d]) == {
                "top1",
                "top5",
                "chance_top1",
                "chance_top5",
                "n_queries",
            }
    assert metrics["baseline"]["paper"]["elevation_to_rgb"]["top1"] == 1.0  # same gradients
    flat = flatten_metrics(metrics)
    assert flat["model/paper/elevation_to_rgb/top1"] == 1.0
    assert "baseline/localisation/stride_8m/rgb_to_elevation/top10_within_16m" in flat
    assert all(isinstance(v, float) for v in flat.values())
    report = markdown_report(metrics)
    chance = f"{1 / 16:.3f}"  # 4 x 4 patches per tile
    assert f"| paper | elevation_to_rgb | top1 | 1.000 | {chance} | 1.000 | {chance} |" in report
    assert "localisation stride_4m" in report
