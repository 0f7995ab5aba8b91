"""Non-residential land uses (warehouses, parking, parks, fields, woods) and the per-block choice.

The mix is tuned to a Houston-like suburb: mostly houses, some commercial strips, much open ground.
Large flat featureless blocks (fields, lawns, empty lots) are deliberate: they are CroCo's failure case.
"""

from __future__ import annotations

import numpy as np

from croco_pipeline.synthetic.config import SyntheticConfig
from croco_pipeline.synthetic.landuse import (
    AISLE,
    FLAT_ROOFS,
    STALL_D,
    STALL_W,
    WALLS,
    Block,
    add_building,
    add_tree,
    block_frame,
    parked_cars,
    residential,
)
from croco_pipeline.synthetic.plan import Plan
from croco_pipeline.synthetic.raster import to_world
from croco_pipeline.synthetic.scene import (
    DRY_GRASS,
    FLAT,
    GABLE,
    GRASS,
    GRAVEL,
    LAWN,
    OLD_ASPHALT,
    SOIL,
)


def parking_lot(
    plan: Plan,
    lot: tuple[float, float, float, float, float],
    occupancy: float,
    cfg: SyntheticConfig,
) -> None:
    """Asphalt with double rows of painted stalls across the lot's width, cars where stalls are taken."""
    cx, cy, hl, hw, ang = lot
    plan.add("lots", cx, cy, hl, hw, ang)
    period = 2 * STALL_D + AISLE
    starts = -hw + np.arange(int((2 * hw) // period) + 1) * period
    vs = np.concatenate([starts + STALL_D / 2, starts + STALL_D * 1.5])
    vs = vs[vs <= hw - STALL_D / 2]
    us = -hl + (np.arange(int((2 * hl) // STALL_W)) + 0.5) * STALL_W
    u, v = (a.ravel() for a in np.meshgrid(us, vs))
    c, s = np.cos(ang), np.sin(ang)
    # vectorised: a big lot has thousands of stalls
    parked_cars(plan, cx + u * c - v * s, cy + u * s + v * c, ang + np.pi / 2, occupancy, cfg)


def commercial(plan: Plan, block: Block, cfg: SyntheticConfig) -> None:
    """One or two big flat-roofed boxes (warehouses, maybe an office tower) in a parking lot."""
    rng = plan.rng
    cx, cy, length, depth, ang = block_frame(block)
    plan.add(
        "patches", cx, cy, length / 2, depth / 2, ang, int(rng.choice([GRAVEL, GRASS, DRY_GRASS]))
    )
    for _ in range(int(rng.integers(1, 3))):
        tower = rng.random() < 0.2
        if tower:
            bl, bd = rng.uniform(18, 40), rng.uniform(16, 30)
            eave, rise, kind = rng.uniform(18.0, 42.0), 0.0, FLAT
        else:
            bl, bd = rng.uniform(0.3, 0.6) * length, rng.uniform(0.35, 0.6) * depth
            low_gable = rng.random() < 0.3
            eave = rng.uniform(6.0, 13.0)
            rise, kind = (rng.uniform(0.8, 2.0), GABLE) if low_gable else (0.0, FLAT)
        bl, bd = max(8.0, bl), max(8.0, min(bd, depth - 16))
        u = rng.uniform(
            -length / 2 + bl / 2 + 6, max(-length / 2 + bl / 2 + 6, length / 2 - bl / 2 - 6)
        )
        v = rng.uniform(
            -depth / 2 + bd / 2 + 6, max(-depth / 2 + bd / 2 + 6, depth / 2 - bd / 2 - 6)
        )
        x, y = to_world(cx, cy, ang, u, v)
        roof = FLAT_ROOFS[rng.integers(len(FLAT_ROOFS))]
        if add_building(
            plan,
            [(x, y, bl / 2, bd / 2, ang)],
            eave,
            rise,
            kind,
            roof,
            WALLS[rng.integers(len(WALLS))],
        ):
            if kind == FLAT:
                _rooftop_units(plan, (x, y, bl / 2, bd / 2, ang), eave)
    occupancy = float(np.clip(rng.uniform(0.3, 1.3) * cfg.car_occupancy, 0, 1))
    parking_lot(plan, (cx, cy, length / 2 - 3, depth / 2 - 3, ang), occupancy, cfg)
    for _ in range(int(length / 30)):  # landscaping strip along the street
        add_tree(
            plan,
            *to_world(cx, cy, ang, rng.uniform(-length / 2, length / 2), depth / 2 - 1.5),
            cfg,
            0.8,
        )


def _rooftop_units(plan: Plan, roof: tuple[float, float, float, float, float], eave: float) -> None:
    """Air-conditioning boxes on a flat roof: small blocks in both the photo and the DSM."""
    rng = plan.rng
    x, y, hl, hw, ang = roof
    for _ in range(min(14, int(hl * hw / 120))):
        u, v = rng.uniform(-0.8, 0.8) * (hl - 3), rng.uniform(-0.8, 0.8) * (hw - 3)
        grey = rng.uniform(150, 215)
        idx = plan.add(
            "buildings",
            eave + rng.uniform(1.0, 2.0),
            0,
            FLAT,
            grey,
            grey,
            grey + 3,
            120,
            120,
            125,
            *to_world(x, y, ang, u, v),
        )
        plan.add(
            "parts",
            idx,
            *to_world(x, y, ang, u, v),
            rng.uniform(1.0, 3.0),
            rng.uniform(0.8, 2.0),
            ang,
        )


def riverbanks(plan: Plan, cfg: SyntheticConfig) -> None:
    """Trees scattered along both banks of the river (outside the built-up blocks)."""
    rng = plan.rng
    for x0, y0, x1, y1, hw in plan.lists["river"]:
        length = float(np.hypot(x1 - x0, y1 - y0))
        nx, ny = -(y1 - y0) / length, (x1 - x0) / length
        for _ in range(rng.poisson(0.25 * length)):
            t, side = rng.random(), rng.choice([-1.0, 1.0])
            off = side * (hw + rng.uniform(7.0, 16.0))
            add_tree(plan, x0 + t * (x1 - x0) + off * nx, y0 + t * (y1 - y0) + off * ny, cfg)


def park(plan: Plan, block: Block, cfg: SyntheticConfig) -> None:
    """Open lawn with clumps of trees, maybe a pond and footpaths."""
    rng = plan.rng
    cx, cy, length, depth, ang = block_frame(block)
    plan.add("patches", cx, cy, length / 2, depth / 2, ang, LAWN)
    if rng.random() < 0.5 and depth > 60:
        a, b = rng.uniform(12, 0.3 * length), rng.uniform(8, 0.25 * depth)
        px, py = to_world(
            cx, cy, ang, rng.uniform(-0.2, 0.2) * length, rng.uniform(-0.15, 0.15) * depth
        )
        if not plan.rect_hits(px, py, a, b, ang, 1 | 4):
            plan.add("ponds", px, py, a, b, ang + rng.normal(0, 0.3))
            plan.mark_rect(px, py, a, b, ang, 2)
    for _ in range(int(rng.integers(1, 3))):
        u0, u1 = rng.uniform(-0.5, 0.5, 2) * length
        x0, y0 = to_world(cx, cy, ang, u0, -depth / 2)
        x1, y1 = to_world(cx, cy, ang, u1, depth / 2)
        plan.add("paths", x0, y0, x1, y1, 1.1)
    for _ in range(max(1, int(length * depth / 4000))):
        u, v = rng.uniform(-0.5, 0.5) * length, rng.uniform(-0.5, 0.5) * depth
        for _ in range(rng.poisson(6)):
            add_tree(plan, *to_world(cx, cy, ang, u + rng.normal(0, 9), v + rng.normal(0, 9)), cfg)


def field(plan: Plan, block: Block, cfg: SyntheticConfig) -> None:
    """Bare soil or dry grass, featureless, maybe a tree line along one edge."""
    rng = plan.rng
    cx, cy, length, depth, ang = block_frame(block)
    plan.add(
        "patches", cx, cy, length / 2, depth / 2, ang, int(rng.choice([SOIL, DRY_GRASS, GRASS]))
    )
    if rng.random() < 0.5:
        v = rng.choice([-1.0, 1.0]) * (depth / 2 - 3)
        for u in np.arange(-length / 2, length / 2, rng.uniform(6, 12)):
            add_tree(plan, *to_world(cx, cy, ang, u, v), cfg, 0.9)


def wooded(plan: Plan, block: Block, cfg: SyntheticConfig) -> None:
    """A dense stand of trees on rough grass."""
    rng = plan.rng
    cx, cy, length, depth, ang = block_frame(block)
    plan.add("patches", cx, cy, length / 2, depth / 2, ang, GRASS)
    for _ in range(int(length * depth / 40)):
        u, v = rng.uniform(-0.5, 0.5) * length, rng.uniform(-0.5, 0.5) * depth
        add_tree(plan, *to_world(cx, cy, ang, u, v), cfg, 1.1)


def empty_lot(plan: Plan, block: Block, cfg: SyntheticConfig) -> None:
    """A big, mostly empty parking lot (old asphalt): flat and featureless in the LiDAR."""
    cx, cy, length, depth, ang = block_frame(block)
    plan.add("patches", cx, cy, length / 2, depth / 2, ang, OLD_ASPHALT)
    parking_lot(
        plan, (cx, cy, length / 2 - 4, depth / 2 - 4, ang), plan.rng.uniform(0.0, 0.25), cfg
    )


LAND_USES = (residential, commercial, park, field, wooded, empty_lot)
LAND_USE_P = (0.48, 0.15, 0.11, 0.11, 0.08, 0.07)


def fill_block(plan: Plan, block: Block, cfg: SyntheticConfig) -> None:
    """Pick a land use for ``block`` (x0, y0, x1, y1) and fill it."""
    use = LAND_USES[int(plan.rng.choice(len(LAND_USES), p=LAND_USE_P))]
    use(plan, block, cfg)
