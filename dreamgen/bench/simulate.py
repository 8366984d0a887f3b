"""Labelled judge data from the simulator: frames at the judges' size with the true world state.

Each episode is played exactly as the teleoperation datasets were (the noisy scripted expert,
`run_expert_episode`'s loop), but every frame also records `state.world_state`, the
simulator's success flag, and optionally a physics corruption applied to the world mid-episode
(an object teleported, recoloured or made to vanish): the PA judge's positive examples, made
by the same renderer as the clean ones so that only the physics differs.
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np
import pymunk
from tqdm import tqdm

from dreamgen.collect import WorldConfig, _env
from dreamgen.frames import resize_frames
from dreamgen.world.language import COLOURS

from . import state

CORRUPTIONS = ("teleport", "recolour", "vanish", "interpenetrate")
# Behaviours whose scenes hold solid objects that a corruption can act on.
OBJECT_BEHAVIOURS = ("pick_place", "push", "rotate", "stack", "sort")


def corruptible(kind: str) -> tuple[str, ...]:
    """The behaviours a corruption can act on: interpenetration needs two solid objects (a push
    scene has one)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; valid: {CORRUPTIONS}")
    return tuple(b for b in OBJECT_BEHAVIOURS if kind != "interpenetrate" or b != "push")


@dataclass(frozen=True)
class SimJob:
    behaviour: str
    environment: int
    seed: int
    noise: float = 1.0
    corruption: str = ""      # "" or one of CORRUPTIONS
    corrupt_step: int = 8     # the first frame that shows the corrupted world
    embodiment: str = "robot"


@dataclass
class LabelledEpisode:
    """frames (T, S, S, 3) uint8; states, masks (T, D) float32; success (T,) bool."""

    frames: np.ndarray
    states: np.ndarray
    masks: np.ndarray
    success: np.ndarray
    task: str
    job: SimJob
    corrupted_at: int = -1  # the first frame that shows the corruption (-1: none happened)

    def __len__(self) -> int:
        return len(self.frames)


class NotNow(Exception):
    """A corruption cannot act on the world as it is this step (it waits for a later one)."""


def corrupt(world, kind: str, rng: np.random.Generator) -> None:
    """Break physics on purpose: teleport, recolour or remove one object not held by the ee, or
    sink it into another object (interpenetrate: it stops colliding and sits 2-5 units from the
    other's centre, where two solid blocks cannot be)."""
    objs = [o for o in world.objects if o.kind != "crumb" and o is not world.held and o.support is None]
    if not objs:
        raise NotNow(f"{kind}: no free solid object now")
    o = objs[int(rng.integers(len(objs)))]
    if kind == "interpenetrate":
        others = [q for q in objs if q is not o]
        if not others:
            raise NotNow("interpenetrate: fewer than two free solid objects now")
        q = others[int(rng.integers(len(others)))]
        a = rng.uniform(0, 2 * np.pi)
        o.shape.filter = pymunk.ShapeFilter(categories=0, mask=0)  # collides with nothing
        o.body.position, o.body.velocity = tuple(q.pos + rng.uniform(2.0, 5.0) * np.array([np.cos(a), np.sin(a)])), (0.0, 0.0)
        return
    if kind == "teleport":
        for _ in range(100):  # far enough that no 4-step motion could explain it
            p = rng.uniform(20.0, 80.0, 2)
            if np.hypot(*(p - o.pos)) > 30.0 and all(np.hypot(*(p - q.pos)) > 14.0 for q in world.objects if q is not o):
                break
        o.body.position, o.body.velocity = tuple(p), (0.0, 0.0)
    elif kind == "recolour":
        used = {q.colour for q in world.objects} | {z.colour for z in world.zones}
        free = [c for c in COLOURS if c not in used]
        o.colour = free[int(rng.integers(len(free)))]
        o.rgb = COLOURS[o.colour]
    elif kind == "vanish":
        world.objects.remove(o)  # undrawn and untracked; its body stays, as a ghost would
    else:
        raise ValueError(f"unknown corruption {kind!r}; valid: {CORRUPTIONS}")


def simulate(world: WorldConfig, job: SimJob, image_size: int, extra_steps: int = 2) -> LabelledEpisode:
    """Play one expert episode (stopping `extra_steps` after success, as the datasets do)."""
    if job.corruption and job.behaviour not in OBJECT_BEHAVIOURS:
        raise ValueError(f"corruption needs an object scene ({OBJECT_BEHAVIOURS}), got {job.behaviour}")
    env = _env(world)
    obs, info = env.reset(seed=job.seed, options=dict(embodiment=job.embodiment, behaviour=job.behaviour,
                                                      environment=job.environment))
    rng = np.random.default_rng([job.seed, 7919])        # the datasets' teleop-noise stream
    crng = np.random.default_rng([job.seed, 31337])      # the corruption's own stream
    frames, states, masks, success = [obs["image"]], [], [], [env.is_success()]
    s, m = state.world_state(env)
    states.append(s), masks.append(m)
    left, corrupted_at = extra_steps, -1
    for t in range(1, world.max_steps + 1):
        action = env.expert_action(job.noise, rng)
        if job.corruption and t >= job.corrupt_step and corrupted_at < 0:
            try:  # the first step from corrupt_step on where the corruption can act
                corrupt(env.world, job.corruption, crng)
                corrupted_at = t
            except NotNow:
                pass
        obs, _, _, truncated, info = env.step(action)
        frames.append(obs["image"])
        s, m = state.world_state(env)
        states.append(s), masks.append(m), success.append(info["is_success"])
        if any(success):
            left -= 1
        if truncated or left < 0:
            break
    return LabelledEpisode(resize_frames(np.stack(frames), image_size), np.stack(states), np.stack(masks),
                           np.array(success), info["instruction"], job, corrupted_at)


def _play(args):
    return simulate(*args)


def simulate_many(jobs: list[SimJob], world: WorldConfig, image_size: int, workers: int = 1,
                  desc: str | None = None) -> list[LabelledEpisode]:
    """Play jobs in `workers` processes; results in job order (independent of `workers`)."""
    args = [(world, j, image_size) for j in jobs]
    bar = dict(total=len(jobs), desc=desc, disable=desc is None, mininterval=10, ascii=True)
    if workers <= 1:
        return list(tqdm(map(_play, args), **bar))
    with mp.get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(_play, args, chunksize=4), **bar))


def make_jobs(n_per_behaviour: int, behaviours, n_environments: int, seed: int, noise: float = 1.0,
              corruption: str = "", corrupt_steps=(4, 24)) -> list[SimJob]:
    """n episodes per behaviour, environments taken in turn; seeds are seed + 1000 * b + k.

    A corruption hits at a random step in [corrupt_steps), so a clip of the episode's first
    29 steps (8 frames, 4 apart) shows it.
    """
    rng = np.random.default_rng(seed)
    return [SimJob(b, k % n_environments, seed + 1000 * i + k, noise, corruption,
                   int(rng.integers(*corrupt_steps)) if corruption else 8)
            for i, b in enumerate(behaviours) for k in range(n_per_behaviour)]


def clip_indices(length: int, num_frames: int, stride: int, start: int = 0) -> np.ndarray:
    """(num_frames,) frame indices start, start + stride, ...; past the end, the last frame.

    The world model's clip convention (world_model/clips.py), so judge clips match dreams.
    """
    return np.minimum(start + stride * np.arange(num_frames), length - 1)
