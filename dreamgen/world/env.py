"""TabletopEnv: the gymnasium environment tying physics, behaviours, embodiments and rendering."""
from __future__ import annotations

from itertools import chain

import gymnasium as gym
import numpy as np

from .behaviours import BEHAVIOUR_SPECS, BEHAVIOURS, retreat
from .draw import draw_dynamic, draw_object, draw_static
from .embodiments import (EMBODIMENTS, LOOKS, ROBOT_B, cartesian_to_joint_action, draw_embodiment, home_pose,
                          joint_fk, joint_ik, step_joints)
from .environments import ENVIRONMENTS, paint_background
from .expert import TeleopNoise
from .language import make_instruction
from .physics import DT, VMAX, WMAX, WORK_HI, WORK_LO, World
from .render import Canvas

_OPTION_KEYS = ("embodiment", "behaviour", "environment", "paraphrase")
_YAW_LIMIT = 0.95 * np.pi  # wrist range either side of the home heading


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


class TabletopEnv(gym.Env):
    """Top-down tabletop at 10 Hz.

    Observation: dict(image=uint8 (H, W, 3), state=float32 (4,)); action: float32 (4,) in [-1, 1]
    (see EMBODIMENTS[name].action_names; grip > 0 closes). Reward 1 on success, which also
    terminates; truncation at max_steps. With `render_obs=False` the image is a (1, 1, 3)
    zero array (fast expert rollouts for success tables; not a valid observation_space sample).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, image_size: int = 64, supersample: int = 3, max_steps: int = 80,
                 render_mode: str | None = "rgb_array", render_obs: bool = True):
        self.image_size, self.supersample, self.max_steps = int(image_size), int(supersample), int(max_steps)
        self.render_mode, self.render_obs = render_mode, render_obs
        s = self.image_size
        self.observation_space = gym.spaces.Dict(
            image=gym.spaces.Box(0, 255, (s, s, 3), np.uint8),
            state=gym.spaces.Box(-1.0, 1.0, (4,), np.float32))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.world = None

    # -- episode -----------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        rng, opts = self.np_random, dict(options or {})
        bad = set(opts) - set(_OPTION_KEYS)
        if bad:
            raise ValueError(f"unknown options {sorted(bad)}; valid: {list(_OPTION_KEYS)}")
        # Always draw the defaults, so the layout stream does not depend on which options were given.
        names = list(EMBODIMENTS)
        drawn = (names[int(rng.integers(len(names)))], BEHAVIOURS[int(rng.integers(len(BEHAVIOURS)))],
                 int(rng.integers(len(ENVIRONMENTS))))
        self.embodiment = str(opts.get("embodiment", drawn[0]))
        self.behaviour = str(opts.get("behaviour", drawn[1]))
        env_id = opts.get("environment", drawn[2])
        if self.embodiment not in EMBODIMENTS:
            raise ValueError(f"unknown embodiment {self.embodiment!r}; valid: {names}")
        if self.behaviour not in BEHAVIOUR_SPECS:
            raise ValueError(f"unknown behaviour {self.behaviour!r}; valid: {BEHAVIOURS}")
        if not (isinstance(env_id, (int, np.integer)) and 0 <= env_id < len(ENVIRONMENTS)):
            raise ValueError(f"environment must be an int in 0..{len(ENVIRONMENTS) - 1}, got {env_id!r}")
        self.environment = int(env_id)

        self.look = LOOKS[self.embodiment]
        self.home, self.yaw0 = home_pose(self.embodiment)
        self.q = None
        if self.embodiment == ROBOT_B:
            self.q = joint_ik(self.look, self.home, self.yaw0)
            joints, yaw = joint_fk(self.look, self.q)
            self.home, self.yaw0 = joints[-1], yaw
        self.world = World(self.home, self.yaw0)
        self._behaviour = BEHAVIOUR_SPECS[self.behaviour]
        self.task = self._behaviour.setup(self.world, rng)
        self.instruction = make_instruction(self.behaviour, self.task.slots, rng, bool(opts.get("paraphrase", False)))

        env_look = ENVIRONMENTS[self.environment]
        self._canvas = Canvas(self.image_size, self.supersample, origin=env_look.camera_shift)
        paint_background(self._canvas, env_look, rng)
        draw_static(self._canvas, self.world)
        self._background, self._tint = self._canvas.px.copy(), env_look.tint
        self._t, self._expert, self._teleop = 0, None, TeleopNoise()
        return self._obs(), self._info()

    def step(self, action):
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        a = np.clip(np.asarray(action, np.float64).reshape(4), -1.0, 1.0)
        w = self.world
        if self.q is not None:
            q = step_joints(self.q, a)
            joints, yaw = joint_fk(self.look, q)
            if np.all((joints[-1] >= WORK_LO) & (joints[-1] <= WORK_HI)):  # else the joint step is refused
                self.q = q
            joints, yaw = joint_fk(self.look, self.q)
            target = joints[-1]
        else:
            target = w.ee_pos + a[:2] * VMAX * DT
            yaw = self.yaw0 + np.clip(_wrap(w.ee_yaw + a[2] * WMAX * DT - self.yaw0), -_YAW_LIMIT, _YAW_LIMIT)
        w.control(target, yaw, close=a[3] > 0)
        self._t += 1
        success = self.is_success()
        return self._obs(), float(success), success, self._t >= self.max_steps, self._info()

    def is_success(self) -> bool:
        return bool(self._behaviour.success(self.world, self.task))

    # -- expert ------------------------------------------------------------------------
    def expert_action(self, noise: float = 1.0, rng: np.random.Generator | None = None) -> np.ndarray:
        """The scripted teleoperator's action (4,) float32 for the current state.

        noise scales human-like corruption (0 = clean). rng drives the noise (defaults to the
        env's generator). The expert is stateful (a script in phases); reset() restarts it.
        """
        if self._expert is None:
            self._expert = chain(self._behaviour.expert(self.world, self.task), retreat(self.world, self.home))
        command = np.array(next(self._expert), np.float64)
        if command[2] == 0.0:  # hold the wrist at its home heading unless the script turns it
            command[2] = np.clip(-_wrap(self.world.ee_yaw - self.yaw0) * 0.5 / (WMAX * DT), -1, 1)
        command = self._teleop(command, noise, self.np_random if rng is None else rng)
        if self.q is not None:
            command = cartesian_to_joint_action(self.look, self.q, command)
        return command.astype(np.float32)

    # -- observation -------------------------------------------------------------------
    def state(self) -> np.ndarray:
        """Proprioception (4,) float32 in [-1, 1]: ee (x, y, yaw, opening) or joints (q1, q2, q3, opening)."""
        w = self.world
        grip = 2.0 * w.opening - 1.0
        if self.q is not None:
            s = [*(_wrap(self.q) / np.pi), grip]
        else:
            s = [*((w.ee_pos - 50.0) / 50.0), _wrap(w.ee_yaw - self.yaw0) / np.pi, grip]
        return np.clip(np.asarray(s, np.float32), -1.0, 1.0)

    def render(self) -> np.ndarray:
        """The current frame, uint8 (image_size, image_size, 3)."""
        c, w = self._canvas, self.world
        c.px[:] = self._background
        draw_dynamic(c, w)
        if w.held is not None and hasattr(w.held, "kind"):
            draw_object(c, w.held, lift=2)
        draw_embodiment(c, self.embodiment, w.ee_pos, w.ee_yaw, w.opening, q=self.q)
        return c.image(self._tint)

    def _obs(self):
        image = self.render() if self.render_obs else np.zeros((1, 1, 3), np.uint8)
        return {"image": image, "state": self.state()}

    def _info(self):
        return {"instruction": self.instruction, "is_success": self.is_success(), "embodiment": self.embodiment,
                "behaviour": self.behaviour, "environment": self.environment, "step": self._t}
