"""Dreaming neural-trajectory videos (DreamGen step 2): prompts from fresh simulator resets.

Every dream starts from the first frame of a fresh reset of the robot's world (seen or unseen
environment) with an instruction (seen or new behaviour, training wording or a held-out
paraphrase). The scripted expert is run from the same reset, so each dream has a real
counterpart with the same first frame and instruction: the reference for every quality
measure and for the real-vs-dreamed gallery. Dreams never see that reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from dreamgen.collect import Job, WorldConfig, run_jobs
from dreamgen.episode import Episode
from dreamgen.frames import resize_frames
from dreamgen.world_model.evaluate import dream

SPLITS = ("seen", "new_behaviour", "unseen_environment")


@dataclass(frozen=True)
class DreamCell:
    behaviour: str
    environment: int
    split: str          # one of SPLITS, relative to the robot data the variant was fine-tuned on
    count: int


def plan_cells(trained: set[tuple[str, int]], behaviours: list[str], environments: list[int],
               n_seen: int, n_new_behaviour: int, n_unseen_environment: int) -> list[DreamCell]:
    """Cells for a variant fine-tuned on the (behaviour, environment) pairs `trained`.

    seen: each trained pair; new_behaviour: untrained behaviours in a trained environment;
    unseen_environment: trained behaviours in environments the robot data never showed.
    A count of 0 leaves that split out.
    """
    if not trained:
        raise ValueError("plan_cells: the robot data covers no (behaviour, environment) pair")
    seen_b = sorted({b for b, _ in trained}, key=behaviours.index)
    seen_e = sorted({e for _, e in trained})
    cells = [DreamCell(b, e, "seen", n_seen) for b, e in sorted(trained, key=lambda x: (behaviours.index(x[0]), x[1]))]
    cells += [DreamCell(b, seen_e[0], "new_behaviour", n_new_behaviour) for b in behaviours if b not in seen_b]
    cells += [DreamCell(b, e, "unseen_environment", n_unseen_environment)
              for b in seen_b for e in environments if e not in seen_e]
    return [c for c in cells if c.count > 0]


def reference_episodes(cells: list[DreamCell], robot: str, seed: int, world: WorldConfig, noise: float,
                       paraphrase_every: int = 0, workers: int = 1, desc: str | None = None) -> list[Episode]:
    """The scripted expert from each dream's reset: one Episode per dream, in cell order.

    Seeds are seed + 10_000 * cell + k (fresh: the collect stage's seeds start elsewhere);
    every paraphrase_every-th dream of a cell (0: none) asks with a held-out paraphrase.
    meta gains split and sim_seed.
    """
    jobs, splits = [], []
    for c, cell in enumerate(cells):
        for k in range(cell.count):
            para = bool(paraphrase_every) and k % paraphrase_every == paraphrase_every - 1
            jobs.append(Job(robot, cell.behaviour, cell.environment, seed + 10_000 * c + k, para))
            splits.append(cell.split)
    eps = list(run_jobs(jobs, world, noise, True, workers, desc))
    for ep, split in zip(eps, splits):
        ep.meta.update(split=split, sim_seed=ep.meta["seed"])
    return eps


def strided_clip(ep: Episode, num_frames: int, stride: int, size: int) -> np.ndarray:
    """The real clip a dream is compared with: frames 0, k, 2k, ... (the last held), (T, S, S, 3)."""
    idx = np.minimum(np.arange(num_frames) * stride, len(ep) - 1)
    return resize_frames(ep.frames[idx], size)


def dream_episodes(pipe, refs: list[Episode], provenance: dict, guidance_scale: float, steps: int,
                   seed: int, batch: int = 16, segments: int = 1) -> tuple[list[Episode], np.ndarray]:
    """Dream one clip per reference episode from its first frame and instruction.

    segments > 1 extends each dream autoregressively: the last frame of one segment is the
    first of the next (same instruction, next seed), so a dream of s segments has
    1 + s * (T - 1) frames and spans s times as many control steps as one clip.
    Returns (dreamed Episodes with frames (L, S, S, 3) and provenance in meta, real clips
    (N, L, S, S, 3) at the same spacing). Segment j of reference i uses seed `seed + segments * i + j`.
    """
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")
    spec = pipe.clip_spec
    length = 1 + segments * (spec.num_frames - 1)
    real = np.stack([strided_clip(e, length, spec.frame_stride, spec.image_size) for e in refs])
    tasks = [e.task for e in refs]
    parts, first = [real[:, :1]], real[:, 0]
    for j in range(segments):
        seeds = [seed + segments * i + j for i in range(len(refs))]
        clip = dream(pipe, first, tasks, seeds, guidance_scale, steps, batch=batch)
        parts.append(clip[:, 1:])
        first = clip[:, -1]
    clips = np.concatenate(parts, axis=1)
    out = []
    for i, (ep, clip) in enumerate(zip(refs, clips)):
        meta = dict(embodiment=ep.meta["embodiment"], behaviour=ep.meta["behaviour"],
                    environment=ep.meta["environment"], split=ep.meta["split"], sim_seed=ep.meta["sim_seed"],
                    paraphrase=ep.meta.get("paraphrase", False), expert_success=ep.meta["success"],
                    prompt=ep.task, seed=seed + segments * i, segments=segments, guidance_scale=guidance_scale,
                    inference_steps=steps, **provenance)
        out.append(Episode(frames=clip, task=ep.task, meta=meta))
    return out, real


def dream_fps(control_fps: int, stride: int) -> float | Fraction:
    """Frame rate of a dreamed video: frames `stride` control steps apart (10 Hz, 4 -> 2.5 fps)."""
    f = Fraction(control_fps, stride)
    return int(f) if f.denominator == 1 else float(f)
