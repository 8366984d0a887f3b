"""Top-down pymunk tabletop: sliding objects, a drawer, buttons, a stain and one end effector.

Units: the table spans [TABLE_LO, TABLE_HI]^2 world units, y points down (as in the image).
There is no gravity; table friction is a pivot + gear joint to the static body with a bounded
force (the standard pymunk top-down trick), so pushed objects slide and stop.

The end effector (ee) is a kinematic body. Contact rule, since we see from above:
an open gripper hovers (touches nothing); a closed, empty one is down on the table and
pushes (a small disc shape); closing over an object grasps it with a pivot + gear joint,
and a grasped object is lifted (collides with nothing) until the gripper opens.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pymunk

TABLE_LO, TABLE_HI = 6.0, 94.0
WORK_LO, WORK_HI = 9.0, 91.0   # where the ee may go
FPS = 10                       # control rate, Hz: the rate of every dataset and video
DT, SUBSTEPS = 1.0 / FPS, 5    # 10 Hz control, 50 Hz physics
VMAX, WMAX = 50.0, 2.0         # ee speed (units/s) and wrist rate (rad/s) at |action| = 1
GRIP_RATE = 0.4                # opening change per control step (open=1, closed=0)
PUSHER_R = 3.5
GRASP_SLIP = 5.0               # a grasp pulled this far from its anchor slips (drawer limits)

TABLE_FRICTION = 300.0        # drag force per unit mass: a pushed object stops within ~1 unit

CAT_OBJ, CAT_PUSHER, CAT_DRAWER, CAT_WALL = 1, 2, 4, 8
_OBJ_FILTER = pymunk.ShapeFilter(categories=CAT_OBJ, mask=CAT_OBJ | CAT_PUSHER | CAT_WALL)
_NO_COLLIDE = pymunk.ShapeFilter(categories=0, mask=0)
_PUSHER_ON = pymunk.ShapeFilter(categories=CAT_PUSHER, mask=CAT_OBJ | CAT_DRAWER)


@dataclass(eq=False)
class Obj:
    """A movable object. kind: cube | bar | disc | crumb; half = (half width, half height)."""

    kind: str
    colour: str
    rgb: tuple
    body: pymunk.Body
    shape: pymunk.Shape
    half: tuple
    friction: tuple          # the two table-friction constraints
    support: "Obj | None" = None  # the block this one is stacked on
    stack_joints: tuple = ()

    @property
    def pos(self) -> np.ndarray:
        return np.array(self.body.position)

    @property
    def angle(self) -> float:
        return self.body.angle

    @property
    def radius(self) -> float:
        return max(self.half)


@dataclass(eq=False)
class Drawer:
    """A drawer in a cabinet on the top table edge; it slides along +y by `travel`."""

    colour: str
    rgb: tuple
    body: pymunk.Body
    closed_y: float
    travel: float
    half: tuple

    @property
    def extension(self) -> float:
        return float(np.clip((self.body.position.y - self.closed_y) / self.travel, 0, 1))

    @property
    def handle(self) -> np.ndarray:
        return np.array(self.body.position) + (0.0, self.half[1] + 1.5)


@dataclass(eq=False)
class Button:
    colour: str
    rgb: tuple
    pos: np.ndarray
    pressed: bool = False


@dataclass(eq=False)
class Zone:
    """A drawn-only target region: kind bowl (round, half = radius) | square | mat | tray."""

    kind: str
    colour: str
    rgb: tuple
    pos: np.ndarray
    half: float

    def contains(self, p, margin=0.0) -> bool:
        d = np.asarray(p) - self.pos
        if self.kind == "bowl":
            return float(np.hypot(*d)) <= self.half - margin
        return bool(np.all(np.abs(d) <= self.half - margin))


@dataclass(eq=False)
class Stain:
    """A (G, G) grid of alphas over a square of side 2*half; wiping multiplies cells down."""

    colour: str
    rgb: tuple
    pos: np.ndarray
    half: float
    grid: np.ndarray
    initial: float = field(init=False)

    def __post_init__(self):
        self.initial = float(self.grid.sum())

    def cell_centres(self) -> np.ndarray:
        g = self.grid.shape[0]
        c = (np.arange(g) + 0.5) / g * 2 * self.half - self.half
        xx, yy = np.meshgrid(c, c)
        return np.stack([xx, yy], -1) + self.pos  # (G, G, 2), [row=y, col=x]

    @property
    def remaining(self) -> float:
        return float(self.grid.sum()) / max(self.initial, 1e-9)


def set_friction(joints, force) -> None:
    """Set the (linear, angular) table-drag joints; 0 while an object is off the table."""
    joints[0].max_force, joints[1].max_force = force, force * 20


class World:
    """The physical scene plus the ee. `control` advances one 10 Hz step."""

    def __init__(self, ee_pos, ee_yaw):
        self.space = pymunk.Space()
        self.space.iterations = 15
        self.static = self.space.static_body
        lo, hi = TABLE_LO, TABLE_HI
        for a, b in [((lo, lo), (hi, lo)), ((hi, lo), (hi, hi)), ((hi, hi), (lo, hi)), ((lo, hi), (lo, lo))]:
            wall = pymunk.Segment(self.static, a, b, 1.0)
            wall.filter = pymunk.ShapeFilter(categories=CAT_WALL, mask=CAT_OBJ)
            self.space.add(wall)
        self.ee = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        self.ee.position, self.ee.angle = tuple(ee_pos), float(ee_yaw)
        self.pusher = pymunk.Circle(self.ee, PUSHER_R)
        self.pusher.filter = _NO_COLLIDE
        self.space.add(self.ee, self.pusher)
        self.opening = 1.0
        self.held: Obj | Drawer | None = None
        self._grasp_joints: tuple = ()
        self._grasp_anchor = (0.0, 0.0)
        self.objects: list[Obj] = []
        self.zones: list[Zone] = []
        self.buttons: list[Button] = []
        self.drawer: Drawer | None = None
        self.stain: Stain | None = None

    # -- scene building ----------------------------------------------------------------
    def _friction(self, body, force):
        lin = pymunk.PivotJoint(self.static, body, (0, 0), (0, 0))
        rot = pymunk.GearJoint(self.static, body, 0.0, 1.0)
        lin.max_bias = rot.max_bias = 0.0  # pure drag: resists motion, never restores
        self.space.add(lin, rot)
        set_friction((lin, rot), force)
        return lin, rot

    def add_object(self, kind, colour, rgb, pos, half, angle=0.0) -> Obj:
        body = pymunk.Body()
        if kind in ("disc", "crumb"):
            shape = pymunk.Circle(body, half[0])
        else:
            shape = pymunk.Poly.create_box(body, (2 * half[0], 2 * half[1]), radius=0.3)
        shape.density, shape.friction, shape.elasticity = 0.02, 0.6, 0.0
        shape.filter = _OBJ_FILTER
        body.position, body.angle = tuple(pos), float(angle)
        self.space.add(body, shape)
        obj = Obj(kind, colour, rgb, body, shape, tuple(half), self._friction(body, TABLE_FRICTION * body.mass))
        self.objects.append(obj)
        return obj

    def add_drawer(self, colour, rgb, x, open_frac=0.0) -> Drawer:
        half, travel = (13.0, 8.0), 18.0
        closed_y = TABLE_LO + 1.0 + half[1]
        body = pymunk.Body(2.0, pymunk.moment_for_box(2.0, (2 * half[0], 2 * half[1])))
        shape = pymunk.Poly.create_box(body, (2 * half[0], 2 * half[1]))
        shape.filter = pymunk.ShapeFilter(categories=CAT_DRAWER, mask=CAT_PUSHER)
        body.position = (x, closed_y + open_frac * travel)
        groove = pymunk.GrooveJoint(self.static, body, (x, closed_y), (x, closed_y + travel), (0, 0))
        upright = pymunk.GearJoint(self.static, body, 0.0, 1.0)
        self.space.add(body, shape, groove, upright)
        self._friction(body, 150.0)
        self.drawer = Drawer(colour, rgb, body, closed_y, travel, half)
        return self.drawer

    # -- queries -----------------------------------------------------------------------
    @property
    def ee_pos(self) -> np.ndarray:
        return np.array(self.ee.position)

    @property
    def ee_yaw(self) -> float:
        return self.ee.angle

    def grasp_candidate(self):
        """What closing now would grasp: the drawer handle, else the topmost object under the ee."""
        p = self.ee_pos
        if self.drawer is not None and np.hypot(*(self.drawer.handle - p)) <= 3.5:
            return self.drawer
        hits = [o for o in self.objects if o.shape.point_query(tuple(p)).distance <= 0.5]
        hits.sort(key=lambda o: o.support is None)  # stacked (higher) objects first
        return hits[0] if hits else None

    # -- dynamics ----------------------------------------------------------------------
    def control(self, target_pos, target_yaw, close: bool) -> None:
        """Move the ee to (target_pos, target_yaw) over one control step and work the gripper."""
        target = np.clip(np.asarray(target_pos, np.float64), WORK_LO, WORK_HI)
        start = self.ee_pos
        self.ee.velocity = tuple((target - self.ee_pos) / DT)
        self.ee.angular_velocity = (target_yaw - self.ee.angle) / DT
        self._grip(close)
        for _ in range(SUBSTEPS):
            self.space.step(DT / SUBSTEPS)
        self.ee.velocity, self.ee.angular_velocity = (0, 0), 0.0
        if self.held is not None and self._slipped():
            self._release()
        self._touch(start)

    def _grip(self, close: bool) -> None:
        if close and self.held is None:
            self.opening = max(self.opening - GRIP_RATE, 0.0)
            if self.opening <= 0.5:
                target = self.grasp_candidate()
                if target is not None:
                    self._grasp(target)
        elif not close:
            if self.held is not None:
                self._release()
            self.opening = min(self.opening + GRIP_RATE, 1.0)
        down = self.held is None and self.opening < 0.35
        self.pusher.filter = _PUSHER_ON if down else _NO_COLLIDE

    def _grasp(self, target) -> None:
        anchor = tuple(self.ee_pos)
        pivot = pymunk.PivotJoint(self.ee, target.body, anchor)
        pivot.max_force = 5e4
        joints = [pivot]
        if isinstance(target, Obj):
            if target.support is not None:
                self._unstack(target)
            joints.append(pymunk.GearJoint(self.ee, target.body, target.body.angle - self.ee.angle, 1.0))
            target.shape.filter = _NO_COLLIDE  # lifted
            set_friction(target.friction, 0.0)
            self.opening = 0.35 if target.kind != "crumb" else 0.15
        else:
            self.opening = 0.25
        self.space.add(*joints)
        self._grasp_joints, self.held = tuple(joints), target
        self._grasp_anchor = target.body.world_to_local(anchor)

    def _slipped(self) -> bool:
        anchor = self.held.body.local_to_world(self._grasp_anchor)
        return float(np.hypot(*(np.array(anchor) - self.ee_pos))) > GRASP_SLIP

    def _release(self) -> None:
        obj = self.held
        self.space.remove(*self._grasp_joints)
        self._grasp_joints, self.held = (), None
        if isinstance(obj, Obj):
            obj.body.velocity, obj.body.angular_velocity = (0, 0), 0.0
            base = next((o for o in self.objects if o is not obj and o.kind == "cube" and o.support is None
                         and obj.kind == "cube" and o.shape.point_query(tuple(obj.pos)).distance < -1.0), None)
            if base is not None:
                self._stack(obj, base)
            else:
                obj.shape.filter = _OBJ_FILTER
                set_friction(obj.friction, TABLE_FRICTION * obj.body.mass)

    def _stack(self, obj: Obj, base: Obj) -> None:
        """Glue obj on top of base: it rides along and no longer touches the table layer."""
        joints = (pymunk.PivotJoint(base.body, obj.body, tuple(obj.pos)),
                  pymunk.GearJoint(base.body, obj.body, obj.angle - base.angle, 1.0))
        self.space.add(*joints)
        obj.support, obj.stack_joints = base, joints

    def _unstack(self, obj: Obj) -> None:
        self.space.remove(*obj.stack_joints)
        obj.support, obj.stack_joints = None, ()

    def _touch(self, start: np.ndarray) -> None:
        """Effects of a closed gripper down on the table: buttons latch, the stain wipes."""
        if self.held is not None or self.opening >= 0.35:
            return
        p = self.ee_pos
        for b in self.buttons:
            if np.hypot(*(b.pos - p)) <= 4.5:
                b.pressed = True
        if self.stain is not None:
            # Wipe along the whole path of this step so fast strokes leave no gaps.
            path = start + np.linspace(0, 1, 4)[:, None] * (p - start)
            d = np.linalg.norm(self.stain.cell_centres()[:, :, None, :] - path, axis=-1).min(-1)
            self.stain.grid[d <= 5.0] *= 0.15
