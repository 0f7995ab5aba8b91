"""Paints buildings (walls, shaded roofs) and tree crowns into a photo block, leaning off the nadir.

Each object writes both its albedo and its sunlight (sampled from the shadow map at its true place).
"""

from __future__ import annotations

import numpy as np

from croco_pipeline.synthetic.draw import PhotoContext
from croco_pipeline.synthetic.raster import (
    Grid,
    blend,
    convex_hull,
    coverage,
    rect_corners,
    rect_uv,
    sd_convex,
    sd_rect,
    touching,
    upsample,
)
from croco_pipeline.synthetic.scene import ABSENT, AUTUMN, FLAT, HIP, LEAFLESS, SMALLER, Scene


def _lit_at(
    ctx: PhotoContext, g: Grid, win: tuple[int, int, int, int], dx: float, dy: float
) -> np.ndarray:
    """Sunlight of the scene point seen (leaning by dx, dy) in the window's pixels."""
    r0, r1, c0, c1 = win
    return upsample(ctx.lit, ctx.lit_grid, g.xs(c0, c1) - dx, g.ys(r0, r1) - dy)


def _roof_shade(
    scene: Scene, part: int, u: np.ndarray, v: np.ndarray, sun: np.ndarray
) -> np.ndarray:
    """Direct light on the roof faces relative to flat ground (Lambert), from the face normals."""
    _, _, _, hl, hw, ang = scene.parts[part]
    b = scene.buildings[int(scene.parts[part, 0])]
    if int(b[2]) == FLAT or b[1] <= 0:
        return np.ones(np.broadcast(u, v).shape, dtype=np.float32)
    slope = b[1] / hw
    nu = np.zeros(np.broadcast(u, v).shape)
    nv = np.sign(v) * slope
    if int(b[2]) == HIP:
        end = (hl - np.abs(u)) < (hw - np.abs(v))  # the triangular hip faces
        nu = np.where(end, np.sign(u) * slope, 0.0)
        nv = np.where(end, 0.0, nv)
    c, s = np.cos(ang), np.sin(ang)
    nx, ny = nu * c - nv * s, nu * s + nv * c
    lam = (nx * sun[0] + ny * sun[1] + sun[2]) / np.sqrt(1 + slope**2)
    return np.clip(lam / sun[2], 0.1, 1.5).astype(np.float32)


def buildings(
    scene: Scene, g: Grid, ctx: PhotoContext, img: np.ndarray, lit: np.ndarray, grain: np.ndarray
) -> None:
    """Walls on the side leaning away from the nadir, then roofs on top, lowest building first."""
    parts = touching(scene.part_boxes, g.bounds, 12.0)
    if len(parts) == 0:
        return
    owners = scene.parts[parts, 0].astype(np.int64)
    tops = scene.buildings[owners, 0] + scene.buildings[owners, 1]
    sun_h = ctx.sun[:2] / max(np.hypot(*ctx.sun[:2]), 1e-9)
    for b in np.unique(owners[np.argsort(tops, kind="stable")]):
        eave, rise = scene.buildings[b, 0], scene.buildings[b, 1]
        cx, cy = scene.buildings[b, 9], scene.buildings[b, 10]
        mine = parts[owners == b]
        wx, wy = ctx.lean(cx, cy, eave)
        rx, ry = ctx.lean(cx, cy, eave + 0.6 * rise)
        lean = np.array([wx, wy]) / max(np.hypot(wx, wy), 1e-9)
        wall_light = np.clip(float(lean @ sun_h) * np.hypot(*ctx.sun[:2]) / ctx.sun[2], 0.05, 1.2)
        wall = scene.buildings[b, 6:9].reshape(3, 1, 1) / 255.0
        for p in mine:
            corners = rect_corners(*scene.parts[p, 1:6])
            hull = convex_hull(np.vstack([corners, corners + [wx, wy]]))
            win = g.window(*hull.min(0), *hull.max(0))
            if win is None:
                continue
            r0, r1, c0, c1 = win
            a = coverage(sd_convex(g.xs(c0, c1), g.ys(r0, r1), hull), g.gsd)
            blend(img, win, a, wall * 0.9)
            blend(lit[None], win, a, np.full((1, 1, 1), wall_light, dtype=np.float32))
        roof = scene.buildings[b, 3:6].reshape(3, 1, 1) / 255.0
        for p in mine:
            _, px, py, hl, hw, ang = scene.parts[p]
            corners = rect_corners(px + rx, py + ry, hl, hw, ang)
            win = g.window(*corners.min(0), *corners.max(0))
            if win is None:
                continue
            r0, r1, c0, c1 = win
            u, v = rect_uv(g.xs(c0, c1) - rx, g.ys(r0, r1) - ry, px, py, ang)
            sd = sd_rect(u, v, hl, hw)
            tex = 1.0 + 0.05 * grain[r0:r1, c0:c1]
            if int(scene.buildings[b, 2]) == FLAT:
                tex = tex * np.where(sd > -0.5, 0.82, 1.0)  # parapet
            elif g.gsd <= 0.12:
                tex = tex * (1.0 + 0.05 * np.sin(2 * np.pi * v / 0.33))  # shingle courses
            ridge = roof_height_rel(scene, p, u, v)
            blend(img, win, coverage(sd, g.gsd), roof * (tex * ridge)[None])
            shade = _roof_shade(scene, p, u, v, ctx.sun) * _lit_at(ctx, g, win, rx, ry)
            blend(lit[None], win, coverage(sd, g.gsd), shade)


def roof_height_rel(scene: Scene, part: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Slight weathering: roof edges a little darker than the ridge (runoff, dirt)."""
    hw = scene.parts[part, 4]
    return 0.94 + 0.06 * np.clip(1.0 - np.abs(v) / hw, 0.0, 1.0)


def trees(
    scene: Scene, g: Grid, ctx: PhotoContext, img: np.ndarray, lit: np.ndarray, grain: np.ndarray
) -> None:
    """Crowns with lumpy outlines, clumped texture and dome shading; the photo's seasonal look."""
    idx = touching(scene.tree_boxes, g.bounds, 10.0)
    for i in idx[np.argsort(scene.trees[idx, 3], kind="stable")]:
        x, y, r, h, tone, look = scene.trees[i]
        if look == ABSENT:
            continue
        if look == SMALLER:
            r, h = 0.65 * r, 0.8 * h
        dx, dy = ctx.lean(x, y, 0.8 * h)
        win = g.window(x + dx - 1.2 * r, y + dy - 1.2 * r, x + dx + 1.2 * r, y + dy + 1.2 * r)
        if win is None:
            continue
        r0, r1, c0, c1 = win
        ex, ey = g.xs(c0, c1) - x - dx, g.ys(r0, r1) - y - dy
        dist = np.hypot(ex, ey)
        # the medium field magnified around the trunk: foliage clumps of a few decimetres, which also
        # make the crown outline ragged instead of a disc
        xs, ys = g.xs(c0, c1) - x, g.ys(r0, r1) - y
        if g.gsd < 0.2:
            fine = upsample(ctx.mid, ctx.lit_grid, x + 3.0 * xs + 7.0 * tone, y + 3.0 * ys)
        else:  # a few photo pixels per clump: the grain alone is that fine
            fine = grain[r0:r1, c0:c1]
        mid = upsample(ctx.mid, ctx.lit_grid, x + 1.5 * xs, y + 1.5 * ys + 5.0 * tone)
        r_eff = r * (1.0 + 0.10 * mid + 0.05 * fine)
        alpha = coverage(dist - r_eff, g.gsd)
        rho = np.clip(dist / r_eff, 0.0, 1.0)
        lam = (
            ex / r_eff * ctx.sun[0] + ey / r_eff * ctx.sun[1] + np.sqrt(1 - rho**2) * ctx.sun[2]
        ) / ctx.sun[2]
        clumps = 0.16 * mid + 0.16 * fine + 0.10 * grain[r0:r1, c0:c1]
        if look == AUTUMN:
            base = np.array([0.40 + 0.08 * tone, 0.33, 0.17])
        elif look == LEAFLESS:
            base = np.array([0.40, 0.36, 0.31])
            alpha = alpha * np.clip(
                0.45 + 0.5 * grain[r0:r1, c0:c1], 0.0, 0.85
            )  # ground shows through
        else:
            base = np.array([0.18 + 0.07 * tone, 0.27 + 0.05 * tone, 0.13 + 0.02 * tone])
        colour = base.reshape(3, 1, 1) * (1.0 + clumps)[None]
        blend(img, win, alpha, colour)
        light = (
            _lit_at(ctx, g, win, dx, dy)
            * np.clip(0.3 + 0.7 * lam, 0.15, 1.3)
            * (1.0 + 0.5 * clumps)
        )
        blend(lit[None], win, alpha, light)
