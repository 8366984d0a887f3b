"""The ten behaviours: scene layout, success predicate and scripted (clean) expert for each.

Experts are generators over Cartesian commands (vx, vy, wz, grip), each in [-1, 1]
(grip > 0 closes). They re-read the world every step, so they are closed loop: a noisy
motion, a slipped grasp or a missed push is retried rather than failing the episode.
Noise is added outside (expert.py), so the same scripts serve every noise level.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .language import COLOURS, STAIN_COLOURS
from .physics import DT, PUSHER_R, VMAX, WMAX, Button, Stain, World, Zone

Command = np.ndarray  # (4,) float: vx, vy, wz, grip


@dataclass
class Task:
    """A behaviour instance: `slots` fill the instruction, `roles` name scene items for success/expert."""

    behaviour: str
    slots: dict
    roles: dict = field(default_factory=dict)


# -- shared expert skills --------------------------------------------------------------
def cmd(v=(0.0, 0.0), w=0.0, close=False) -> Command:
    return np.array([v[0], v[1], w, 1.0 if close else -1.0])


def toward(world: World, target, speed=1.0, gain=0.6) -> np.ndarray:
    """Normalised velocity covering `gain` of the way to target this step, capped at `speed`."""
    v = (np.asarray(target) - world.ee_pos) * gain / (VMAX * DT)
    n = float(np.hypot(*v))
    return v * (speed / n) if n > speed else v


def goto(world, target, close=False, tol=1.2, limit=30, speed=1.0) -> Iterator[Command]:
    for _ in range(limit):
        t = target() if callable(target) else target
        if np.hypot(*(t - world.ee_pos)) < tol:
            return
        yield cmd(toward(world, t, speed), close=close)


def hold(close, n) -> Iterator[Command]:
    for _ in range(n):
        yield cmd(close=close)


def grab(world, item, point: Callable[[], np.ndarray], tries=5) -> Iterator[Command]:
    """Hover over point(), close on it, and retry until `item` is held."""
    for _ in range(tries):
        if world.held is item:
            return
        yield from hold(False, 1 if world.opening > 0.9 else 2)
        yield from goto(world, point, close=False, tol=1.0)
        for _ in range(3):
            if world.held is item:
                return
            yield cmd(toward(world, point()), close=True)


def carry(world, obj, target, done, tries=4) -> Iterator[Command]:
    """Pick obj and put it down at target until done()."""
    for _ in range(tries):
        if done():
            return
        yield from grab(world, obj, lambda: obj.pos)
        yield from goto(world, target, close=True, tol=1.2)
        yield cmd(close=False)


def push(world, obj, goal, done, speed=0.5, tries=5) -> Iterator[Command]:
    """Push obj towards goal with the closed gripper until done(): approach from behind, then
    keep the pusher on the far side of obj along the line to goal (a simple closed-loop pusher)."""
    reach = obj.radius + PUSHER_R
    for _ in range(tries):
        if done():
            return
        d = _unit(goal - obj.pos)
        yield from goto(world, lambda: obj.pos - d * (reach + 3.0), close=False, tol=1.2)
        yield from hold(True, 2)
        for _ in range(40):
            if done():
                break
            to_goal = goal - obj.pos
            d = _unit(to_goal)
            rel = world.ee_pos - obj.pos
            if np.dot(rel, d) > -0.5 * reach or abs(_cross(d, rel)) > 0.7 * obj.radius + 1:
                break  # lost the object: lift and re-approach
            contact = obj.pos - d * (reach - 1.5)
            v = toward(world, contact, speed=1.0, gain=0.5) + d * min(speed, np.hypot(*to_goal) / (VMAX * DT))
            yield cmd(v, close=True)
        yield from hold(False, 1)


def retreat(world, home) -> Iterator[Command]:
    """After the task: open and drift back so the result is visible."""
    while True:
        yield cmd(toward(world, home, speed=0.4), close=False)


def _unit(v):
    return np.asarray(v) / max(float(np.hypot(*v)), 1e-9)


def _cross(a, b):
    return a[0] * b[1] - a[1] * b[0]


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


# -- layout helpers --------------------------------------------------------------------
def spots(rng, n, gap, lo=24.0, hi=76.0, avoid=(), tries=500) -> list[np.ndarray]:
    """n points in [lo, hi]^2 at least `gap` apart from each other and from `avoid`."""
    for _ in range(tries):
        pts = list(avoid)
        for _ in range(200):
            p = rng.uniform(lo, hi, 2)
            if all(np.hypot(*(p - q)) >= gap for q in pts):
                pts.append(p)
                if len(pts) == len(avoid) + n:
                    return pts[len(avoid):]
    raise RuntimeError("layout sampling failed")


def colours(rng, k) -> list[str]:
    return [str(c) for c in rng.choice(list(COLOURS), k, replace=False)]


def _cube(world, colour, pos, rng, kind="cube", half=(5.0, 5.0)):
    return world.add_object(kind, colour, COLOURS[colour], pos, half, rng.uniform(-0.4, 0.4))


# -- the behaviours --------------------------------------------------------------------
def _setup_pick_place(w, rng):
    c_obj, c_other, c_zone = colours(rng, 3)
    # Wide layout: pick-and-place is the robot's only lab task in the generalization experiments,
    # so its reaches must cover the workspace the other behaviours use.
    p_obj, p_other, p_zone = spots(rng, 3, 24.0, lo=16.0, hi=84.0)
    obj = _cube(w, c_obj, p_obj, rng)
    other = rng.choice(["cube", "disc"])
    w.add_object(other, c_other, COLOURS[c_other], p_other, (5.0, 5.0), 0.0)
    zone = Zone("bowl", c_zone, COLOURS[c_zone], p_zone, 10.0)
    w.zones.append(zone)
    return Task("pick_place", dict(obj=f"{c_obj} cube", zone=f"{c_zone} bowl"), dict(obj=obj, zone=zone))


def _success_pick_place(w, t):
    return w.held is None and t.roles["zone"].contains(t.roles["obj"].pos, margin=3.0)


def _expert_pick_place(w, t):
    obj, zone = t.roles["obj"], t.roles["zone"]
    yield from carry(w, obj, zone.pos, lambda: _success_pick_place(w, t))


def _setup_push(w, rng):
    c_obj, c_zone = colours(rng, 2)
    p_obj, p_zone = spots(rng, 2, 26.0, lo=28.0, hi=72.0)
    obj = _cube(w, c_obj, p_obj, rng, kind="disc")
    zone = Zone("square", c_zone, COLOURS[c_zone], p_zone, 8.0)
    w.zones.append(zone)
    return Task("push", dict(obj=f"{c_obj} puck", zone=f"{c_zone} square"), dict(obj=obj, zone=zone))


def _success_push(w, t):
    return w.held is None and t.roles["zone"].contains(t.roles["obj"].pos, margin=3.0)


def _expert_push(w, t):
    yield from push(w, t.roles["obj"], t.roles["zone"].pos, lambda: _success_push(w, t))


def _setup_drawer(w, rng, behaviour):
    (c,) = colours(rng, 1)
    drawer = w.add_drawer(c, COLOURS[c], rng.uniform(32.0, 68.0), 1.0 if behaviour == "close_drawer" else 0.0)
    return Task(behaviour, dict(colour=c), dict(drawer=drawer))


def _success_open(w, t):
    return w.held is None and t.roles["drawer"].extension >= 0.75


def _success_close(w, t):
    return w.held is None and t.roles["drawer"].extension <= 0.15


def _expert_drawer(w, t):
    drawer, opening = t.roles["drawer"], t.behaviour == "open_drawer"
    done = (lambda: _success_open(w, t)) if opening else (lambda: _success_close(w, t))
    goal_y = drawer.closed_y + (drawer.travel + 1.0 if opening else -1.0) + drawer.half[1] + 1.5
    for _ in range(4):
        if done():
            return
        yield from grab(w, drawer, lambda: drawer.handle)
        yield from goto(w, lambda: np.array([drawer.handle[0], goal_y]), close=True, tol=1.5, speed=0.6)
        yield cmd(close=False)


def _setup_press(w, rng):
    c_on, c_off = colours(rng, 2)
    p_on, p_off = spots(rng, 2, 22.0)
    w.buttons += [Button(c_on, COLOURS[c_on], p_on), Button(c_off, COLOURS[c_off], p_off)]
    return Task("press_button", dict(colour=c_on), dict(button=w.buttons[0]))


def _success_press(w, t):
    return t.roles["button"].pressed


def _expert_press(w, t):
    b = t.roles["button"]
    for _ in range(4):
        if b.pressed:
            return
        yield from goto(w, b.pos, close=False, tol=1.5)
        for _ in range(3):
            yield cmd(toward(w, b.pos), close=True)
        yield from hold(False, 1)


def _setup_rotate(w, rng):
    c_bar, c_other = colours(rng, 2)
    p_bar, p_other = spots(rng, 2, 28.0)
    bar = w.add_object("bar", c_bar, COLOURS[c_bar], p_bar, (11.0, 3.5), rng.uniform(0, np.pi))
    _cube(w, c_other, p_other, rng)
    return Task("rotate", dict(obj=f"{c_bar} bar"), dict(obj=bar, start=bar.angle))


def _turned(t):
    return abs(_wrap(t.roles["obj"].angle - t.roles["start"]))


def _success_rotate(w, t):
    return w.held is None and abs(_turned(t) - np.pi / 2) < 0.35


def _expert_rotate(w, t):
    bar, start = t.roles["obj"], t.roles["start"]
    for _ in range(4):
        if _success_rotate(w, t):
            return
        yield from grab(w, bar, lambda: bar.pos)
        for _ in range(30):
            err = np.pi / 2 - _wrap(bar.angle - start)
            if abs(err) < 0.08 or w.held is not bar:
                break
            yield cmd(w=float(np.clip(err / (WMAX * DT) * 0.7, -1, 1)), close=True)
        yield cmd(close=False)


def _setup_stack(w, rng):
    c_top, c_base, c_other = colours(rng, 3)
    p_top, p_base, p_other = spots(rng, 3, 22.0)
    top, base = _cube(w, c_top, p_top, rng), _cube(w, c_base, p_base, rng)
    w.add_object("disc", c_other, COLOURS[c_other], p_other, (5.0, 5.0))
    return Task("stack", dict(obj=f"{c_top} block", base=f"{c_base} block"), dict(obj=top, base=base))


def _success_stack(w, t):
    return w.held is None and t.roles["obj"].support is t.roles["base"]


def _expert_stack(w, t):
    top, base = t.roles["obj"], t.roles["base"]
    yield from carry(w, top, lambda: base.pos, lambda: _success_stack(w, t))


def _setup_sweep(w, rng):
    (c_zone,) = colours(rng, 1)
    c_beads = str(rng.choice([c for c in COLOURS if c != c_zone]))
    p_zone = spots(rng, 1, 0.0, lo=32.0, hi=68.0)[0]
    zone = Zone("tray", c_zone, COLOURS[c_zone], p_zone, 11.0)
    w.zones.append(zone)
    beads = []
    for p in spots(rng, 3, 8.0, lo=20.0, hi=80.0, avoid=[p_zone]):
        # A ring around the tray, kept far enough from the table edge to get behind each bead.
        p = np.clip(p_zone + _unit(p - p_zone) * rng.uniform(15.0, 20.0), 20.0, 80.0)
        beads.append(w.add_object("crumb", c_beads, COLOURS[c_beads], p, (3.0, 3.0)))
    return Task("sweep", dict(colour=c_beads, zone=f"{c_zone} tray"), dict(beads=beads, zone=zone))


def _success_sweep(w, t):
    return w.held is None and all(t.roles["zone"].contains(b.pos, margin=1.0) for b in t.roles["beads"])


def _expert_sweep(w, t):
    zone = t.roles["zone"]
    for _ in range(3):
        for bead in sorted(t.roles["beads"], key=lambda b: -np.hypot(*(b.pos - zone.pos))):
            yield from push(w, bead, zone.pos, lambda: zone.contains(bead.pos, margin=3.0), speed=0.6)
        if _success_sweep(w, t):
            return


def _setup_sort(w, rng):
    ca, cb = colours(rng, 2)
    p_mats = spots(rng, 2, 30.0, lo=22.0, hi=78.0)
    p_objs = spots(rng, 2, 18.0, avoid=p_mats)
    mats = [Zone("mat", c, COLOURS[c], p, 9.0) for c, p in zip((ca, cb), p_mats)]
    w.zones += mats
    objs = [_cube(w, c, p, rng) for c, p in zip((ca, cb), p_objs)]
    return Task("sort", dict(a=ca, b=cb), dict(objs=objs, mats=mats))


def _success_sort(w, t):
    return w.held is None and all(m.contains(o.pos, margin=2.0) for o, m in zip(t.roles["objs"], t.roles["mats"]))


def _expert_sort(w, t):
    for obj, mat in zip(t.roles["objs"], t.roles["mats"]):
        yield from carry(w, obj, mat.pos, lambda: w.held is None and mat.contains(obj.pos, margin=2.0))


def _setup_wipe(w, rng):
    name = str(rng.choice(list(STAIN_COLOURS)))
    g, half = 8, 10.0
    yy, xx = (np.mgrid[0:g, 0:g] + 0.5) / g * 2 - 1
    a, b, th = rng.uniform(0.7, 1.0), rng.uniform(0.5, 0.8), rng.uniform(0, np.pi)
    u, v = xx * np.cos(th) + yy * np.sin(th), -xx * np.sin(th) + yy * np.cos(th)
    blob = 1.2 - (u / a) ** 2 - (v / b) ** 2 + rng.uniform(-0.25, 0.25, (g, g))
    w.stain = Stain(name, STAIN_COLOURS[name], spots(rng, 1, 0.0, lo=30.0, hi=70.0)[0], half,
                    np.clip(blob, 0, 1).astype(np.float32) * 0.9)
    return Task("wipe", dict(colour=name), dict(stain=w.stain))


def _success_wipe(w, t):
    return t.roles["stain"].remaining <= 0.1


def _expert_wipe(w, t):
    stain = t.roles["stain"]
    yield from goto(w, stain.pos, close=False, tol=4.0)
    for _ in range(60):
        if _success_wipe(w, t):
            break
        centres = stain.cell_centres()
        # Dirtiest cell, preferring near ones so the strokes stay short.
        score = stain.grid - 0.01 * np.linalg.norm(centres - w.ee_pos, axis=-1)
        target = centres[np.unravel_index(np.argmax(score), score.shape)]
        yield cmd(toward(w, target, speed=0.6, gain=0.8), close=True)
    yield from hold(False, 1)


@dataclass(frozen=True)
class Behaviour:
    """setup(world, rng) -> Task; success(world, task) -> bool; expert(world, task) -> commands."""

    name: str
    setup: Callable
    success: Callable
    expert: Callable


_B = [
    Behaviour("pick_place", _setup_pick_place, _success_pick_place, _expert_pick_place),
    Behaviour("push", _setup_push, _success_push, _expert_push),
    Behaviour("open_drawer", lambda w, r: _setup_drawer(w, r, "open_drawer"), _success_open, _expert_drawer),
    Behaviour("close_drawer", lambda w, r: _setup_drawer(w, r, "close_drawer"), _success_close, _expert_drawer),
    Behaviour("press_button", _setup_press, _success_press, _expert_press),
    Behaviour("rotate", _setup_rotate, _success_rotate, _expert_rotate),
    Behaviour("stack", _setup_stack, _success_stack, _expert_stack),
    Behaviour("sweep", _setup_sweep, _success_sweep, _expert_sweep),
    Behaviour("sort", _setup_sort, _success_sort, _expert_sort),
    Behaviour("wipe", _setup_wipe, _success_wipe, _expert_wipe),
]
BEHAVIOUR_SPECS: dict[str, Behaviour] = {b.name: b for b in _B}
BEHAVIOURS: list[str] = [b.name for b in _B]
