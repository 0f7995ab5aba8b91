"""Voting, refinement, shift invariance, tracks and per-file failures on an oracle scene."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import GSD, ORIGIN, PATCH, STATS, STRIDE, cloud_points, write_las

from croco_pipeline.errors import CrocoInputError
from croco_pipeline.localisation.locate import (
    check_peaks,
    locate,
    peak_scores,
    rank_candidates,
    rerank_peaks,
)
from croco_pipeline.localisation.params import LocalizeParams, RerankParams
from croco_pipeline.localisation.refine import refine_gradient_ncc
from croco_pipeline.localisation.service import Context, localise_folder
from croco_pipeline.localisation.voting import dense_vote, vote


def test_vote_picks_the_true_offset_when_one_tile_is_wrong() -> None:
    rows, cols = np.meshgrid(np.arange(0, 12, 4), np.arange(0, 12, 4), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    truth = np.array([10, 7])
    rng = np.random.default_rng(0)
    k = 3
    rc = rng.integers(0, 30, (len(rows), k, 2))
    rc[:, 1] = truth + np.stack([rows, cols], 1) // 4  # the right candidate, second for every tile
    scores = np.tile([0.6, 0.8, 0.3], (len(rows), 1))
    scores[0, 0] = 0.99  # tile 0's best is far off
    grid = vote(rows, cols, scores, rc, (30, 30), 4, (12, 12))
    (a, b, mass), *_ = grid.peaks(3, 2)
    assert (a, b) == tuple(truth)
    assert grid.agreeing_share(a, b) == pytest.approx(8 / 9)  # all tiles but the wrong one
    # a slow reference: the support at the truth is every tile's right candidate (0.8 each) plus any
    # wrong candidate that happens to land in its 3 x 3 neighbourhood
    implied = rc - (np.stack([rows, cols], 1) // 4)[:, None]
    near = np.abs(implied - truth).max(axis=2) <= 1
    assert mass == pytest.approx(float((scores * near).sum()))


def test_dense_vote_is_the_vote_of_every_candidate_and_matches_a_slow_reference() -> None:
    rng = np.random.default_rng(4)
    lattice_shape, stride = (6, 7), 4
    lattice = np.stack(np.meshgrid(np.arange(6), np.arange(7), indexing="ij"), -1).reshape(-1, 2)
    keep = rng.random(len(lattice)) > 0.2  # a map with holes (nodata windows are not indexed)
    lattice = lattice[keep]
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    gallery, emb = unit(rng.normal(size=(len(lattice), 5)) + 1.0), unit(rng.normal(size=(3, 5)))
    rows, cols = np.array([0, 4, 8]), np.array([0, 8, 4])
    blocks = [gallery[:10], gallery[10:11], gallery[11:]]  # block edges change nothing
    mean = gallery.mean(axis=0)
    dense = dense_vote(rows, cols, emb, mean, blocks, lattice, lattice_shape, stride, (12, 12))
    sims = emb @ gallery.T
    centred = sims - sims.mean(axis=1, keepdims=True)  # each tile's mean cosine over the map
    order = np.argsort(-sims, axis=1)  # every candidate, best first, as a search returns them
    sparse = vote(rows, cols, np.take_along_axis(centred, order, 1), lattice[order], lattice_shape,
                  stride, (12, 12))  # fmt: skip
    np.testing.assert_allclose(dense.votes, sparse.votes)
    np.testing.assert_array_equal(dense.best_cells, sparse.best_cells)
    np.testing.assert_allclose(dense.best_scores, sims.max(axis=1))
    pad = dense.pad  # slow reference: each (tile, patch) pair adds its clipped excess at one cell
    ref = np.zeros_like(dense.votes)
    for t in range(3):
        for g, (i, j) in enumerate(lattice):
            excess = sims[t, g] - np.mean(sims[t])
            ref[i - rows[t] // stride + pad, j - cols[t] // stride + pad] += max(excess, 0.0)
    np.testing.assert_allclose(dense.votes, ref)
    assert (ref > 0).sum() < ref.size / 2  # the floor matters: the map's cosines are mostly high
    with pytest.raises(ValueError, match="lattice"):
        dense_vote(rows, cols, emb, mean, blocks[:1], lattice, lattice_shape, stride, (12, 12))


def _fix_error(fix, r0: int, c0: int) -> tuple[float, float]:
    return fix.x - (ORIGIN[0] + c0 * GSD), fix.y - (ORIGIN[1] - r0 * GSD)


@pytest.mark.parametrize(
    ("method", "max_tiles"), [("embedding", None), ("embedding", 1), ("gradient_ncc", None)]
)
def test_refinement_reaches_sub_stride_accuracy(
    oracle, oracle_map, heights, method, max_tiles
) -> None:
    lmap, source = oracle_map
    r0, c0 = 37, 51  # 1 and 3 px off the 4 px map lattice
    elev, valid = heights[None, r0 : r0 + 40, c0 : c0 + 40], np.ones((40, 40), bool)
    coarse = locate(oracle, lmap, source, elev, valid, STATS,
                    LocalizeParams.from_params({"refine": {"method": "none"}}), "q")  # fmt: skip
    fine = locate(oracle, lmap, source, elev, valid, STATS,
                  LocalizeParams.from_params({"refine": {"method": method, "max_tiles": max_tiles}}),
                  "q")  # fmt: skip
    assert max(map(abs, _fix_error(coarse, r0, c0))) >= 1.0  # voting alone: on the stride lattice
    assert max(map(abs, _fix_error(coarse, r0, c0))) <= STRIDE
    assert max(map(abs, _fix_error(fine, r0, c0))) < 0.3
    assert 0.0 <= fine.confidence <= 1.0 and len(fine.candidates) == 5
    # the classical check at the fix: the oracle's RGB is a colouring of the heights
    assert fine.features["gradient_ncc"] > 0.9


def test_every_map_patch_can_vote_and_k_is_checked(oracle, oracle_map, heights) -> None:
    from croco_pipeline.errors import CrocoConfigError

    lmap, source = oracle_map
    r0, c0 = 37, 51
    elev, valid = heights[None, r0 : r0 + 40, c0 : c0 + 40], np.ones((40, 40), bool)
    fix = locate(oracle, lmap, source, elev, valid, STATS, LocalizeParams.from_params({"k": "all"}),
                 "q")  # fmt: skip
    assert max(map(abs, _fix_error(fix, r0, c0))) < 0.3
    assert fix.n_tiles == 49 and fix.votes.gather is False  # (3 x 3 sums let the background win)
    for bad in ("every", 0):
        with pytest.raises(CrocoConfigError, match="localize.k"):
            LocalizeParams.from_params({"k": bad})


def test_gradient_check_is_low_away_from_the_truth(oracle_map, heights) -> None:
    _, source = oracle_map
    r0, c0 = 37, 51
    elev, valid = heights[None, r0 : r0 + 40, c0 : c0 + 40], np.ones((40, 40), bool)
    at_truth = refine_gradient_ncc(source, (r0, c0), elev, valid, 1)
    elsewhere = refine_gradient_ncc(source, (r0 + 60, c0 + 10), elev, valid, 1)
    assert at_truth[2] > 0.9 and abs(at_truth[0]) < 0.5 and abs(at_truth[1]) < 0.5
    assert elsewhere[2] < 0.5


def test_the_classical_check_reranks_the_vote_peaks(oracle_map, heights) -> None:
    _, source = oracle_map
    r0, c0 = 37, 51  # 1 and 3 px off the lattice: the check searches one stride around a cell
    elev, valid = heights[None, r0 : r0 + 40, c0 : c0 + 40], np.ones((40, 40), bool)
    right = (r0 // STRIDE, c0 // STRIDE, 9.0)
    wrong = (r0 // STRIDE + 15, c0 // STRIDE + 2, 10.0)  # more votes, 60 px away
    peaks = [wrong, right, (0, 0, 1.0)]
    checks = check_peaks(source, peaks, STRIDE, elev, valid, 2)
    assert checks[1] > 0.9 and checks[0] < 0.5 and np.isnan(checks[2])  # the third is not checked
    # weight 0: the vote's order, scores = support / first support
    assert peak_scores(peaks, checks, 0.0) == pytest.approx([1.0, 0.9, 0.1])
    assert rerank_peaks(peak_scores(peaks, checks, 0.0)) == [0, 1, 2]
    # 9 / 10 + NCC > 0.9 beats 10 / 10 + NCC < 0.5
    scores = peak_scores(peaks, checks, 1.0)
    assert scores[:2] == pytest.approx([1.0 + max(checks[0], 0.0), 0.9 + checks[1]])
    assert rerank_peaks(scores) == [1, 0, 2] and scores[2] == -np.inf  # unchecked: never wins
    # a negative correlation counts as none
    assert peak_scores(peaks, np.array([-0.5, 0.2, np.nan]), 2.0)[:2] == pytest.approx([1.0, 1.3])


def test_the_refinement_score_can_overturn_the_first_stage() -> None:
    # stage 1 (support + 1 x NCC): peak 0 scores 1.1, peak 1 0.9 + 0.1 = 1.0, peak 2 0.5 + 0.4 = 0.9
    peaks = [(0, 0, 10.0), (1, 1, 9.0), (2, 2, 5.0)]
    checks = np.array([0.1, 0.1, 0.4])
    fit = {0: 0.2, 1: 0.5, 2: 0.9}  # refinement score by peak row
    calls: list[int] = []

    def refine_at(peak: tuple[int, int, float]) -> tuple[float, float, float]:
        calls.append(peak[0])
        return 0.0, 0.0, fit[peak[0]]

    rerank = RerankParams(candidates=3, weight=1.0, refine_candidates=2, refine_weight=1.0)
    order, ranked, refined, fits = rank_candidates(peaks, checks, rerank, refine_at)
    # the two best of stage 1 are refined, once each: 1.1 + 0.2 = 1.3 < 1.0 + 0.5 = 1.5
    assert calls == [0, 1] and sorted(fits) == [0, 1]
    assert order == [1, 0, 2]
    assert ranked[:2] == pytest.approx([1.3, 1.5]) and ranked[2] == -np.inf
    assert refined[:2] == pytest.approx([0.2, 0.5]) and np.isnan(refined[2])
    # refine_weight without refined candidates leaves the first stage's order
    calls.clear()
    off = RerankParams(candidates=3, weight=1.0, refine_candidates=0, refine_weight=8.0)
    order, ranked, _, fits = rank_candidates(peaks, checks, off, refine_at)
    assert (order, calls, fits) == ([0, 1, 2], [], {})
    assert ranked == pytest.approx([1.1, 1.0, 0.9])


def test_the_best_candidates_are_refined_and_ranked_by_their_refinement(
    oracle, oracle_map, heights
) -> None:
    lmap, source = oracle_map
    r0, c0 = 37, 51
    elev, valid = heights[None, r0 : r0 + 40, c0 : c0 + 40], np.ones((40, 40), bool)
    rerank = {"candidates": 5, "weight": 4.0, "refine_candidates": 3, "refine_weight": 8.0}
    params = LocalizeParams.from_params({"rerank": rerank})
    fix = locate(oracle, lmap, source, elev, valid, STATS, params, "q")
    assert max(map(abs, _fix_error(fix, r0, c0))) < 0.3
    refined = np.array(fix.refined)
    # three candidates refined (the winner first: its refinement is the fix's), the rest not
    assert np.isfinite(refined[:3]).all() and np.isnan(refined[3:]).all()
    assert refined[0] == pytest.approx(fix.features["refine_score"]) == np.nanmax(refined)


def _context(oracle, oracle_map, **params) -> Context:
    lmap, source = oracle_map
    return Context(oracle, lmap, source, STATS, LocalizeParams.from_params(params))


def test_a_query_moved_50_km_gets_the_same_answer_relative_to_its_origin(
    tmp_path: Path, oracle, oracle_map, heights
) -> None:
    x, y, z = cloud_points(heights, slice(61, 101), slice(101, 141))
    for name, shift in (("here", 0.0), ("moved", 50_000.0)):
        (tmp_path / name).mkdir()
        write_las(tmp_path / name / "scan.laz", x + shift, y + shift, z)
    here, _ = localise_folder(_context(oracle, oracle_map), tmp_path / "here")
    moved, _ = localise_folder(_context(oracle, oracle_map), tmp_path / "moved")
    truth = ((x.min() + x.max()) / 2, (y.min() + y.max()) / 2)
    assert here[0]["status"] == moved[0]["status"] == "ok"
    assert abs(here[0]["x"] - truth[0]) < 0.5 and abs(here[0]["y"] - truth[1]) < 0.5
    # the map has no data 50 km away: the answer is where the shape matches, not the coordinates
    assert moved[0]["x"] == pytest.approx(here[0]["x"], abs=1e-6)
    assert moved[0]["y"] == pytest.approx(here[0]["y"], abs=1e-6)


def test_track_scans_share_one_offset_and_all_get_a_location(
    tmp_path: Path, oracle, oracle_map, heights
) -> None:
    track = tmp_path / "queries" / "drive"
    track.mkdir(parents=True)
    windows = [
        (slice(40, 52), slice(20, 60)),
        (slice(52, 64), slice(20, 60)),
        (slice(64, 76), slice(20, 60)),
    ]
    truths = []
    for i, (rows, cols) in enumerate(windows):
        x, y, z = cloud_points(heights, rows, cols, seed=i)
        write_las(track / f"scan{i}.laz", x + 10_000, y - 7_000, z)  # the whole track displaced
        truths.append(((x.min() + x.max()) / 2, (y.min() + y.max()) / 2))
    # alone, each 12 m scan is smaller than one 16 m patch; as a track they are located together
    write_las(tmp_path / "queries" / "alone.laz", *cloud_points(heights, *windows[0]))
    rows_out, heatmaps = localise_folder(_context(oracle, oracle_map), tmp_path / "queries")
    by_name = {r["query"]: r for r in rows_out}
    assert (
        by_name["alone"]["status"] == "failed" and "smaller than one" in by_name["alone"]["reason"]
    )
    assert "alone.laz" in by_name["alone"]["reason"]
    for i, truth in enumerate(truths):
        row = by_name[f"scan{i}"]
        assert row["status"] == "ok" and row["track"] == "drive"
        assert np.hypot(row["x"] - truth[0], row["y"] - truth[1]) < 0.5
    assert set(heatmaps) == {"drive"}


def test_bad_files_fail_in_their_rows_and_the_rest_is_localised(
    tmp_path: Path, oracle, oracle_map, heights
) -> None:
    x, y, z = cloud_points(heights, slice(61, 101), slice(101, 141))
    write_las(tmp_path / "good.laz", x[::2], y[::2], z[::2])
    write_las(tmp_path / "nocrs.laz", x[::2], y[::2], z[::2], crs=None)
    (tmp_path / "empty.laz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a query")
    write_las(tmp_path / "skip_me.laz", x, y, z)
    write_las(tmp_path / "huge.laz", x, y, z)
    ctx = _context(oracle, oracle_map, exclude=["skip*"], max_points=len(x) - 1)
    rows, _ = localise_folder(ctx, tmp_path)
    status = {r["file"]: (r["status"], r["reason"]) for r in rows}
    assert status["skip_me.laz"][0] == "skipped" and "localize.exclude" in status["skip_me.laz"][1]
    assert status["huge.laz"][0] == "skipped" and "localize.max_points" in status["huge.laz"][1]
    assert status["good.laz"][0] == "ok" and "notes.txt" not in status
    for bad in ("nocrs.laz", "empty.laz"):
        assert status[bad][0] == "failed" and bad in status[bad][1]
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(CrocoInputError, match="nothing.*holds no LAS/LAZ/GeoTIFF"):
        localise_folder(_context(oracle, oracle_map), empty)
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "empty.laz").write_bytes(b"")
    with pytest.raises(CrocoInputError, match="nothing could be localised.*empty.laz"):
        localise_folder(_context(oracle, oracle_map), only_bad)


def test_an_elevation_geotiff_query_is_localised(
    tmp_path: Path, oracle, oracle_map, heights
) -> None:
    from affine import Affine
    from conftest import MAP_CRS

    from croco_pipeline.data.geo import GeoRaster, write_geotiff

    r0, c0 = 61, 101  # a 40 m window of the scene at 0.5 m (each cell repeated), in the map CRS
    window = np.repeat(np.repeat(heights[r0 : r0 + 40, c0 : c0 + 40], 2, 0), 2, 1)
    transform = Affine(0.5, 0, ORIGIN[0] + c0 * GSD, 0, -0.5, ORIGIN[1] - r0 * GSD)
    write_geotiff(GeoRaster(window[None], MAP_CRS, transform, float("nan")), tmp_path / "dsm.tif")
    rows, _ = localise_folder(_context(oracle, oracle_map), tmp_path)
    (row,) = rows
    assert row["status"] == "ok" and row["file"] == "dsm.tif"
    truth = (ORIGIN[0] + (c0 + 20) * GSD, ORIGIN[1] - (r0 + 20) * GSD)
    assert np.hypot(row["x"] - truth[0], row["y"] - truth[1]) < 0.5


def test_query_tiles_default_to_a_quarter_patch_on_a_denser_map(oracle, stack, heights) -> None:
    from conftest import MAP_OPTS, SPEC

    from croco_pipeline.localisation.locate import tile_stride
    from croco_pipeline.localisation.mapping import build_map
    from croco_pipeline.localisation.ortho import StackMosaic

    source = StackMosaic([stack])
    dense = build_map(oracle, source, replace(SPEC, stride_px=1), MAP_OPTS)
    assert len(dense.index) == (heights.shape[0] - PATCH + 1) * (heights.shape[1] - PATCH + 1)
    params = LocalizeParams.from_params({"refine": {"method": "none"}})
    assert tile_stride(dense, params) == PATCH // 4  # not one tile per map pixel
    three = LocalizeParams.from_params({"tile_stride_m": 3.0 * GSD})
    assert tile_stride(dense, three) == 3
    coarse_map = build_map(oracle, source, replace(SPEC, stride_px=8), MAP_OPTS)
    assert tile_stride(coarse_map, three) == 8  # rounded to a multiple of the map stride, >= 1
    # the query sits 1 and 3 px off a 4 px lattice; on the 1 px map the vote alone lands on it
    r0, c0 = 37, 51
    elev, valid = heights[None, r0 : r0 + 40, c0 : c0 + 40], np.ones((40, 40), bool)
    fix = locate(oracle, dense, source, elev, valid, STATS, params, "q")
    assert fix.n_tiles == (1 + (40 - PATCH) // (PATCH // 4)) ** 2
    assert _fix_error(fix, r0, c0) == pytest.approx((0.0, 0.0), abs=1e-9)
