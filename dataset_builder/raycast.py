"""A small vectorised ray caster for CLEVR-style scenes (numpy only): what each sub-pixel sees.

One primary ray per sub-pixel (``SUPERSAMPLE`` x ``SUPERSAMPLE`` per pixel) is cast from a pinhole camera
against analytic spheres, vertical capped cylinders, boxes rotated about the vertical axis and the
ground plane (:func:`primary_pass`); the same intersections serve the shadow and reflection rays of
:mod:`~modality_conflict.dataset_builder.shading`.

Reproducibility: arrays are float64 and only exactly rounded operations (+, -, *, /, sqrt, comparisons,
min/max) touch per-pixel data; there are no reductions over pixels besides integer counts, no BLAS and
no transcendental functions, so the same scene gives the same bytes on any machine and in any process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modality_conflict.dataset_builder.camera import RayGrid, cross, unit
from modality_conflict.dataset_builder.scene import Scene, SceneObject

_INF = np.inf
#: Smallest accepted hit distance, and the offset of secondary ray origins along the normal.
_T_MIN = 1e-7
_OFFSET = 1e-4


@dataclass
class _Rays:
    """A bundle of rays, one component per array (origins may be scalars)."""

    ox: np.ndarray | float
    oy: np.ndarray | float
    oz: np.ndarray | float
    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray

    def take(self, idx: np.ndarray) -> _Rays:
        def pick(a: np.ndarray | float) -> np.ndarray | float:
            return a[idx] if isinstance(a, np.ndarray) else a

        return _Rays(pick(self.ox), pick(self.oy), pick(self.oz), self.dx[idx], self.dy[idx], self.dz[idx])


# ---------------------------------------------------------------------------------------------------
# Intersections: distance along each ray to the nearest hit beyond _T_MIN, inf for a miss
# ---------------------------------------------------------------------------------------------------


def _hit_sphere(o: SceneObject, r: _Rays) -> np.ndarray:
    rad = o.radius
    px, py, pz = r.ox - o.x, r.oy - o.y, r.oz - rad
    b = px * r.dx + py * r.dy + pz * r.dz
    c = px * px + py * py + pz * pz - rad * rad
    disc = b * b - c
    hit = disc >= 0.0
    s = np.sqrt(np.where(hit, disc, 0.0))
    t0, t1 = -b - s, -b + s
    t = np.where(t0 > _T_MIN, t0, np.where(t1 > _T_MIN, t1, _INF))
    return np.where(hit, t, _INF)


def _hit_cylinder(o: SceneObject, r: _Rays) -> np.ndarray:
    rad, top = o.radius, o.height
    px, py = r.ox - o.x, r.oy - o.y
    a = r.dx * r.dx + r.dy * r.dy
    b = px * r.dx + py * r.dy
    c = px * px + py * py - rad * rad
    disc = b * b - a * c
    ok = (disc >= 0.0) & (a > 1e-12)
    s = np.sqrt(np.where(ok, disc, 0.0))
    a_safe = np.where(ok, a, 1.0)
    t0, t1 = (-b - s) / a_safe, (-b + s) / a_safe
    z0, z1 = r.oz + t0 * r.dz, r.oz + t1 * r.dz
    side0 = ok & (t0 > _T_MIN) & (z0 >= 0.0) & (z0 <= top)
    side1 = ok & (t1 > _T_MIN) & (z1 >= 0.0) & (z1 <= top)
    t = np.where(side0, t0, np.where(side1, t1, _INF))
    moving = r.dz != 0.0
    dz_safe = np.where(moving, r.dz, 1.0)
    for plane in (top, 0.0):
        tc = (plane - r.oz) / dz_safe
        qx, qy = px + tc * r.dx, py + tc * r.dy
        cap = moving & (tc > _T_MIN) & (qx * qx + qy * qy <= rad * rad) & (tc < t)
        t = np.where(cap, tc, t)
    return t


def _box_frame(o: SceneObject, r: _Rays) -> tuple[np.ndarray, ...]:
    """Ray origins and directions in the cube's own frame (centre at the origin, axes aligned)."""
    c, s, h = o.cos_rot, o.sin_rot, o.half_side
    px, py, pz = r.ox - o.x, r.oy - o.y, r.oz - h
    return (
        c * px + s * py,
        c * py - s * px,
        pz + 0.0 * r.dz,
        c * r.dx + s * r.dy,
        c * r.dy - s * r.dx,
        r.dz,
    )


def _hit_box(o: SceneObject, r: _Rays) -> np.ndarray:
    h = o.half_side
    lx, ly, lz, ldx, ldy, ldz = _box_frame(o, r)
    tmin = np.full(ldx.shape, -_INF)
    tmax = np.full(ldx.shape, _INF)
    with np.errstate(divide="ignore", invalid="ignore"):
        for pos, d in ((lx, ldx), (ly, ldy), (lz, ldz)):
            inv = 1.0 / d
            ta, tb = (-h - pos) * inv, (h - pos) * inv
            # fmin/fmax skip the NaN of 0 * inf (a ray on a slab's boundary plane).
            tmin = np.fmax(tmin, np.fmin(ta, tb))
            tmax = np.fmin(tmax, np.fmax(ta, tb))
    hit = (tmax >= tmin) & (tmax > _T_MIN)
    t = np.where(tmin > _T_MIN, tmin, tmax)
    return np.where(hit, t, _INF)


_HIT = {"sphere": _hit_sphere, "cylinder": _hit_cylinder, "cube": _hit_box}


def _normals(o: SceneObject, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """Outward unit normals of ``o`` at surface points."""
    px, py = x - o.x, y - o.y
    if o.shape == "sphere":
        rad = o.radius
        return px / rad, py / rad, (z - rad) / rad
    if o.shape == "cylinder":
        ring = np.sqrt(px * px + py * py)
        on_side = np.abs(ring - o.radius) < np.minimum(np.abs(z - o.height), np.abs(z))
        safe = np.where(ring > 0.0, ring, 1.0)
        nz = np.where(z > 0.5 * o.height, 1.0, -1.0)
        return (
            np.where(on_side, px / safe, 0.0),
            np.where(on_side, py / safe, 0.0),
            np.where(on_side, 0.0, nz),
        )
    c, s, h = o.cos_rot, o.sin_rot, o.half_side
    lx, ly, lz = c * px + s * py, c * py - s * px, z - h
    ax, ay, az = np.abs(lx), np.abs(ly), np.abs(lz)
    on_x = (ax >= ay) & (ax >= az)
    on_y = ~on_x & (ay >= az)
    on_z = ~on_x & ~on_y
    nlx = np.where(on_x, np.sign(lx), 0.0)
    nly = np.where(on_y, np.sign(ly), 0.0)
    return c * nlx - s * nly, s * nlx + c * nly, np.where(on_z, np.sign(lz), 0.0)


def _bounding_sphere(o: SceneObject) -> tuple[float, float, float, float]:
    half = 0.5 * o.height
    return o.x, o.y, half, (o.radius * o.radius + half * half) ** 0.5


def _candidates(o: SceneObject, r: _Rays) -> np.ndarray:
    """Indices of the rays (unit directions) that pass through the object's bounding sphere."""
    cx, cy, cz, rad = _bounding_sphere(o)
    px, py, pz = cx - r.ox, cy - r.oy, cz - r.oz
    b = px * r.dx + py * r.dy + pz * r.dz
    q = px * px + py * py + pz * pz - b * b
    return np.flatnonzero((b > -rad) & (q <= rad * rad))


def _trace(objects: tuple[SceneObject, ...], r: _Rays) -> tuple[np.ndarray, np.ndarray]:
    """Nearest object hit of every ray: distance (inf: none) and object index (-1: none)."""
    n = r.dx.shape[0]
    best = np.full(n, _INF)
    ids = np.full(n, -1, dtype=np.int16)
    for i, o in enumerate(objects):
        idx = _candidates(o, r)
        if idx.size == 0:
            continue
        t = _HIT[o.shape](o, r.take(idx))
        closer = t < best[idx]
        best[idx[closer]] = t[closer]
        ids[idx[closer]] = i
    return best, ids


def _blocked_parallel(
    objects: tuple[SceneObject, ...],
    ox: np.ndarray,
    oy: np.ndarray,
    oz: np.ndarray,
    d: tuple[float, float, float],
) -> np.ndarray:
    """True for the rays from ``(ox, oy, oz)`` along the one unit direction ``d`` that hit an object.

    Rays are projected on the plane normal to ``d`` and sorted along one axis of it, so each object is
    tested only against the strip of rays that can reach its bounding sphere.
    """
    u = unit(cross(d, (0.0, 0.0, 1.0)) if abs(d[2]) < 0.9 else cross(d, (1.0, 0.0, 0.0)))
    w = cross(d, u)
    pu = ox * u[0] + oy * u[1] + oz * u[2]
    pw = ox * w[0] + oy * w[1] + oz * w[2]
    pd = ox * d[0] + oy * d[1] + oz * d[2]
    order = np.argsort(pu, kind="stable")
    sorted_u = pu[order]
    blocked = np.zeros(pu.shape[0], dtype=bool)
    for o in objects:
        cx, cy, cz, rad = _bounding_sphere(o)
        rad = rad * 1.001 + 1e-6
        cu = cx * u[0] + cy * u[1] + cz * u[2]
        cw = cx * w[0] + cy * w[1] + cz * w[2]
        cd = cx * d[0] + cy * d[1] + cz * d[2]
        lo, hi = np.searchsorted(sorted_u, (cu - rad, cu + rad), side="left")
        idx = order[lo:hi]
        du, dw = pu[idx] - cu, pw[idx] - cw
        idx = idx[(du * du + dw * dw <= rad * rad) & (pd[idx] < cd + rad) & ~blocked[idx]]
        if idx.size:
            k = idx.size
            rays = _Rays(ox[idx], oy[idx], oz[idx], np.full(k, d[0]), np.full(k, d[1]), np.full(k, d[2]))
            blocked[idx[_HIT[o.shape](o, rays) < _INF]] = True
    return blocked


# ---------------------------------------------------------------------------------------------------
# Primary pass
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """Geometry of one image at sub-pixel resolution, before shading.

    ``grid``: The primary rays (camera, image size, supersampling).
    ``t``: Distance to the nearest surface of each primary ray (row-major sub-pixel order).
    ``ids``: Index of the object hit (-1 ground, -2 nothing).
    ``alone``: Sub-pixel count of each object if it were alone in the scene (its unoccluded silhouette).
    ``visible``: Sub-pixel count of each object as seen.
    ``blockers``: For each object, the indices of the objects that hide part of it.
    ``bbox``: Per object, ``(x0, y0, x1, y1)`` of its projected bounding box in output pixels.
    """

    grid: RayGrid
    t: np.ndarray
    ids: np.ndarray
    alone: tuple[int, ...]
    visible: tuple[int, ...]
    blockers: tuple[tuple[int, ...], ...]
    bbox: tuple[tuple[float, float, float, float], ...]

    @property
    def width(self) -> int:
        """Output width in pixels."""
        return self.grid.width

    @property
    def height(self) -> int:
        """Output height in pixels."""
        return self.grid.height

    @property
    def supersample(self) -> int:
        """Sub-pixels per pixel along each axis."""
        return self.grid.supersample

    def visible_share(self, index: int) -> float:
        """Share of an object's silhouette left visible (1.0 for an object that is not occluded)."""
        return self.visible[index] / self.alone[index] if self.alone[index] else 0.0


def primary_pass(scene: Scene, grid: RayGrid) -> Frame:
    """Cast the primary rays of ``scene`` and measure what each object shows.

    ``scene``: Objects (the camera of ``grid`` must be the scene's).
    """
    camera, cols, rows = grid.camera, grid.cols, grid.rows
    rays = _Rays(*camera.position, grid.dx, grid.dy, grid.dz)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(rays.dz < 0.0, -rays.oz / rays.dz, _INF)
    best = t_ground.copy()
    ids = np.where(t_ground < _INF, -1, -2).astype(np.int16)
    hits: list[np.ndarray] = []
    boxes = []
    for i, o in enumerate(scene.objects):
        box = camera.box_on_screen(o.x, o.y, o.radius, o.height)
        if box is None:
            boxes.append((-1.0, -1.0, -1.0, -1.0))
            hits.append(np.zeros(0, dtype=np.int64))
            continue
        boxes.append((box[0] * grid.width, box[1] * grid.height, box[2] * grid.width, box[3] * grid.height))
        c0, c1 = max(0, int(box[0] * cols) - 1), min(cols, int(box[2] * cols) + 2)
        r0, r1 = max(0, int(box[1] * rows) - 1), min(rows, int(box[3] * rows) + 2)
        if c0 >= c1 or r0 >= r1:
            hits.append(np.zeros(0, dtype=np.int64))
            continue
        idx = (np.arange(r0, r1)[:, None] * cols + np.arange(c0, c1)[None, :]).ravel()
        t = _HIT[o.shape](o, rays.take(idx))
        hits.append(idx[t < _INF])
        closer = t < best[idx]
        best[idx[closer]] = t[closer]
        ids[idx[closer]] = i
    visible = np.bincount(ids[ids >= 0].astype(np.int64), minlength=len(scene.objects))
    blockers = []
    for i, idx in enumerate(hits):
        seen = ids[idx]
        blockers.append(tuple(int(j) for j in np.unique(seen[(seen >= 0) & (seen != i)])))
    return Frame(
        grid=grid,
        t=best,
        ids=ids,
        alone=tuple(int(h.size) for h in hits),
        visible=tuple(int(v) for v in visible),
        blockers=tuple(blockers),
        bbox=tuple(boxes),
    )
