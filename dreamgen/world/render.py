"""Supersampled numpy rasteriser: a few filled primitives on a float canvas, area-averaged down.

World coordinates are table units with y pointing down (image convention); the camera sees
a VIEW x VIEW square whose top-left corner is `origin`. Everything is drawn at
image_size * supersample pixels and averaged down, which gives smooth edges cheaply.
"""
from __future__ import annotations

import numpy as np

VIEW = 100.0  # world units across the image


class Canvas:
    """A (N, N, 3) float32 RGB buffer in [0, 1], N = size * supersample.

    Each primitive touches only its bounding box, so a frame of ~40 primitives costs ~1 ms.
    """

    def __init__(self, size: int, supersample: int, origin=(0.0, 0.0)):
        self.size, self.ss = int(size), int(supersample)
        n = self.size * self.ss
        self.n, self.scale = n, n / VIEW
        self.origin = np.asarray(origin, np.float64)
        centres = (np.arange(n) + 0.5) / self.scale
        self.xs = (centres + self.origin[0]).astype(np.float32)
        self.ys = (centres + self.origin[1]).astype(np.float32)
        self.px = np.zeros((n, n, 3), np.float32)

    # -- bookkeeping -------------------------------------------------------------------
    def _window(self, lo, hi):
        """Pixel slices and (1,w)/(h,1) coordinate grids covering world box [lo, hi]."""
        s, (ox, oy) = self.scale, self.origin
        i0, i1 = max(int((lo[0] - ox) * s), 0), min(int((hi[0] - ox) * s) + 2, self.n)
        j0, j1 = max(int((lo[1] - oy) * s), 0), min(int((hi[1] - oy) * s) + 2, self.n)
        if i0 >= i1 or j0 >= j1:
            return None
        return (slice(j0, j1), slice(i0, i1)), self.xs[None, i0:i1], self.ys[j0:j1, None]

    def _paint(self, sl, mask, rgb, alpha):
        region = self.px[sl]
        rgb = np.asarray(rgb, np.float32)
        if alpha >= 1.0:
            region[mask] = rgb
        else:
            region[mask] += (rgb - region[mask]) * np.float32(alpha)

    # -- primitives --------------------------------------------------------------------
    def circle(self, c, r, rgb, alpha=1.0):
        w = self._window((c[0] - r, c[1] - r), (c[0] + r, c[1] + r))
        if w:
            sl, x, y = w
            self._paint(sl, (x - c[0]) ** 2 + (y - c[1]) ** 2 <= r * r, rgb, alpha)

    def ring(self, c, r_in, r_out, rgb, alpha=1.0):
        w = self._window((c[0] - r_out, c[1] - r_out), (c[0] + r_out, c[1] + r_out))
        if w:
            sl, x, y = w
            d2 = (x - c[0]) ** 2 + (y - c[1]) ** 2
            self._paint(sl, (d2 <= r_out * r_out) & (d2 >= r_in * r_in), rgb, alpha)

    def capsule(self, a, b, r, rgb, alpha=1.0):
        """A thick segment with round ends (arm links, fingers)."""
        lo, hi = np.minimum(a, b) - r, np.maximum(a, b) + r
        w = self._window(lo, hi)
        if w:
            sl, x, y = w
            dx, dy = b[0] - a[0], b[1] - a[1]
            t = np.clip(((x - a[0]) * dx + (y - a[1]) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
            self._paint(sl, (x - a[0] - t * dx) ** 2 + (y - a[1] - t * dy) ** 2 <= r * r, rgb, alpha)

    def poly(self, pts, rgb, alpha=1.0):
        """A convex polygon, pts (K, 2) in either winding."""
        pts = np.asarray(pts, np.float64)
        w = self._window(pts.min(0), pts.max(0))
        if not w:
            return
        sl, x, y = w
        area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
        sign = 1.0 if area >= 0 else -1.0
        mask = np.ones((y.shape[0], x.shape[1]), bool)
        for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, axis=0)):
            mask &= sign * ((bx - ax) * (y - ay) - (by - ay) * (x - ax)) >= 0
        self._paint(sl, mask, rgb, alpha)

    def box(self, c, hw, hh, angle, rgb, alpha=1.0):
        self.poly(box_corners(c, hw, hh, angle), rgb, alpha)

    def field(self, lo, hi, grid, rgb):
        """Blend rgb with a per-cell alpha grid (gh, gw) bilinearly stretched over [lo, hi]."""
        w = self._window(lo, hi)
        if not w:
            return
        sl, x, y = w
        gh, gw = grid.shape
        fx = np.clip((x[0] - lo[0]) / (hi[0] - lo[0]) * gw - 0.5, 0, gw - 1)
        fy = np.clip((y[:, 0] - lo[1]) / (hi[1] - lo[1]) * gh - 0.5, 0, gh - 1)
        inside = ((x[0] >= lo[0]) & (x[0] <= hi[0]))[None, :] & ((y[:, 0] >= lo[1]) & (y[:, 0] <= hi[1]))[:, None]
        a = _interp_matrix(fy, gh) @ grid.astype(np.float32) @ _interp_matrix(fx, gw).T
        a = (a * inside)[..., None]
        region = self.px[sl]
        region += (np.asarray(rgb, np.float32) - region) * a

    def image(self, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
        """Area-average down to (size, size, 3) uint8, applying the lighting tint."""
        s, k = self.size, self.ss
        img = self.px.reshape(s, k, s, k, 3).mean(axis=(1, 3)) * np.asarray(tint, np.float32)
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def box_corners(c, hw, hh, angle):
    """(4, 2) corners of a rotated rectangle."""
    ca, sa = np.cos(angle), np.sin(angle)
    local = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    return local @ np.array([[ca, sa], [-sa, ca]]) + np.asarray(c, np.float64)


def ellipse_points(c, rx, ry, angle, k=14):
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    local = np.stack([rx * np.cos(t), ry * np.sin(t)], 1)
    ca, sa = np.cos(angle), np.sin(angle)
    return local @ np.array([[ca, sa], [-sa, ca]]) + np.asarray(c, np.float64)


def _interp_matrix(f, n):
    """(len(f), n) linear-interpolation weights for fractional indices f."""
    i0 = np.floor(f).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    t = (f - i0).astype(np.float32)
    m = np.zeros((len(f), n), np.float32)
    m[np.arange(len(f)), i0] += 1 - t
    m[np.arange(len(f)), i1] += t
    return m
