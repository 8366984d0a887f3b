"""Drawing the scene contents (zones, drawer, buttons, stain, objects) with render.Canvas.

Top-down depth cues: every object casts a small shadow; a lifted or stacked object is drawn
larger with a longer shadow, so stacking and carrying read clearly at 64x64.
"""
from __future__ import annotations

import numpy as np

from .physics import TABLE_LO, Obj, World

_SHADOW = (0.0, 0.0, 0.0)
_CABINET = (0.50, 0.42, 0.34)


def _shade(rgb, k):
    return tuple(np.clip(np.asarray(rgb) * k, 0, 1))


def draw_static(canvas, world: World) -> None:
    """Things that never move (baked into the per-episode background): zones, button plates."""
    for z in world.zones:
        p, h = z.pos, z.half
        if z.kind == "bowl":
            canvas.circle(p + 1.0, h, _SHADOW, alpha=0.2)
            canvas.circle(p, h, z.rgb)
            canvas.circle(p, h - 2.2, _shade(z.rgb, 0.7))
        elif z.kind == "mat":
            canvas.box(p, h, h, 0.0, z.rgb, alpha=0.75)
        else:  # square target / tray: a tinted patch with a rim
            canvas.box(p, h, h, 0.0, z.rgb, alpha=0.3)
            corners = [p + (-h, -h), p + (h, -h), p + (h, h), p + (-h, h)]
            for a, b in zip(corners, corners[1:] + corners[:1]):
                canvas.capsule(a, b, 1.0 if z.kind == "square" else 1.6, _shade(z.rgb, 0.8))
    for b in world.buttons:
        canvas.box(b.pos + 0.8, 6.0, 6.0, 0.0, _SHADOW, alpha=0.25)
        canvas.box(b.pos, 6.0, 6.0, 0.0, (0.35, 0.35, 0.38))


def draw_dynamic(canvas, world: World) -> None:
    """Stain, drawer, buttons and table-level objects (everything below the embodiment)."""
    s = world.stain
    if s is not None:
        canvas.field(s.pos - s.half, s.pos + s.half, s.grid, s.rgb)
    d = world.drawer
    if d is not None:
        p, (hw, hh) = np.array(d.body.position), d.half
        canvas.box(p, hw, hh, 0.0, _shade(d.rgb, 0.8))
        canvas.box(p, hw - 2.0, hh - 2.0, 0.0, _shade(d.rgb, 0.45))  # the tray inside
        top = d.closed_y + hh
        canvas.box(((p[0]), (TABLE_LO + top) / 2), hw + 2.0, (top - TABLE_LO) / 2 + 0.5, 0.0, _CABINET)
        canvas.box((p[0], p[1] + hh - 1.0), hw, 1.2, 0.0, d.rgb)  # the front panel, always visible
        canvas.capsule(d.handle - (4.0, 0.0), d.handle + (4.0, 0.0), 1.3, (0.15, 0.15, 0.15))
    for b in world.buttons:
        canvas.circle(b.pos, 4.2, _shade(b.rgb, 0.55) if b.pressed else b.rgb)
        if b.pressed:
            canvas.ring(b.pos, 4.2, 5.6, (1.0, 1.0, 0.75))
        else:
            canvas.circle(b.pos - 1.0, 1.6, _shade(b.rgb, 1.4), alpha=0.6)
    for o in world.objects:
        if o.support is None and o is not world.held:
            draw_object(canvas, o, lift=0)
    for o in world.objects:
        if o.support is not None and o is not world.held:
            draw_object(canvas, o, lift=1)


def draw_object(canvas, o: Obj, lift: int) -> None:
    """lift 0: on the table; 1: stacked; 2: carried."""
    k, sh = [(1.0, 1.0), (1.12, 2.5), (1.15, 4.0)][lift]
    p, (hw, hh) = o.pos, o.half
    for centre, rgb, alpha in ((p + (sh, sh * 1.2), _SHADOW, 0.3), (p, o.rgb, 1.0)):
        if o.kind in ("disc", "crumb"):
            canvas.circle(centre, hw * k, rgb, alpha)
        else:
            canvas.box(centre, hw * k, hh * k, o.angle, rgb, alpha)
    if o.kind != "crumb":  # a highlight so shapes read as solid
        if o.kind == "disc":
            canvas.circle(p - 1.2 * k, hw * 0.45 * k, _shade(o.rgb, 1.35), 0.6)
        else:
            canvas.box(p, hw * 0.6 * k, hh * 0.6 * k, o.angle, _shade(o.rgb, 1.25), 0.5)
