"""Renders one tile of the independent aerial photograph from the vector scene, in row blocks.

Own camera per tile (nadir at the tile centre, misregistration, exposure), cast shadows, blur, noise.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from croco_pipeline.synthetic import tall
from croco_pipeline.synthetic.config import SyntheticConfig
from croco_pipeline.synthetic.draw import PhotoContext, cars, ground, markings
from croco_pipeline.synthetic.raster import Grid, upsample
from croco_pipeline.synthetic.scene import Scene, buildings, canopy
from croco_pipeline.synthetic.scene import cars as car_heights

SHADOW_PAD = 60.0  # metres of scene around a tile that can cast shadows or lean into it
AMBIENT = np.array([0.36, 0.39, 0.47], dtype=np.float32).reshape(3, 1, 1)  # bluish skylight
DIRECT = np.array([0.68, 0.64, 0.56], dtype=np.float32).reshape(3, 1, 1)  # warm sunlight
LUT_SIZE = 4096
BLOCK_PIXELS = 3_000_000  # photo pixels per row block: bounds the memory of a 0.05 m tile


def sun_vector(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector towards the sun: (east, north, up); azimuth clockwise from north."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])


def cast_shadows(surface: np.ndarray, gsd: float, sun: np.ndarray) -> np.ndarray:
    """True where a height field (rows north first) is shadowed by higher ground towards the sun.

    One pass per row: the horizon G(p) = max over steps of S(p + step) - distance * tan(elevation)
    obeys G(p) = max(S, G)(p + step) - step * tan(elevation), so rows are swept away from the sun.
    """
    dr, dc = -sun[1], sun[0]  # towards the sun in (row, col) units
    s = surface
    transposed = abs(dc) > abs(dr)
    if transposed:
        s, dr, dc = s.T, dc, dr
    flipped = dr < 0
    if flipped:
        s, dr = s[::-1], -dr
    norm = np.hypot(dr, dc)
    if dr / norm < 1e-6:
        return np.zeros(surface.shape, dtype=bool)
    offset = dc / dr  # columns moved per row towards the sun
    drop = gsd * np.hypot(1.0, offset) * sun[2] / max(np.hypot(sun[0], sun[1]), 1e-9)
    cols = np.arange(s.shape[1], dtype=np.float64)
    horizon = np.full(s.shape, -np.inf, dtype=np.float32)
    carry = s[-1].astype(np.float64) - drop
    for r in range(s.shape[0] - 2, -1, -1):
        horizon[r] = np.interp(cols + offset, cols, carry, left=-np.inf, right=-np.inf)
        carry = np.maximum(s[r], horizon[r]) - drop
    shade = horizon > s + 0.05
    if flipped:
        shade = shade[::-1]
    return shade.T if transposed else shade


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Optics and demosaicing blur; a 3-tap binomial-like kernel when small (a Gaussian is 5x slower)."""
    if sigma <= 0:
        return img
    if sigma > 0.8:
        return gaussian_filter(img, (0, sigma, sigma))
    side = np.float32(np.exp(-1.0 / (2 * sigma * sigma)))
    side = side / (1 + 2 * side)
    for axis in (1, 2):
        head = [slice(None)] * 3
        tail = [slice(None)] * 3
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        out = img * (1 - 2 * side)
        out[tuple(head)] += side * img[tuple(tail)]
        out[tuple(tail)] += side * img[tuple(head)]
        img = out
    return img


def _context(
    scene: Scene, cfg: SyntheticConfig, view: Grid, rng: np.random.Generator
) -> PhotoContext:
    """Shadow map and texture fields around the tile seen through ``view`` (scene coordinates)."""
    left, bottom, right, top = view.bounds
    lit_grid = Grid(
        left - SHADOW_PAD,
        top + SHADOW_PAD,
        0.5,
        int(round((top - bottom + 2 * SHADOW_PAD) / 0.5)),
        int(round((right - left + 2 * SHADOW_PAD) / 0.5)),
    )
    surface = np.maximum(buildings(scene, lit_grid)[0], canopy(scene, lit_grid, photo=True))
    surface = np.maximum(surface, car_heights(scene, lit_grid, photo=True))
    sun = sun_vector(cfg.sun_azimuth_deg, cfg.sun_elevation_deg)
    lit = gaussian_filter((~cast_shadows(surface, 0.5, sun)).astype(np.float32), 0.6)  # penumbra
    coarse_grid = Grid(
        lit_grid.left, lit_grid.top, 4.0, lit_grid.rows // 8 + 2, lit_grid.cols // 8 + 2
    )
    coarse = gaussian_filter(
        rng.standard_normal((coarse_grid.rows, coarse_grid.cols)).astype(np.float32), 3.0
    )
    coarse = upsample(
        coarse / max(float(coarse.std()), 1e-6), coarse_grid, lit_grid.xs(), lit_grid.ys()
    )
    mid = gaussian_filter(
        rng.standard_normal((lit_grid.rows, lit_grid.cols)).astype(np.float32), 1.5
    )
    mid /= max(float(mid.std()), 1e-6)
    detail = None
    if cfg.rgb_gsd <= 0.1:
        detail = gaussian_filter(
            rng.standard_normal((1024, 1024)).astype(np.float32), 1.0, mode="wrap"
        )
        detail /= max(float(detail.std()), 1e-6)
    return PhotoContext(
        detail=detail,
        detail_gsd=2 * cfg.rgb_gsd,
        nadir=((left + right) / 2, (bottom + top) / 2),
        flight_height=cfg.flight_height_m,
        sun=sun,
        lit=lit,
        lit_grid=lit_grid,
        texture=(coarse + 0.6 * mid).astype(np.float32),
        mid=mid,
    )


def _camera(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Exposure per band (gain x white balance, in tone-curve codes) and the tone curve itself."""
    gain = rng.uniform(0.85, 1.15)
    balance = rng.uniform(0.93, 1.07, 3).reshape(3, 1, 1)
    gamma = rng.uniform(0.85, 1.15)
    haze = rng.uniform(0.0, 0.07)
    # gamma and haze as a lookup table on 12-bit codes: much cheaper than a power per pixel
    tone = (np.linspace(0.0, 1.0, LUT_SIZE) ** gamma * (1 - haze) + 0.8 * haze) * 255.0 + 0.5
    return gain * balance * (LUT_SIZE - 1), tone.astype(np.float32)


def render_photo(
    scene: Scene,
    cfg: SyntheticConfig,
    bounds: tuple[float, float, float, float],
    tile_key: tuple[int, int],
) -> np.ndarray:
    """The photo of one tile: uint8 (3, rows, cols) at ``cfg.rgb_gsd`` covering ``bounds`` exactly.

    ``tile_key`` (row, col) seeds everything specific to this photo, so tiles render independently.
    """
    rng = np.random.default_rng([cfg.seed, 2, *tile_key])
    left, bottom, right, top = bounds
    rows = int(round((top - bottom) / cfg.rgb_gsd))
    cols = int(round((right - left) / cfg.rgb_gsd))
    # the photo's georeferencing is off by 1-2 LiDAR pixels: it sees the scene shifted by (mx, my)
    shift = rng.uniform(cfg.misregistration_px_min, cfg.misregistration_px_max) * 0.5
    heading = rng.uniform(0, 2 * np.pi)
    view = Grid(
        left + shift * np.cos(heading), top + shift * np.sin(heading), cfg.rgb_gsd, rows, cols
    )
    ctx = _context(scene, cfg, view, rng)
    exposure, tone = _camera(rng)
    out = np.empty((3, rows, cols), dtype=np.uint8)
    block = max(16, BLOCK_PIXELS // cols)
    margin = int(np.ceil(3 * cfg.blur_px)) + 1
    for b0 in range(0, rows, block):
        b1 = min(rows, b0 + block)
        r0, r1 = max(0, b0 - margin), min(rows, b1 + margin)
        g = view.sub(r0, r1)
        brng = np.random.default_rng([cfg.seed, 3, *tile_key, b0])
        # one field of white noise: texture grain, and (shifted by c + 1 pixels) each band's sensor noise
        noise = brng.standard_normal((g.rows + 4, g.cols + 4), dtype=np.float32)
        grain = noise[: g.rows, : g.cols]
        img = ground(scene, g, ctx, grain)
        markings(scene, g, img)
        lit = upsample(ctx.lit, ctx.lit_grid, g.xs(), g.ys()).astype(np.float32)
        cars(scene, g, img)
        tall.buildings(scene, g, ctx, img, lit, grain)
        tall.trees(scene, g, ctx, img, lit, grain)
        # skylight + sunlight, exposure and white balance in one pass (all linear, so before blur)
        for c in range(3):
            img[c] *= (AMBIENT[c] * exposure[c]) + (DIRECT[c] * exposure[c]) * lit
        del lit
        img = _blur(img, cfg.blur_px)[:, b0 - r0 : b0 - r0 + (b1 - b0)]
        codes = np.clip(img, 0, LUT_SIZE - 1, out=img).astype(np.uint16)
        del img
        top = b0 - r0
        for c in range(3):
            sensor = (
                noise[top + c + 1 : top + c + 1 + (b1 - b0), c + 1 : c + 1 + g.cols]
                * cfg.sensor_noise_dn
            )
            out[c, b0:b1] = np.clip(tone[codes[c]] + sensor, 0, 255).astype(np.uint8)
    return out
