"""What every land use places on a block (its frame, trees, buildings, parked cars) and the
residential land use: rows of houses with lawns, driveways and pools (the others are in ``blocks``).
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Sequence

import numpy as np

from croco_pipeline.synthetic.config import SyntheticConfig
from croco_pipeline.synthetic.plan import BUILDING, ROAD, WATER_FLAG, Plan
from croco_pipeline.synthetic.raster import to_world
from croco_pipeline.synthetic.scene import (
    ABSENT,
    AUTUMN,
    CONCRETE,
    DRY_GRASS,
    FLAT,
    GABLE,
    GRASS,
    HIP,
    LAWN,
    LEAFLESS,
    NORMAL,
    POOL,
    SMALLER,
)

Block = tuple[float, float, float, float]
BLOCKED = ROAD | WATER_FLAG | BUILDING
ROOFS = np.array(
    [
        [72, 72, 78],
        [96, 84, 76],
        [122, 72, 58],
        [150, 148, 142],
        [108, 98, 84],
        [86, 96, 108],
        [140, 120, 96],
    ]
)
FLAT_ROOFS = np.array(
    [[205, 205, 200], [170, 170, 166], [186, 178, 160], [120, 135, 150], [95, 95, 98]]
)
WALLS = np.array(
    [[200, 190, 170], [225, 220, 210], [150, 90, 70], [180, 170, 150], [160, 160, 155]]
)
CAR_COLOURS = (
    (235, 235, 235),
    (25, 25, 28),
    (160, 162, 165),
    (150, 30, 30),
    (40, 60, 120),
    (90, 92, 95),
)
CAR_COLOUR_CUM = (0.25, 0.45, 0.65, 0.75, 0.85)  # white and dark cars dominate US parking lots
LOOKS = (LEAFLESS, AUTUMN, SMALLER, ABSENT)
LOOK_CUM = (0.35, 0.65, 0.85)
STALL_W, STALL_D, AISLE = 2.7, 5.5, 7.0


def add_tree(plan: Plan, x: float, y: float, cfg: SyntheticConfig, scale: float = 1.0) -> None:
    """Plant a tree at (x, y) unless roads, water or a building stand there; some change look."""
    rng = plan.rng
    if not plan.point_free(x, y, BLOCKED):
        return
    r = rng.uniform(2.2, 5.5) * scale
    h = min(24.0, max(4.0, r * rng.uniform(1.6, 2.6) + rng.normal(0, 1.0)))
    look = NORMAL
    if rng.random() < cfg.foliage_change_rate:
        look = LOOKS[bisect(LOOK_CUM, rng.random())]
    plan.add("trees", x, y, r, h, rng.random(), look)


def parked_cars(
    plan: Plan, xs: np.ndarray, ys: np.ndarray, ang: float, occupancy: float, cfg: SyntheticConfig
) -> None:
    """Maybe park cars at spots: independent LiDAR and photo draws linked by ``car_persistence``."""
    rng = plan.rng
    n = len(xs)
    lidar = rng.random(n) < occupancy
    # a stall empty at LiDAR time fills by photo time at a rate keeping the mean occupancy equal
    fresh = min(1.0, occupancy * (1 - cfg.car_persistence) / max(1e-6, 1 - occupancy))
    photo = np.where(lidar, rng.random(n) < cfg.car_persistence, rng.random(n) < fresh)
    colour = np.searchsorted(CAR_COLOUR_CUM, rng.random(n), side="right")
    angle = ang + rng.normal(0, 0.04, n)
    keep = (lidar | photo) & plan.points_free(xs, ys, BLOCKED)
    rows = np.column_stack([xs, ys, angle, np.array(CAR_COLOURS)[colour], lidar, photo]).astype(
        np.float64
    )[keep]
    plan.lists["cars"].extend(map(tuple, rows.tolist()))


def _car(
    plan: Plan, x: float, y: float, ang: float, occupancy: float, cfg: SyntheticConfig
) -> None:
    parked_cars(plan, np.array([x]), np.array([y]), ang, occupancy, cfg)


def add_building(
    plan: Plan,
    parts: Sequence[tuple[float, float, float, float, float]],
    eave: float,
    rise: float,
    kind: int,
    roof: np.ndarray,
    wall: np.ndarray,
) -> bool:
    """Add a building made of rotated-rectangle parts unless it meets roads, water or buildings."""
    if any(plan.rect_hits(*p, BLOCKED) for p in parts):
        return False
    jitter = plan.rng.uniform(0.85, 1.15)
    roof_rgb = np.clip(roof * jitter, 0, 255)
    area = np.array([p[2] * p[3] for p in parts])
    cx = float(np.average([p[0] for p in parts], weights=area))
    cy = float(np.average([p[1] for p in parts], weights=area))
    idx = plan.add("buildings", eave, rise, kind, *roof_rgb, *wall, cx, cy)
    for p in parts:
        plan.add("parts", idx, *p)
        plan.mark_rect(*p, BUILDING)
    return True


def block_frame(block: Block) -> tuple[float, float, float, float, float]:
    """Block centre, length along its long side, depth, and the angle of the long side."""
    x0, y0, x1, y1 = block
    w, h = x1 - x0, y1 - y0
    return ((x0 + x1) / 2, (y0 + y1) / 2, max(w, h), min(w, h), 0.0 if w >= h else np.pi / 2)


def residential(plan: Plan, block: Block, cfg: SyntheticConfig) -> None:
    """Rows of houses facing the two long streets: lawns, driveways, pools, yard and street trees."""
    rng = plan.rng
    cx, cy, length, depth, ang = block_frame(block)
    plan.add("patches", cx, cy, length / 2, depth / 2, ang, GRASS)
    parcel_d = min(depth / 2, rng.uniform(28.0, 40.0))
    for side in (1.0, -1.0):
        u = -length / 2 + rng.uniform(0, 6)
        while u < length / 2 - 14:
            pw = rng.uniform(15.0, 24.0)
            uc = u + pw / 2
            pv = side * (depth / 2 - parcel_d / 2)
            lawn = int(rng.choice([GRASS, LAWN, DRY_GRASS], p=[0.45, 0.35, 0.2]))
            plan.add(
                "patches",
                *to_world(cx, cy, ang, uc, pv),
                pw / 2 - 0.3,
                parcel_d / 2 - 0.3,
                ang,
                lawn,
            )
            setback = rng.uniform(5.0, 9.0)
            w = max(8.0, pw - rng.uniform(3.0, 6.0))
            d = min(rng.uniform(9.0, 14.0), parcel_d - setback - 4.0)
            if d >= 6.0:
                _house(plan, (cx, cy, ang), side, uc, (w, d), depth / 2 - setback, depth / 2, cfg)
            if rng.random() < 0.4:
                add_tree(
                    plan,
                    *to_world(cx, cy, ang, uc + rng.uniform(-5, 5), side * (depth / 2 - 1.8)),
                    cfg,
                )
            for _ in range(rng.poisson(1.4)):
                vv = side * (depth / 2 - parcel_d + rng.uniform(2.0, 0.45 * parcel_d))
                add_tree(plan, *to_world(cx, cy, ang, uc + rng.uniform(-pw / 2, pw / 2), vv), cfg)
            if rng.random() < 0.12 and parcel_d > 30:
                vv = side * (depth / 2 - parcel_d + 6.0)
                px, py = to_world(cx, cy, ang, uc + rng.uniform(-3, 3), vv)
                plan.add("patches", px, py, 5.0, 3.0, ang, CONCRETE)
                plan.add("patches", px, py, 4.0, 2.0, ang, POOL)
            u += pw
    for _ in range(
        int(max(0.0, depth - 2 * parcel_d) * length / 250.0)
    ):  # greenbelt between backyards
        add_tree(
            plan,
            *to_world(
                cx,
                cy,
                ang,
                rng.uniform(-length / 2, length / 2),
                rng.uniform(-1, 1) * (depth / 2 - parcel_d),
            ),
            cfg,
        )


def _house(
    plan: Plan,
    frame: tuple[float, float, float],
    side: float,
    uc: float,
    size: tuple[float, float],
    front: float,
    street: float,
    cfg: SyntheticConfig,
) -> None:
    """One house (maybe L-shaped) with its driveway and maybe a car on it."""
    rng = plan.rng
    cx, cy, ang = frame
    w, d = size
    uj = uc + rng.uniform(-1.5, 1.5)
    vc = side * (front - d / 2)
    a = ang + rng.normal(0, 0.02)
    parts = [(*to_world(cx, cy, ang, uj, vc), w / 2, d / 2, a)]
    if rng.random() < 0.35:
        ww, wl = rng.uniform(4.5, 7.0), rng.uniform(5.0, 9.0)
        end = rng.choice([-1.0, 1.0]) * (w / 2 - ww / 2)
        parts.append(
            (
                *to_world(cx, cy, ang, uj + end, vc - side * (d / 2 + wl / 2 - 0.5)),
                wl / 2 + 0.5,
                ww / 2,
                a + np.pi / 2,
            )
        )
    storeys = 2 if rng.random() < 0.35 else 1
    eave = rng.uniform(2.7, 3.4) + 2.9 * (storeys - 1)
    kind = int(rng.choice([GABLE, HIP, FLAT], p=[0.45, 0.45, 0.1]))
    rise = 0.0 if kind == FLAT else d / 2 * np.tan(np.radians(rng.uniform(20, 35)))
    roof = ROOFS[rng.integers(len(ROOFS))]
    if not add_building(plan, parts, eave, rise, kind, roof, WALLS[rng.integers(len(WALLS))]):
        return
    du = uj + rng.choice([-1.0, 1.0]) * (w / 2 - 2.8)
    drive = street - front + 3.5  # from the house front across the sidewalk to the kerb
    mid = side * (front + drive / 2)
    plan.add("patches", *to_world(cx, cy, ang, du, mid), 2.6, drive / 2, ang, CONCRETE)
    _car(plan, *to_world(cx, cy, ang, du, side * (front + 3.0)), ang + np.pi / 2, 0.45, cfg)
