"""The physics-alignment (PA) judge: rule checks on a clip's estimated state trajectory.

Each transition (two consecutive clip frames, 4 control steps apart) yields one statistic per
rule, larger = less physical:

  flip       max |change| of an object's presence probability: objects appearing, vanishing, or
             (both at once) changing colour. Fixtures (zones, buttons, the drawer) are left out:
             an object set down on its bowl covers it at 32x32 and the estimator then misses
             the bowl (see state._seen), a legal event that this rule used to flag
  jump       max displacement of an object (world units): teleporting
  untouched  max displacement of an object that the end effector was nowhere near, nor
             stacked on anything: moving by itself
  static     max displacement of a zone (bowls, mats, trays never move)
  ee_jump    displacement of the end effector beyond its speed limit
  overlap    how far two table-level objects are inside each other's reach (20 - distance)
  appear     how surely an object that no earlier frame showed is there in every later one (the
             smallest presence from t+1 on minus the largest up to t): a thing made from
             nothing, or a recolour's new colour. Persistence, unlike flip, ignores the
             estimator's one-frame flicker
  undo       how far something irreversible is undone: the stain growing back above its lowest
             amount so far, or a pressed button (they latch) losing its pressed state
  gone       how surely an object that goes missing at this transition stays absent where nothing
             could hide it: present in every earlier frame but one, then absent at later frames where the end effector is
             farther than `touch` from where the object was last seen and no other object lies
             within 12 units of that place. Vanishing, or a recolour's old colour; an object under
             the gripper or under a stacked cube is hidden, not gone. Flip and appear see presence
             alone, so the estimator's occlusion misses (a cube covered by the arm) forced their
             thresholds up to where they miss most vanishings
  reversal   how far the end effector doubles back: the shorter of two consecutive moves whose
             directions are more than 120 degrees apart. The expert's paths rarely turn back
             on themselves; frames out of order make the arm jitter back and forth

A rule fires when its statistic exceeds its threshold. Thresholds start from the world's
physics (speed limits, object sizes) and are raised until a set share of clean held-out clips
passes every rule, so that estimation noise alone rarely fails a valid clip (`calibrate`).
PA = the fraction of transitions where no rule fires.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dreamgen.world.physics import DT, VMAX

from . import state

RULES = ("flip", "jump", "untouched", "static", "ee_jump", "overlap", "appear", "undo", "gone", "reversal")
_C = state.COLOUR_NAMES
_OBJ_P = np.array([state.idx(c, "obj") for c in _C])
_OBJ_XY = np.array([[state.idx(c, "obj_x"), state.idx(c, "obj_y")] for c in _C])
_STACK = np.array([state.idx(c, "obj_stacked") for c in _C])
_ZONE_P = np.array([state.idx(c, "zone") for c in _C])
_ZONE_XY = np.array([[state.idx(c, "zone_x"), state.idx(c, "zone_y")] for c in _C])
_EE = np.array([state.INDEX["ee_x"], state.INDEX["ee_y"]])
_HELD = state.INDEX["held"]
_PRESSED = np.array([state.idx(c, "button_pressed") for c in _C])
_BUTTON = np.array([state.idx(c, "button") for c in _C])
_STAIN, _STAIN_MASS = state.INDEX["stain"], state.INDEX["stain_mass"]


@dataclass(frozen=True)
class Thresholds:
    """A rule fires above its threshold (units: probability, world units)."""

    flip: float = 0.5
    jump: float = 25.0       # the ee covers at most 4 steps x VMAX x DT = 20 units; a carried object with it
    untouched: float = 4.0
    static: float = 4.0
    ee_jump: float = 4 * VMAX * DT + 5.0
    overlap: float = 10.0    # centres closer than 10 units: two 10-unit objects inside each other
    appear: float = 0.5
    undo: float = 0.05       # physics allows none (buttons latch, a stain only shrinks): the prior is noise
    gone: float = 0.5        # present to absent with nothing in the way: a sure change of presence
    reversal: float = 8.0    # a prior well under one transition's reach (20 units): calibration raises it
    touch: float = 14.0      # the ee "touches" an object within this distance (half-diagonal + pusher)

    def to_dict(self) -> dict:
        return asdict(self)


def _seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (..., ) of points p (..., 2) to the segment a-b (2,)."""
    d = b - a
    t = np.clip(((p - a) @ d) / max(float(d @ d), 1e-9), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * d), axis=-1)


def _robust_min(x: np.ndarray) -> np.ndarray:
    """(N, C) -> (C,): the second smallest per column (the smallest when N <= 2): one frame's flicker is forgiven."""
    return np.sort(x, 0)[1] if len(x) > 2 else x.min(0)


def _gone(p: np.ndarray, xy: np.ndarray, ee: np.ndarray, touch: float, cover: float = 12.0) -> np.ndarray:
    """The `gone` statistic (T-1,) from object presences p (T, C), positions xy (T, C, 2) and the
    end effector ee (T, 2), both in world units."""
    T, C = p.shape
    seen = p > 0.5
    other = ~np.eye(C, dtype=bool)
    out = np.zeros(T - 1)
    for t in range(T - 1):
        before = _robust_min(p[: t + 1])
        last_i = np.array([np.flatnonzero(seen[: t + 1, c])[-1] if seen[: t + 1, c].any() else t for c in range(C)])
        last = xy[last_i, np.arange(C)]  # (C, 2) where each object was last seen up to t
        free = np.linalg.norm(last[None] - ee[t + 1:, None], axis=-1) > touch  # (A, C): the gripper is elsewhere
        d = np.linalg.norm(last[None, :, None] - xy[t + 1:, None, :], axis=-1)  # (A, C, C): others near that place
        free &= np.where(seen[t + 1:, None, :] & other[None], d, np.inf).min(2) > cover
        for c in np.flatnonzero(seen[t] & ~seen[t + 1]):  # the transition where it goes missing
            q = np.sort(p[t + 1:, c][free[:, c]])
            if len(q):  # the surest presence where it could not hide, forgiving one flicker
                out[t] = max(out[t], before[c] - (q[-2] if len(q) > 2 else q[-1]))
    return out


def transition_stats(states: np.ndarray, touch: float = Thresholds.touch) -> dict[str, np.ndarray]:
    """states (T, D) estimated (presences as probabilities) -> rule statistic (T-1,) per rule."""
    if states.ndim != 2 or states.shape[1] != state.DIM or len(states) < 2:
        raise ValueError(f"need estimated states (T >= 2, {state.DIM}), got {states.shape}")
    s = states.astype(np.float64)
    sc = state.SCALE
    p, xy, stacked = s[:, _OBJ_P], s[:, _OBJ_XY] * sc, s[:, _STACK]
    zp, zxy, ee = s[:, _ZONE_P], s[:, _ZONE_XY] * sc, s[:, _EE] * sc
    out = {k: np.zeros(len(s) - 1) for k in RULES}
    for t in range(len(s) - 1):
        out["flip"][t] = np.abs(s[t + 1, _OBJ_P] - s[t, _OBJ_P]).max()
        both = (p[t] > 0.5) & (p[t + 1] > 0.5)
        disp = np.linalg.norm(xy[t + 1] - xy[t], axis=-1)
        out["jump"][t] = disp[both].max(initial=0.0)
        near = np.minimum(_seg_dist(xy[t], ee[t], ee[t + 1]), _seg_dist(xy[t + 1], ee[t], ee[t + 1]))
        free = both & (near > touch) & (stacked[t] < 0.5) & (stacked[t + 1] < 0.5)
        out["untouched"][t] = disp[free].max(initial=0.0)
        zboth = (zp[t] > 0.5) & (zp[t + 1] > 0.5)
        out["static"][t] = np.linalg.norm(zxy[t + 1] - zxy[t], axis=-1)[zboth].max(initial=0.0)
        out["ee_jump"][t] = np.linalg.norm(ee[t + 1] - ee[t])
        on_table = (p[t + 1] > 0.5) & (stacked[t + 1] < 0.5)
        if s[t + 1, _HELD] > 0.5:  # a carried object is lifted and may pass over others
            on_table &= np.linalg.norm(xy[t + 1] - ee[t + 1], axis=-1) > 6.0
        q = xy[t + 1][on_table]
        if len(q) > 1:
            d = np.linalg.norm(q[:, None] - q[None], axis=-1) + np.eye(len(q)) * 1e9
            out["overlap"][t] = max(0.0, 20.0 - d.min())
    stain = s[:, _STAIN_MASS] * (s[:, _STAIN] > 0.5)
    pressed = s[:, _PRESSED] * (s[:, _BUTTON] > 0.5)
    for t in range(len(s) - 1):
        out["appear"][t] = (p[t + 1:].min(0) - p[: t + 1].max(0)).max()
        out["undo"][t] = max(stain[t + 1] - stain[: t + 1].min(), (pressed[: t + 1].max(0) - pressed[t + 1]).max())
    out["gone"] = _gone(p, xy, ee, touch)
    d = np.diff(ee, axis=0)
    n = np.linalg.norm(d, axis=-1)
    cos = (d[:-1] * d[1:]).sum(-1) / np.maximum(n[:-1] * n[1:], 1e-9)
    out["reversal"][1:] = np.where(cos < -0.5, np.minimum(n[:-1], n[1:]), 0.0)
    return out


def violations(stats: dict[str, np.ndarray], thr: Thresholds) -> np.ndarray:
    """(T-1, len(RULES)) bool: which rule fires on which transition."""
    return np.stack([stats[r] > (20.0 - thr.overlap if r == "overlap" else getattr(thr, r)) for r in RULES], -1)


def physics_alignment(states: np.ndarray, thr: Thresholds) -> tuple[float, np.ndarray]:
    """(PA in [0, 1], violations (T-1, len(RULES))) of one clip's estimated states (T, D)."""
    v = violations(transition_stats(states, thr.touch), thr)
    return float(1.0 - v.any(-1).mean()), v


def calibrate(clean_states: list[np.ndarray], clip_pass: float = 0.95, base: Thresholds = Thresholds()) -> Thresholds:
    """Raise each rule's threshold until `clip_pass` of clean clips pass every rule (never below
    the physics prior).

    clean_states: estimated state trajectories (T, D) of physically valid clips that the
    estimator was not trained on (it is more exact on its own training frames). A clip passes
    only if no rule fires on any of its transitions, so the allowed false alarms are split
    evenly: each rule's threshold rises to the 1 - (1 - clip_pass) / len(RULES) quantile of its
    per-clip maximum.
    """
    if not clean_states:
        raise ValueError("calibrate: no clean clips to calibrate the PA thresholds on")
    stats = [transition_stats(s, base.touch) for s in clean_states]
    q = 1.0 - (1.0 - clip_pass) / len(RULES)
    new = {}
    for r in RULES:
        top = float(np.quantile([st[r].max() for st in stats], q, method="higher"))
        if r == "overlap":  # stored as a distance: lower it to 20 - top when clean clips come closer
            new[r] = min(base.overlap, 20.0 - top)
        else:
            new[r] = max(getattr(base, r), top)
    return Thresholds(**new, touch=base.touch)
