"""Environment looks: table colour and texture, surroundings, lighting tint, decor, camera shift.

Environment 0 is the plain teleoperation lab. Decor items are drawn only (no physics) and
sit in the table corners, outside the task area, so they distract without blocking.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .physics import TABLE_HI, TABLE_LO


@dataclass(frozen=True)
class EnvironmentLook:
    name: str
    table_rgb: tuple
    texture: str  # plain | wood | checker | speckle | cloth | marble | stripes
    background_rgb: tuple
    tint: tuple  # multiplies the final image (lighting colour and brightness)
    n_decor: int
    camera_shift: tuple  # world units the view is moved by


ENVIRONMENTS: tuple[EnvironmentLook, ...] = (
    EnvironmentLook("lab", (0.78, 0.78, 0.76), "plain", (0.30, 0.31, 0.33), (1.0, 1.0, 1.0), 0, (0.0, 0.0)),
    EnvironmentLook("kitchen_wood", (0.66, 0.48, 0.30), "wood", (0.90, 0.88, 0.80), (1.05, 1.0, 0.90), 3, (1.5, -1.0)),
    EnvironmentLook("office_grey", (0.55, 0.57, 0.60), "speckle", (0.20, 0.24, 0.35), (0.95, 0.98, 1.06), 2, (-2.0, 1.0)),
    EnvironmentLook("green_cloth", (0.22, 0.45, 0.30), "cloth", (0.42, 0.30, 0.22), (1.0, 1.0, 1.0), 3, (1.0, 2.0)),
    EnvironmentLook("checker_cafe", (0.88, 0.86, 0.80), "checker", (0.55, 0.20, 0.18), (1.04, 0.98, 0.92), 4, (-1.5, -2.0)),
    EnvironmentLook("marble", (0.90, 0.90, 0.92), "marble", (0.15, 0.15, 0.17), (0.92, 0.94, 1.0), 2, (2.5, 1.5)),
    EnvironmentLook("dim_workshop", (0.48, 0.40, 0.32), "stripes", (0.12, 0.11, 0.10), (0.80, 0.78, 0.72), 4, (-2.5, 0.5)),
    EnvironmentLook("blue_desk", (0.45, 0.58, 0.74), "plain", (0.85, 0.85, 0.88), (1.0, 1.02, 1.06), 3, (0.5, -2.5)),
)
ENVIRONMENT_NAMES: tuple[str, ...] = tuple(e.name for e in ENVIRONMENTS)

_DECOR_RGB = [(0.92, 0.92, 0.90), (0.20, 0.20, 0.22), (0.30, 0.55, 0.25), (0.70, 0.30, 0.25), (0.85, 0.75, 0.50)]


def texture(kind: str, xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness multiplier (H, W) for a table texture over pixel-centre world coords."""
    x, y = xs[None, :], ys[:, None]
    ph = rng.uniform(0, 2 * np.pi)
    if kind == "wood":
        return 1 + 0.10 * np.sin(y * 0.9 + 2.0 * np.sin(x * 0.07 + ph)) + 0.04 * np.sin(y * 3.1)
    if kind == "checker":
        return 1 - 0.18 * ((np.floor(x / 11) + np.floor(y / 11)) % 2)
    if kind == "speckle":
        return 1 + 0.08 * rng.standard_normal((len(ys), len(xs)))
    if kind == "cloth":
        return 1 - 0.10 * ((np.abs(np.sin(x * 1.2)) < 0.15) | (np.abs(np.sin(y * 1.2)) < 0.15))
    if kind == "marble":
        return 1 - 0.12 * np.abs(np.sin(0.15 * x + 0.1 * y + 3 * np.sin(0.08 * y + ph)))
    if kind == "stripes":
        return 1 - 0.08 * (np.floor(x / 6) % 2)
    return np.ones((len(ys), len(xs)))


def paint_background(canvas, look: EnvironmentLook, rng: np.random.Generator) -> None:
    """Surroundings, textured table with a rim shadow, and corner decor onto canvas."""
    canvas.px[:] = look.background_rgb
    inside = ((canvas.xs >= TABLE_LO) & (canvas.xs <= TABLE_HI))
    rows, cols = np.nonzero(((canvas.ys >= TABLE_LO) & (canvas.ys <= TABLE_HI))[:, None] & inside[None, :])
    tex = np.broadcast_to(texture(look.texture, canvas.xs, canvas.ys, rng), canvas.px.shape[:2])
    canvas.px[rows, cols] = np.clip(np.asarray(look.table_rgb) * tex[rows, cols, None], 0, 1)
    edge = 0.7 * np.asarray(look.table_rgb)
    for a, b in [((TABLE_LO, TABLE_LO), (TABLE_HI, TABLE_LO)), ((TABLE_HI, TABLE_LO), (TABLE_HI, TABLE_HI)),
                 ((TABLE_HI, TABLE_HI), (TABLE_LO, TABLE_HI)), ((TABLE_LO, TABLE_HI), (TABLE_LO, TABLE_LO))]:
        canvas.capsule(a, b, 0.8, edge)
    corners = [(13.0, 13.0), (87.0, 13.0), (87.0, 87.0), (13.0, 87.0)]
    for k in rng.permutation(4)[: look.n_decor]:
        p = np.asarray(corners[k]) + rng.uniform(-2.5, 2.5, 2)
        rgb = _DECOR_RGB[int(rng.integers(len(_DECOR_RGB)))]
        kind = int(rng.integers(4))
        if kind == 0:  # mug
            canvas.circle(p + 0.8, 5.0, (0, 0, 0), alpha=0.25)
            canvas.circle(p, 5.0, rgb)
            canvas.circle(p, 3.8, tuple(0.55 * np.asarray(rgb)))
        elif kind == 1:  # book
            canvas.box(p + 0.8, 6.0, 4.5, rng.uniform(-0.5, 0.5), (0, 0, 0), alpha=0.25)
            canvas.box(p, 6.0, 4.5, rng.uniform(-0.5, 0.5), rgb)
        elif kind == 2:  # plant
            for _ in range(5):
                canvas.circle(p + rng.uniform(-3, 3, 2), 3.0, (0.18 + rng.uniform(0, 0.1), 0.5, 0.2))
        else:  # pen
            d = rng.uniform(-1, 1, 2)
            d = 6.0 * d / max(np.hypot(*d), 1e-6)
            canvas.capsule(p - d, p + d, 1.0, rgb)
