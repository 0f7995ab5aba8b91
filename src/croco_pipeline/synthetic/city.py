"""Plans the whole synthetic city once, on the full tile grid: roads, river, terrain, then city blocks.

Planning on the grid (not per tile) keeps every object continuous across tile borders.
"""

from __future__ import annotations

import numpy as np

from croco_pipeline.synthetic.blocks import fill_block, riverbanks
from croco_pipeline.synthetic.config import SyntheticConfig
from croco_pipeline.synthetic.plan import ROAD, WATER_FLAG, Plan, grid_bounds
from croco_pipeline.synthetic.scene import Scene

HALF_WIDTH = {0: 4.5, 1: 6.5, 2: 10.5}  # road half widths by kind: local, collector, arterial
MARGIN = 80.0  # plan beyond the grid so shadows and leaning roofs enter from outside


def _line_positions(lo: float, hi: float, rng: np.random.Generator) -> list[float]:
    out, p = [], lo + rng.uniform(10.0, 110.0)
    while p < hi - 10.0:
        out.append(p)
        p += rng.uniform(110.0, 230.0)
    return out


def _network(plan: Plan) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """A grid-ish street network (some pieces dropped) plus winding collectors; returns the lines."""
    rng = plan.rng
    left, bottom, right, top = plan.extent
    xs = [
        (x, HALF_WIDTH[int(rng.choice(3, p=[0.6, 0.25, 0.15]))])
        for x in _line_positions(left, right, rng)
    ]
    ys = [
        (y, HALF_WIDTH[int(rng.choice(3, p=[0.6, 0.25, 0.15]))])
        for y in _line_positions(bottom, top, rng)
    ]
    kind_of = {v: k for k, v in HALF_WIDTH.items()}
    for lines, cross, vertical in (
        (xs, [bottom, *[y for y, _ in ys], top], True),
        (ys, [left, *[x for x, _ in xs], right], False),
    ):
        for pos, hw in lines:
            for a, b in zip(cross[:-1], cross[1:], strict=True):
                if kind_of[hw] == 0 and rng.random() < 0.12:
                    continue  # dropped piece: superblocks and dead ends
                seg = (pos, a, pos, b) if vertical else (a, pos, b, pos)
                plan.add("roads", *seg, hw, kind_of[hw])
                plan.mark_segment(*seg, hw + 3.5, ROAD)
    for _ in range(max(1, round((right - left) / 2500.0))):
        yc, amp = rng.uniform(bottom, top), rng.uniform(30.0, 110.0)
        lam, phase = rng.uniform(600.0, 1500.0), rng.uniform(0, 2 * np.pi)
        xk = np.arange(left, right + 8.0, 8.0)
        yk = yc + amp * np.sin(2 * np.pi * (xk - left) / lam + phase)
        for i in range(len(xk) - 1):
            plan.add("roads", xk[i], yk[i], xk[i + 1], yk[i + 1], HALF_WIDTH[1], 1)
            plan.mark_segment(xk[i], yk[i], xk[i + 1], yk[i + 1], HALF_WIDTH[1] + 3.5, ROAD)
    return xs, ys


def _river(plan: Plan, grid_box: tuple[float, float, float, float]) -> None:
    """One meandering river across the grid (always inside it, so every release has water)."""
    rng = plan.rng
    left, bottom, right, top = plan.extent
    g_bottom, g_top = grid_box[1], grid_box[3]
    yc = rng.uniform(g_bottom + 0.3 * (g_top - g_bottom), g_bottom + 0.7 * (g_top - g_bottom))
    amp = min(0.2 * (g_top - g_bottom), rng.uniform(40.0, 120.0))
    lam, phase = rng.uniform(700.0, 1800.0), rng.uniform(0, 2 * np.pi)
    hw = rng.uniform(8.0, 15.0)
    xk = np.arange(left, right + 10.0, 10.0)
    yk = (
        yc
        + amp * np.sin(2 * np.pi * (xk - left) / lam + phase)
        + 0.3 * amp * np.sin(2 * np.pi * (xk - left) / (0.37 * lam))
    )
    for i in range(len(xk) - 1):
        plan.add("river", xk[i], yk[i], xk[i + 1], yk[i + 1], hw)
        plan.mark_segment(xk[i], yk[i], xk[i + 1], yk[i + 1], hw + 6.0, WATER_FLAG)


def plan_scene(cfg: SyntheticConfig) -> Scene:
    """The whole scene for ``cfg``: deterministic in ``cfg.seed`` and the grid size."""
    rng = np.random.default_rng([cfg.seed, 0])
    box = grid_bounds(cfg)
    extent = (box[0] - MARGIN, box[1] - MARGIN, box[2] + MARGIN, box[3] + MARGIN)
    plan = Plan(extent, rng)
    for wavelength, share in ((3000.0, 0.5), (1200.0, 0.3), (450.0, 0.2)):
        angle = rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi / wavelength
        plan.add(
            "waves",
            cfg.terrain_relief_m * share,
            k * np.cos(angle),
            k * np.sin(angle),
            rng.uniform(0, 6.3),
        )
    xs, ys = _network(plan)
    _river(plan, box)
    xcuts = [(extent[0], 0.0), *xs, (extent[2], 0.0)]
    ycuts = [(extent[1], 0.0), *ys, (extent[3], 0.0)]
    for (xa, ha), (xb, hb) in zip(xcuts[:-1], xcuts[1:], strict=True):
        for (ya, va), (yb, vb) in zip(ycuts[:-1], ycuts[1:], strict=True):
            block = (xa + ha + 3.5, ya + va + 3.5, xb - hb - 3.5, yb - vb - 3.5)
            if block[2] - block[0] > 25.0 and block[3] - block[1] > 25.0:
                fill_block(plan, block, cfg)
    riverbanks(plan, cfg)
    return plan.scene(cfg.ground_level_m)
