"""The pinhole camera of the scenes: frame, projection of points and the grid of primary rays.

Only exactly rounded operations are used (no trigonometry): the field of view is given by its
half-angle tangent, and the camera frame comes from cross products and square roots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modality_conflict.dataset_builder.attribute_constants import CAMERA_HALF_WIDTH_TAN, CAMERA_LOOK_AT

Vec3 = tuple[float, float, float]


def unit(v: Vec3) -> Vec3:
    """``v`` scaled to length 1."""
    n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) ** 0.5
    return (v[0] / n, v[1] / n, v[2] / n)


def cross(a: Vec3, b: Vec3) -> Vec3:
    """Cross product ``a x b``."""
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking at :data:`CAMERA_LOOK_AT` with a horizontal horizon.

    ``position``: Eye point.
    ``forward``, ``right``, ``up``: Orthonormal camera frame.
    ``half_width``, ``half_height``: Tangents of the half field of view, horizontally and vertically.
    """

    position: Vec3
    forward: Vec3
    right: Vec3
    up: Vec3
    half_width: float
    half_height: float

    @classmethod
    def looking_at_centre(cls, position: Vec3, width: int, height: int) -> Camera:
        """The scene camera at ``position`` for a ``width`` x ``height`` image."""
        p = position
        forward = unit((CAMERA_LOOK_AT[0] - p[0], CAMERA_LOOK_AT[1] - p[1], CAMERA_LOOK_AT[2] - p[2]))
        right = unit(cross(forward, (0.0, 0.0, 1.0)))
        up = cross(right, forward)
        return cls(p, forward, right, up, CAMERA_HALF_WIDTH_TAN, CAMERA_HALF_WIDTH_TAN * height / width)

    def project(self, x: float, y: float, z: float) -> tuple[float, float] | None:
        """Image coordinates in ``[0, 1]^2`` (left to right, top to bottom) of a point, or None
        when it lies behind the camera."""
        dx, dy, dz = x - self.position[0], y - self.position[1], z - self.position[2]
        depth = dx * self.forward[0] + dy * self.forward[1] + dz * self.forward[2]
        if depth <= 1e-9:
            return None
        u = (dx * self.right[0] + dy * self.right[1] + dz * self.right[2]) / depth / self.half_width
        v = (dx * self.up[0] + dy * self.up[1] + dz * self.up[2]) / depth / self.half_height
        return 0.5 * (u + 1.0), 0.5 * (1.0 - v)

    def box_on_screen(
        self, x: float, y: float, radius: float, height: float
    ) -> tuple[float, float, float, float] | None:
        """Screen bounding box ``(u0, v0, u1, v1)`` in ``[0, 1]`` units of an upright cylinder of
        ``radius`` and ``height`` standing at ``(x, y)`` (which bounds every object), or None when part
        of it is behind the camera."""
        us: list[float] = []
        vs: list[float] = []
        for sx in (-radius, radius):
            for sy in (-radius, radius):
                for z in (0.0, height):
                    p = self.project(x + sx, y + sy, z)
                    if p is None:
                        return None
                    us.append(p[0])
                    vs.append(p[1])
        return min(us), min(vs), max(us), max(vs)


@dataclass(frozen=True)
class RayGrid:
    """Primary rays of a camera, one per sub-pixel, in row-major order.

    ``width``, ``height``, ``supersample``: Output size in pixels and sub-pixels per pixel along each axis.
    ``dx``, ``dy``, ``dz``: Unit ray directions (the origin is the camera position).
    """

    camera: Camera
    width: int
    height: int
    supersample: int
    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray

    @property
    def cols(self) -> int:
        """Sub-pixel columns."""
        return self.width * self.supersample

    @property
    def rows(self) -> int:
        """Sub-pixel rows."""
        return self.height * self.supersample

    @classmethod
    def build(cls, camera: Camera, width: int, height: int, supersample: int) -> RayGrid:
        """Rays through the centres of the ``width * s`` x ``height * s`` sub-pixels."""
        cols, rows = width * supersample, height * supersample
        u = ((np.arange(cols, dtype=np.float64) + 0.5) / cols * 2.0 - 1.0) * camera.half_width
        v = (1.0 - (np.arange(rows, dtype=np.float64) + 0.5) / rows * 2.0) * camera.half_height
        f, rt, up = camera.forward, camera.right, camera.up
        # (f + v * up) per row plus u * right per column, added as an outer sum.
        dx = ((f[0] + v * up[0])[:, None] + (u * rt[0])[None, :]).ravel()
        dy = ((f[1] + v * up[1])[:, None] + (u * rt[1])[None, :]).ravel()
        dz = ((f[2] + v * up[2])[:, None] + (u * rt[2])[None, :]).ravel()
        inv = 1.0 / np.sqrt(dx * dx + dy * dy + dz * dz)
        return cls(camera, width, height, supersample, dx * inv, dy * inv, dz * inv)
