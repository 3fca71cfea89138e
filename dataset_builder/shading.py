"""Shading the ray caster's frame (numpy only): lights, shadows, materials, reflections, gamma.

Surfaces are shaded by a key light with shadow rays (each sub-pixel samples another point of the key
light, so shadows get soft edges once sub-pixels are averaged), a fill light, a rim light and a sky-like
ambient term with contact darkening near objects. Rubber is diffuse with a faint sheen; metal is mostly
mirror: a reflection ray per sub-pixel (one bounce, shadowed) tinted by the object's colour with a Fresnel
rise at grazing angles, plus a tight specular highlight. Reflections that miss every object see a studio:
a dark ceiling brightening towards the horizon and the lights as softboxes.

Reproducibility as in :mod:`~modality_conflict.dataset_builder.raycast`: only exactly rounded
operations touch per-pixel data. Gamma is applied through a lookup table and colours are converted once,
with scalar maths at import. The lighting constants below change the bytes of the set: they are part of
the builder version.
"""

from __future__ import annotations

import numpy as np

from modality_conflict.dataset_builder.attribute_constants import COLOR_RGB
from modality_conflict.dataset_builder.camera import RayGrid, cross, unit
from modality_conflict.dataset_builder.raycast import (
    _INF,
    _OFFSET,
    Frame,
    _blocked_parallel,
    _normals,
    _Rays,
    _trace,
)
from modality_conflict.dataset_builder.scene import Scene, SceneObject

#: Directions towards the lights (normalised where used).
_KEY_DIR = (-0.1, -0.7, 1.1)
_FILL_DIR = (0.76, 0.39, 0.5)
_RIM_DIR = (-0.74, 0.67, 0.9)
#: Offsets of the key-light samples (an area light about 8 degrees wide), one per sub-pixel position.
_KEY_SPREAD = 0.07

_KEY = 1.05
_FILL = 0.22
_RIM = 0.18
_AMBIENT = 0.26
_GROUND_ALBEDO = 0.46
#: Contact darkening of the ambient term near an object's footprint.
_CONTACT = 0.45
_CONTACT_REACH = 4.0
#: Ground beyond this distance from the centre darkens slowly, like a studio backdrop.
_BACKDROP = 14.0

_RUBBER_SHEEN = 0.06
_METAL_DIFFUSE = 0.05
_METAL_BASE = 0.7
_METAL_SPECULAR = 2.2
_METAL_SHEEN = 0.35
#: Sky seen in reflections: horizon and zenith brightness, and the reflected light sources.
_SKY_HORIZON = 0.75
_SKY_ZENITH = 0.08
_SKY_DARK_SIDE = 0.35
_SOFTBOX_KEY = 3.0
_SOFTBOX_FILL = 1.4
#: Cosines of the softboxes' outer and inner edges (about 25 and 18 degrees from their centres).
_SOFTBOX_OUTER = 0.905
_SOFTBOX_INNER = 0.95

_EXPOSURE = 1.0
#: Sub-pixel rows shaded together (keeps temporaries in cache; does not change the result).
_BAND_ROWS = 32
#: Light a surface facing the key light receives (key + ambient + fill); colours are scaled so that such
#: a surface shows its RGB value.
_DISPLAY_WHITE = 1.25
_GAMMA_STEPS = 4096


def _key_samples(count: int) -> tuple[tuple[float, float, float], ...]:
    """``count`` unit directions spread over the key light, on a square grid around its centre."""
    key = unit(_KEY_DIR)
    u = unit(cross(key, (0.0, 0.0, 1.0)))
    w = cross(u, key)
    side = int(count**0.5)
    out = []
    for j in range(side):
        for i in range(side):
            a = _KEY_SPREAD * ((2 * i + 1) / side - 1.0) if side > 1 else 0.0
            b = _KEY_SPREAD * ((2 * j + 1) / side - 1.0) if side > 1 else 0.0
            out.append(
                unit(
                    (key[0] + a * u[0] + b * w[0], key[1] + a * u[1] + b * w[1], key[2] + a * u[2] + b * w[2])
                )
            )
    return tuple(out)


def _gamma_table() -> np.ndarray:
    # sRGB-like display gamma, as a table so no pixel goes through a transcendental function.
    steps = np.arange(_GAMMA_STEPS, dtype=np.float64) / (_GAMMA_STEPS - 1)
    return np.array([round(255.0 * float(v) ** (1.0 / 2.2)) for v in steps], dtype=np.uint8)


_GAMMA = _gamma_table()
#: CLEVR's RGB values read as display colours and turned into linear reflectance (scalar maths, once), so
#: that a colour's display value under full key light is its RGB.
_ALBEDO: dict[str, tuple[float, ...]] = {
    name: tuple((c / 255.0) ** 2.2 / _DISPLAY_WHITE for c in rgb) for name, rgb in COLOR_RGB.items()
}


# ---------------------------------------------------------------------------------------------------
# Shading
# ---------------------------------------------------------------------------------------------------


def _dot(ax: np.ndarray, ay: np.ndarray, az: np.ndarray, b: tuple[float, float, float]) -> np.ndarray:
    return ax * b[0] + ay * b[1] + az * b[2]


def _pow(x: np.ndarray, exponent: int) -> np.ndarray:
    """``x ** exponent`` for a power of two, by repeated squaring (exactly rounded steps)."""
    out = x
    e = 1
    while e < exponent:
        out = out * out
        e *= 2
    return out


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    s = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


class _Surface:
    """Per-ray surface data at hit points: position, normal, albedo and material."""

    GROUND, RUBBER, METAL, SKY = 0, 1, 2, 3

    def __init__(self, objects: tuple[SceneObject, ...], r: _Rays, t: np.ndarray, ids: np.ndarray) -> None:
        n = t.shape[0]
        finite = np.where(t < _INF, t, 0.0)
        self.x = r.ox + finite * r.dx
        self.y = r.oy + finite * r.dy
        self.z = r.oz + finite * r.dz
        self.nx, self.ny, self.nz = np.zeros(n), np.zeros(n), np.ones(n)
        self.ar = np.full(n, _GROUND_ALBEDO)
        self.ag = np.full(n, _GROUND_ALBEDO)
        self.ab = np.full(n, _GROUND_ALBEDO)
        self.kind = np.where(t < _INF, self.GROUND, self.SKY).astype(np.int8)
        self.kind[ids >= 0] = self.RUBBER
        # Rays grouped by the object they hit, in one pass over the ids.
        order = np.argsort(ids, kind="stable")
        ends = np.searchsorted(ids[order], np.arange(len(objects) + 1), side="left")
        for i, o in enumerate(objects):
            idx = order[ends[i] : ends[i + 1]]
            if idx.size == 0:
                continue
            nx, ny, nz = _normals(o, self.x[idx], self.y[idx], self.z[idx])
            self.nx[idx], self.ny[idx], self.nz[idx] = nx, ny, nz
            red, green, blue = _ALBEDO[o.color]
            self.ar[idx], self.ag[idx], self.ab[idx] = red, green, blue
            if o.material == "metal":
                self.kind[idx] = self.METAL
        # Keep the ground's z exactly 0 so contact and shadow offsets behave the same everywhere.
        self.z = np.where(self.kind == self.GROUND, 0.0, self.z)

    def offset_origins(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            self.x[idx] + _OFFSET * self.nx[idx],
            self.y[idx] + _OFFSET * self.ny[idx],
            self.z[idx] + _OFFSET * self.nz[idx],
        )


def _key_directions(samples: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key-light direction of each ray, from its sub-pixel position among ``count``."""
    table = np.array(_key_samples(count), dtype=np.float64)
    return table[samples, 0], table[samples, 1], table[samples, 2]


def _contact(objects: tuple[SceneObject, ...], s: _Surface, grid: RayGrid, r0: int, r1: int) -> np.ndarray:
    """Contact darkening of the primary ground points of sub-pixel rows ``[r0, r1)`` (the surface
    ``s``): a sum of bumps around object footprints.

    Each object's term falls below 1/300 beyond ``_CONTACT_REACH`` radii, so only the ground points
    inside the screen box of that disc are visited.
    """
    out = np.zeros(s.x.shape[0])
    cols, rows = grid.cols, grid.rows
    for o in objects:
        reach = _CONTACT_REACH * o.radius
        box = grid.camera.box_on_screen(o.x, o.y, reach, 0.0)
        if box is None:
            continue
        c0, c1 = max(0, int(box[0] * cols) - 1), min(cols, int(box[2] * cols) + 2)
        b0, b1 = max(r0, int(box[1] * rows) - 1), min(r1, int(box[3] * rows) + 2)
        if c0 >= c1 or b0 >= b1:
            continue
        idx = (np.arange(b0 - r0, b1 - r0)[:, None] * cols + np.arange(c0, c1)[None, :]).ravel()
        idx = idx[s.kind[idx] == _Surface.GROUND]
        dx, dy = s.x[idx] - o.x, s.y[idx] - o.y
        r2 = o.radius * o.radius
        weight = r2 / (r2 + dx * dx + dy * dy)
        out[idx] = out[idx] + weight * weight
    return out


def _lighting(
    objects: tuple[SceneObject, ...],
    s: _Surface,
    idx: np.ndarray,
    samples: np.ndarray,
    count: int,
    contact: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Light arriving at surface points ``idx`` (diffuse, all lights) and the shadowed key cosine.

    ``samples`` gives each point's key-light sample among ``count`` (its sub-pixel position);
    ``contact``, indexed like the surface, darkens the ambient light of ground points near objects.
    """
    nx, ny, nz = s.nx[idx], s.ny[idx], s.nz[idx]
    lx, ly, lz = _key_directions(samples, count)
    key_cos = np.maximum(nx * lx + ny * ly + nz * lz, 0.0)
    lit = np.zeros(idx.shape[0])
    for k, direction in enumerate(_key_samples(count)):
        sel = np.flatnonzero((key_cos > 0.0) & (samples == k))
        if sel.size:
            ox, oy, oz = s.offset_origins(idx[sel])
            lit[sel] = np.where(_blocked_parallel(objects, ox, oy, oz, direction), 0.0, 1.0)
    key = _KEY * key_cos * lit
    fill = _FILL * np.maximum(_dot(nx, ny, nz, unit(_FILL_DIR)), 0.0)
    rim = _RIM * np.maximum(_dot(nx, ny, nz, unit(_RIM_DIR)), 0.0)
    ambient = _AMBIENT * (0.7 + 0.3 * nz)
    ground = np.flatnonzero(s.kind[idx] == _Surface.GROUND)
    if ground.size:
        gx, gy = s.x[idx[ground]], s.y[idx[ground]]
        if contact is not None:
            ambient[ground] = ambient[ground] * np.maximum(1.0 - _CONTACT * contact[idx[ground]], 0.0)
        fade = 1.0 / (1.0 + (gx * gx + gy * gy) / (_BACKDROP * _BACKDROP))
        key[ground] = key[ground] * fade
        fill[ground] = fill[ground] * fade
    return ambient + key + fill + rim, key_cos * lit


def _sky(dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Brightness of the surroundings seen along unit directions (reflections that miss everything)."""
    # A dark studio ceiling brightening towards the horizon, and the light sources as large softboxes.
    down = 1.0 - np.clip(dz, 0.0, 1.0)
    base = _SKY_ZENITH + (_SKY_HORIZON - _SKY_ZENITH) * down * down * down
    # Brighter on the key light's side of the studio, darker opposite it.
    key_h = unit((_KEY_DIR[0], _KEY_DIR[1], 0.0))
    side = np.clip(0.5 + 0.5 * (dx * key_h[0] + dy * key_h[1]), 0.0, 1.0)
    base = base * (_SKY_DARK_SIDE + (1.0 - _SKY_DARK_SIDE) * side)
    key = _smoothstep(_SOFTBOX_OUTER, _SOFTBOX_INNER, _dot(dx, dy, dz, unit(_KEY_DIR)))
    fill = _smoothstep(_SOFTBOX_OUTER, _SOFTBOX_INNER, _dot(dx, dy, dz, unit(_FILL_DIR)))
    return base + _SOFTBOX_KEY * key + _SOFTBOX_FILL * fill


def _reflections(
    objects: tuple[SceneObject, ...],
    s: _Surface,
    idx: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    vz: np.ndarray,
    samples: np.ndarray,
    count: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour seen in the mirror direction from surface points ``idx`` (one bounce, shadowed)."""
    nx, ny, nz = s.nx[idx], s.ny[idx], s.nz[idx]
    d = vx * nx + vy * ny + vz * nz
    rx, ry, rz = vx - 2.0 * d * nx, vy - 2.0 * d * ny, vz - 2.0 * d * nz
    norm = np.sqrt(rx * rx + ry * ry + rz * rz)
    rx, ry, rz = rx / norm, ry / norm, rz / norm
    ox, oy, oz = s.offset_origins(idx)
    rays = _Rays(ox, oy, oz, rx, ry, rz)
    t, ids = _trace(objects, rays)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(rz < 0.0, -oz / rz, _INF)
    ground = t_ground < t
    t = np.where(ground, t_ground, t)
    ids = np.where(ground, -1, ids).astype(np.int16)
    bounce = _Surface(objects, rays, t, ids)
    hit = np.flatnonzero(t < _INF)
    red = np.zeros(idx.shape[0])
    green = np.zeros(idx.shape[0])
    blue = np.zeros(idx.shape[0])
    if hit.size:
        light, _ = _lighting(objects, bounce, hit, samples[hit], count)
        red[hit] = bounce.ar[hit] * light
        green[hit] = bounce.ag[hit] * light
        blue[hit] = bounce.ab[hit] * light
    miss = np.flatnonzero(t == _INF)
    if miss.size:
        sky = _sky(rx[miss], ry[miss], rz[miss])
        red[miss], green[miss], blue[miss] = sky, sky, sky
    return red, green, blue


def _shade_band(
    objects: tuple[SceneObject, ...], frame: Frame, r0: int, r1: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear RGB of the sub-pixel rows ``[r0, r1)``."""
    grid = frame.grid
    ss, cols = grid.supersample, grid.cols
    band = slice(r0 * cols, r1 * cols)
    rays = _Rays(*grid.camera.position, grid.dx[band], grid.dy[band], grid.dz[band])
    s = _Surface(objects, rays, frame.t[band], frame.ids[band])
    n = (r1 - r0) * cols
    # Each sub-pixel position within a pixel samples its own point of the key light.
    row_pos = (np.arange(r0, r1) % ss)[:, None]
    col_pos = (np.arange(cols) % ss)[None, :]
    samples = (row_pos * ss + col_pos).ravel().astype(np.int64)
    count = ss * ss
    red, green, blue = np.zeros(n), np.zeros(n), np.zeros(n)

    surf = np.flatnonzero(s.kind != _Surface.SKY)
    lx, ly, lz = _key_directions(samples[surf], count)
    contact = _contact(objects, s, grid, r0, r1)
    light, key_lit = _lighting(objects, s, surf, samples[surf], count, contact)
    kind = s.kind[surf]
    vx, vy, vz = rays.dx[surf], rays.dy[surf], rays.dz[surf]
    # Blinn half vector between the key light and the viewer.
    hx, hy, hz = lx - vx, ly - vy, lz - vz
    hn = np.sqrt(hx * hx + hy * hy + hz * hz)
    n_dot_h = np.maximum((s.nx[surf] * hx + s.ny[surf] * hy + s.nz[surf] * hz) / hn, 0.0)
    ar, ag, ab = s.ar[surf], s.ag[surf], s.ab[surf]

    matte = np.flatnonzero(kind != _Surface.METAL)
    sheen = np.where(
        kind[matte] == _Surface.RUBBER, _RUBBER_SHEEN * key_lit[matte] * _pow(n_dot_h[matte], 16), 0.0
    )
    red[surf[matte]] = ar[matte] * light[matte] + sheen
    green[surf[matte]] = ag[matte] * light[matte] + sheen
    blue[surf[matte]] = ab[matte] * light[matte] + sheen

    metal = np.flatnonzero(kind == _Surface.METAL)
    if metal.size:
        m = surf[metal]
        rr, rg, rb = _reflections(objects, s, m, vx[metal], vy[metal], vz[metal], samples[m], count)
        cos_v = np.clip(-(vx[metal] * s.nx[m] + vy[metal] * s.ny[m] + vz[metal] * s.nz[m]), 0.0, 1.0)
        grazing = 1.0 - cos_v
        schlick = grazing * grazing
        schlick = schlick * schlick * grazing
        lobe = _pow(n_dot_h[metal], 32)
        spec = key_lit[metal] * (_METAL_SPECULAR * _pow(lobe, 8) + _METAL_SHEEN * lobe)
        for out, albedo, refl in ((red, ar, rr), (green, ag, rg), (blue, ab, rb)):
            base = albedo[metal]
            f0 = _METAL_BASE * base + (1.0 - _METAL_BASE) * base * base
            fresnel = f0 + (1.0 - f0) * schlick
            out[m] = _METAL_DIFFUSE * base * light[metal] + fresnel * refl + spec

    sky = np.flatnonzero(s.kind == _Surface.SKY)
    if sky.size:
        value = _sky(rays.dx[sky], rays.dy[sky], rays.dz[sky])
        red[sky], green[sky], blue[sky] = value, value, value
    return red, green, blue


def shade(scene: Scene, frame: Frame) -> np.ndarray:
    """Shade a primary pass into an ``(height, width, 3)`` uint8 image.

    The image is shaded in bands of sub-pixel rows so that every temporary array stays small (a band's
    result does not depend on the banding: every operation is per ray).

    ``frame``: Output of :func:`~modality_conflict.dataset_builder.raycast.primary_pass` for ``scene``.
    """
    grid = frame.grid
    ss, cols, rows = grid.supersample, grid.cols, grid.rows
    image = np.zeros((rows, cols, 3))
    step = max(ss, _BAND_ROWS - _BAND_ROWS % ss)
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        red, green, blue = _shade_band(scene.objects, frame, r0, r1)
        image[r0:r1, :, 0] = red.reshape(r1 - r0, cols)
        image[r0:r1, :, 1] = green.reshape(r1 - r0, cols)
        image[r0:r1, :, 2] = blue.reshape(r1 - r0, cols)
    if ss > 1:
        # Box filter over the sub-pixels, summed in a fixed order.
        acc = np.zeros((grid.height, grid.width, 3))
        for j in range(ss):
            for i in range(ss):
                acc = acc + image[j::ss, i::ss]
        image = acc / float(ss * ss)
    scaled = np.clip(image * _EXPOSURE, 0.0, 1.0) * (_GAMMA_STEPS - 1) + 0.5
    return _GAMMA[scaled.astype(np.int64)]
