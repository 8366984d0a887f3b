"""Teleoperation noise and the expert-episode runner."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..episode import Episode


@dataclass
class TeleopNoise:
    """Human-like corruption of clean Cartesian commands (vx, vy, wz, grip).

    Per unit of `noise`: Ornstein-Uhlenbeck jitter (smooth, correlated over ~4 steps),
    a gain boost plus a first-order lag (a slight overshoot at every stop), and rare
    1-2 step hesitation pauses. The gripper channel is left clean.
    """

    ou: np.ndarray = field(default_factory=lambda: np.zeros(3))
    prev: np.ndarray = field(default_factory=lambda: np.zeros(3))
    pause: int = 0

    def __call__(self, command: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
        if noise <= 0:
            return command
        self.ou += -0.25 * self.ou + noise * np.array([0.10, 0.10, 0.04]) * rng.standard_normal(3)
        lag = min(0.6, 0.3 * noise)
        v = lag * self.prev + (1 - lag) * command[:3] * (1 + 0.2 * noise)
        if self.pause > 0:
            self.pause, v = self.pause - 1, np.zeros(3)
        elif rng.random() < 0.03 * noise:
            self.pause = int(rng.integers(1, 3))
        self.prev = v
        return np.append(np.clip(v + self.ou, -1, 1), command[3])


NOISE_STREAM = 7919  # the teleoperation-noise stream of recorded episodes (seeded apart from the layout)


def run_expert_episode(env, seed: int, embodiment: str, behaviour: str, environment: int, noise: float = 1.0,
                       paraphrase: bool = False, render: bool = True, extra_steps: int = 2,
                       noise_stream: int = NOISE_STREAM) -> Episode:
    """Reset with these options, run the noisy expert until `extra_steps` after the first success
    (so the result stays in view) or max_steps, and return the Episode.

    noise_stream: another value replays the same reset (layout, instruction) with other
    teleoperation noise: another take of the same demonstration.

    frames (T, H, W, 3) uint8, or (T, 1, 1, 3) zeros when render=False (fast success tables);
    states (T, 4); actions (T, 4) with a zero no-op last row; T = steps + 1.
    """
    base = env.unwrapped
    was = base.render_obs
    base.render_obs = render
    try:
        obs, info = env.reset(seed=seed, options=dict(embodiment=embodiment, behaviour=behaviour,
                                                      environment=environment, paraphrase=paraphrase))
        rng = np.random.default_rng([int(seed), int(noise_stream)])  # noise stream, separate from the layout
        frames, states, actions = [obs["image"]], [obs["state"]], []
        success, left = False, extra_steps
        for _ in range(base.max_steps):
            action = base.expert_action(noise, rng)
            obs, _, _, truncated, info = env.step(action)
            frames.append(obs["image"])
            states.append(obs["state"])
            actions.append(action)
            success |= info["is_success"]
            if success:
                left -= 1
            if truncated or left < 0:
                break
    finally:
        base.render_obs = was
    actions.append(np.zeros_like(actions[0]))
    return Episode(frames=np.stack(frames), task=info["instruction"], states=np.stack(states).astype(np.float32),
                   actions=np.stack(actions).astype(np.float32),
                   meta=dict(embodiment=embodiment, behaviour=behaviour, environment=int(environment), seed=int(seed),
                             success=bool(success), steps=len(actions) - 1, noise=float(noise),
                             paraphrase=bool(paraphrase)))
