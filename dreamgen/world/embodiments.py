"""Who acts: the target robot, a second robot, and seven 'web video' embodiments.

All of them move one end effector (ee) through the same physics; they differ in looks and in
action space. ROBOT and the web embodiments take Cartesian ee velocities; ROBOT_B takes joint
velocities of a 3-joint arm (its ee follows forward kinematics). Every look is drawn with the
same few primitives: `draw_arm` (links + joints) and one of five tool drawers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .behaviours import BEHAVIOURS
from .physics import DT, VMAX, WMAX
from .render import ellipse_points

ROBOT, ROBOT_B = "robot", "robot_b"
QMAX = 1.5  # joint speed (rad/s) at |action| = 1 for ROBOT_B


@dataclass(frozen=True)
class EmbodimentSpec:
    name: str
    kind: str  # "robot" (actions/states recorded) or "web" (video only)
    action_dim: int
    state_dim: int
    action_names: tuple
    state_names: tuple
    description: str


@dataclass(frozen=True)
class Look:
    """How an embodiment is drawn. tool: parallel | pincer | hand | suction | claw | jaw.

    base: where the arm or forearm enters the picture; links: upper-arm lengths (2 for arms,
    () for a straight forearm); wrist: wrist-to-ee length; width: link radius; scale: tool size.
    """

    tool: str
    base: tuple
    links: tuple
    wrist: float
    width: float
    link_rgb: tuple
    joint_rgb: tuple
    tool_rgb: tuple
    accent_rgb: tuple = (0.2, 0.2, 0.2)
    scale: float = 1.0


_CART = (("vx", "vy", "wz", "grip"), ("x", "y", "yaw", "opening"))
_JOINT = (("dq_shoulder", "dq_elbow", "dq_wrist", "grip"), ("q_shoulder", "q_elbow", "q_wrist", "opening"))


def _spec(name, kind, names, description):
    return EmbodimentSpec(name, kind, len(names[0]), len(names[1]), names[0], names[1], description)


_TABLE = [  # (spec, look)
    (_spec(ROBOT, "robot", _CART, "target robot: silver 3-link arm from the bottom edge, black parallel gripper; "
                                  "actions: ee velocity, wrist rate, gripper"),
     Look("parallel", (50.0, 100.0), (48.0, 47.0), 9.0, 2.6, (0.80, 0.82, 0.86), (0.22, 0.27, 0.36),
          (0.08, 0.08, 0.10), (0.20, 0.45, 0.85))),
    (_spec(ROBOT_B, "robot", _JOINT, "second robot: dark-green arm from the left edge, yellow joints, white "
                                     "pincer; actions: joint velocities, gripper"),
     Look("pincer", (-4.0, 50.0), (50.0, 50.0), 10.0, 2.4, (0.10, 0.36, 0.28), (0.96, 0.80, 0.18),
          (0.95, 0.95, 0.92))),
    (_spec("hand_light_small", "web", _CART, "small light-skinned hand, blue sleeve, from the bottom right"),
     Look("hand", (104.0, 96.0), (), 9.0, 3.2, (0.96, 0.80, 0.69), (0.30, 0.40, 0.72), (0.96, 0.80, 0.69), scale=0.85)),
    (_spec("hand_medium", "web", _CART, "medium hand, grey sleeve, from the right"),
     Look("hand", (106.0, 58.0), (), 9.0, 3.6, (0.84, 0.62, 0.45), (0.55, 0.55, 0.55), (0.84, 0.62, 0.45))),
    (_spec("hand_dark_large", "web", _CART, "large dark-skinned hand, red sleeve, from the top"),
     Look("hand", (42.0, -6.0), (), 10.0, 4.2, (0.42, 0.27, 0.17), (0.78, 0.18, 0.18), (0.42, 0.27, 0.17), scale=1.2)),
    (_spec("hand_tan", "web", _CART, "tan hand, green sleeve, from the bottom left"),
     Look("hand", (-6.0, 102.0), (), 9.0, 3.6, (0.72, 0.50, 0.33), (0.20, 0.52, 0.30), (0.72, 0.50, 0.33))),
    (_spec("suction_arm", "web", _CART, "white arm with light-blue joints and a suction cup, from the top"),
     Look("suction", (72.0, -6.0), (56.0, 56.0), 7.0, 2.2, (0.96, 0.96, 0.98), (0.50, 0.74, 0.95),
          (0.10, 0.70, 0.80), (0.15, 0.15, 0.20))),
    (_spec("claw_arm", "web", _CART, "purple arm with a three-finger claw, from the right edge"),
     Look("claw", (106.0, 30.0), (58.0, 56.0), 8.0, 2.4, (0.46, 0.30, 0.62), (0.18, 0.18, 0.22),
          (0.72, 0.74, 0.80))),
    (_spec("industrial_arm", "web", _CART, "thick orange industrial arm with a black jaw gripper, from the top left"),
     Look("jaw", (-6.0, -6.0), (70.0, 66.0), 10.0, 4.4, (0.96, 0.50, 0.08), (0.12, 0.12, 0.12),
          (0.20, 0.20, 0.22), (0.55, 0.55, 0.58))),
]
EMBODIMENTS: dict[str, EmbodimentSpec] = {s.name: s for s, _ in _TABLE}
LOOKS: dict[str, Look] = {s.name: look for s, look in _TABLE}
WEB_EMBODIMENTS: list[str] = [s.name for s, _ in _TABLE if s.kind == "web"]
_CENTRE = np.array([50.0, 50.0])


def can_perform(embodiment: str, behaviour: str) -> bool:
    """Every embodiment can do every behaviour (all share the ee interface)."""
    return embodiment in EMBODIMENTS and behaviour in BEHAVIOURS


# -- kinematics ------------------------------------------------------------------------
def _u(a):
    return np.array([np.cos(a), np.sin(a)])


def home_pose(name: str) -> tuple[np.ndarray, float]:
    """Start ee position and yaw: a little in from where the embodiment enters, facing the centre."""
    base = np.asarray(LOOKS[name].base)
    d = _CENTRE - base
    yaw = float(np.arctan2(d[1], d[0]))
    return np.clip(base + d / np.hypot(*d) * 34.0, 14.0, 86.0), yaw


def two_link_ik(base, target, l1, l2, elbow=1.0) -> tuple[float, float]:
    """Joint angles (q1, q2) placing a 2-link chain's tip at target (clamped to its reach)."""
    d = np.asarray(target) - base
    r = np.clip(np.hypot(*d), abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3)
    q2 = elbow * np.arccos(np.clip((r * r - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1, 1))
    q1 = np.arctan2(d[1], d[0]) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
    return float(q1), float(q2)


def joint_fk(look: Look, q) -> tuple[list[np.ndarray], float]:
    """Joint positions [base, elbow, wrist, ee] and ee yaw of a 3-joint arm at angles q (3,)."""
    (l1, l2), base = look.links, np.asarray(look.base)
    a1, a2, a3 = q[0], q[0] + q[1], q[0] + q[1] + q[2]
    p1 = base + l1 * _u(a1)
    p2 = p1 + l2 * _u(a2)
    return [base, p1, p2, p2 + look.wrist * _u(a3)], float(a3)


def joint_ik(look: Look, ee, yaw) -> np.ndarray:
    """Joint angles (3,) reaching ee with heading yaw (elbow bent one fixed way)."""
    wrist = np.asarray(ee) - look.wrist * _u(yaw)
    q1, q2 = two_link_ik(np.asarray(look.base), wrist, *look.links, elbow=-1.0)
    return np.array([q1, q2, yaw - q1 - q2])


def joint_jacobian(look: Look, q) -> np.ndarray:
    """(3, 3) d(x, y, yaw)/dq."""
    (l1, l2), l3 = look.links, look.wrist
    a = np.cumsum(q)
    s = -np.array([l1, l2, l3]) * np.sin(a)
    c = np.array([l1, l2, l3]) * np.cos(a)
    jx, jy = np.cumsum(s[::-1])[::-1], np.cumsum(c[::-1])[::-1]
    return np.stack([jx, jy, np.ones(3)])


def cartesian_to_joint_action(look: Look, q, command) -> np.ndarray:
    """Map a Cartesian command (vx, vy, wz, grip) in [-1,1] to ROBOT_B joint-velocity actions."""
    xdot = np.array([command[0] * VMAX, command[1] * VMAX, command[2] * WMAX])
    j = joint_jacobian(look, q)
    qdot = j.T @ np.linalg.solve(j @ j.T + 1.0 * np.eye(3), xdot)  # damped least squares
    a = qdot / QMAX
    a /= max(1.0, float(np.abs(a).max()))  # keep direction when saturating
    return np.append(a, command[3])


def step_joints(q, action) -> np.ndarray:
    return np.clip(q + np.asarray(action[:3]) * QMAX * DT, -2 * np.pi, 2 * np.pi)


# -- drawing ---------------------------------------------------------------------------
def draw_embodiment(canvas, name: str, ee, yaw: float, opening: float, q=None) -> None:
    """Draw embodiment `name` with its tool at ee (heading yaw), gripper opening in [0, 1]."""
    look = LOOKS[name]
    ee, base = np.asarray(ee), np.asarray(look.base)
    if look.tool == "hand":
        # A forearm follows the hand: the heading is the forearm direction, turned by the wrist.
        heading = float(np.arctan2(*(ee - base)[::-1])) + yaw - home_pose(name)[1]
        wrist = ee - _u(heading) * look.wrist * look.scale
        canvas.capsule(base, wrist, look.width * look.scale, look.link_rgb)
        canvas.capsule(base, base + 0.45 * (wrist - base), look.width * look.scale * 1.3, look.joint_rgb)
    else:
        heading = yaw
        if q is not None:
            joints, _ = joint_fk(look, q)
        else:
            wrist = ee - _u(yaw) * look.wrist
            q1, q2 = two_link_ik(base, wrist, *look.links)
            elbow = base + look.links[0] * _u(q1)
            joints = [base, elbow, wrist, ee]
        draw_arm(canvas, joints[:3], look)
    _TOOLS[look.tool](canvas, look, ee, _u(heading), opening)


def draw_arm(canvas, joints, look: Look) -> None:
    canvas.circle(joints[0], look.width * 2.6, look.joint_rgb)  # base plate
    for a, b in zip(joints[:-1], joints[1:]):
        canvas.capsule(a, b, look.width, look.link_rgb)
    for p in joints[1:]:
        canvas.circle(p, look.width * 1.25, look.joint_rgb)


def _ang(u):
    return float(np.arctan2(u[1], u[0]))


def _tool_parallel(c, look, ee, u, g):
    n = np.array([-u[1], u[0]])
    c.capsule(ee - 10.0 * u, ee - 6.0 * u, 2.2, look.link_rgb)
    c.box(ee - 6.0 * u, 1.6, 7.5, _ang(u), look.accent_rgb)
    for side in (-1, 1):
        off = n * side * (2.0 + 5.5 * g)
        c.capsule(ee - 5.5 * u + off, ee + 2.5 * u + off, 1.25, look.tool_rgb)


def _tool_pincer(c, look, ee, u, g):
    n = np.array([-u[1], u[0]])
    root = ee - 6.0 * u
    c.circle(root, 3.2, look.joint_rgb)
    for side in (-1, 1):
        c.capsule(root + n * side * 1.5, ee + 2.0 * u + n * side * (1.0 + 5.0 * g), 1.2, look.tool_rgb)


def _tool_hand(c, look, ee, u, g):
    s, n, skin = look.scale, np.array([-u[1], u[0]]), look.tool_rgb
    palm = ee - 4.5 * s * u
    c.poly(ellipse_points(palm, 5.0 * s, 4.3 * s, _ang(u)), skin)
    length = (2.5 + 4.5 * g) * s  # fingers curl in when closed
    for k, lat in enumerate((-3.0, -1.0, 1.0, 3.0)):
        root = palm + 3.5 * s * u + lat * s * n
        tip = root + (length - 0.6 * abs(lat) * s * (k in (0, 3))) * u + lat * 0.25 * g * s * n
        c.capsule(root, tip, 0.95 * s, skin)
    thumb_root = palm + 3.6 * s * n
    c.capsule(thumb_root, thumb_root + (2.0 + 2.5 * g) * s * (u + 0.6 * n * g), 1.1 * s, skin)
    c.poly(ellipse_points(palm + 2.5 * s * u, 1.6 * s, 3.6 * s, _ang(u)), tuple(0.88 * np.asarray(skin)), alpha=0.5)


def _tool_suction(c, look, ee, u, g):
    c.capsule(ee - look.wrist * u, ee, 2.0, look.link_rgb)
    c.circle(ee, 4.2, look.accent_rgb)
    c.circle(ee, 3.0, look.tool_rgb if g < 0.5 else (0.85, 0.95, 0.97))


def _tool_claw(c, look, ee, u, g):
    c.circle(ee - 2.0 * u, 3.4, look.joint_rgb)
    for k in range(3):
        a = _ang(u) + 2 * np.pi * k / 3
        d = _u(a)
        c.capsule(ee + 2.5 * d, ee + (3.0 + 4.0 * g) * d + 1.5 * _u(a + 1.2), 1.2, look.tool_rgb)


def _tool_jaw(c, look, ee, u, g):
    n = np.array([-u[1], u[0]])
    c.box(ee - 6.5 * u, 3.5, 8.5, _ang(u), look.tool_rgb)
    for side in (-1, 1):
        c.box(ee + n * side * (3.0 + 4.5 * g), 3.5, 1.6, _ang(u), look.accent_rgb)


_TOOLS = {"parallel": _tool_parallel, "pincer": _tool_pincer, "hand": _tool_hand,
          "suction": _tool_suction, "claw": _tool_claw, "jaw": _tool_jaw}
