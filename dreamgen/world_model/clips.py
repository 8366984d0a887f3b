"""Training clips for the video world model: the clip spec shared with the IDM, and a clip bank.

A clip is `num_frames` frames spaced `frame_stride` control steps apart (10 Hz control), so
the IDM, which labels pairs of frames `frame_stride` steps apart, can label every dreamed
clip. Episodes shorter than the clip's span hold their last frame.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tqdm import tqdm  # plain text bars: notebooks here have no widget front end

from dreamgen.frames import resize_frames  # noqa: F401  (re-exported: the world model's input size)


@dataclass(frozen=True)
class ClipSpec:
    num_frames: int     # frames per clip, the first one being the condition
    frame_stride: int   # control steps between consecutive clip frames
    image_size: int     # square frame size the model sees (pixels)

    def __post_init__(self) -> None:
        if self.num_frames < 2 or self.frame_stride < 1 or self.image_size < 8:
            raise ValueError(f"ClipSpec: need num_frames >= 2, frame_stride >= 1, image_size >= 8; got {self}")

    @property
    def span(self) -> int:
        """Control steps from the first to the last frame of a clip."""
        return (self.num_frames - 1) * self.frame_stride

    def to_dict(self) -> dict:
        return asdict(self)


def clip_indices(length: int, spec: ClipSpec, start: int = 0) -> np.ndarray:
    """Frame indices (num_frames,) of the clip starting at `start`; past the end, the last frame."""
    return np.minimum(start + spec.frame_stride * np.arange(spec.num_frames), length - 1)


@dataclass
class ClipBank:
    """Whole episodes held in memory at the model's size, from which clips are cut.

    episodes: list of (T_i, S, S, 3) uint8; tasks: instruction of each; meta: episode meta.
    """
    spec: ClipSpec
    episodes: list
    tasks: list
    meta: list

    def __len__(self) -> int:
        return len(self.episodes)

    def clip(self, i: int, start: int = 0) -> np.ndarray:
        """(num_frames, S, S, 3) uint8 clip of episode i."""
        ep = self.episodes[i]
        return ep[clip_indices(len(ep), self.spec, start)]

    def max_start(self, i: int) -> int:
        return max(0, len(self.episodes[i]) - 1 - self.spec.span)

    def subset(self, idx) -> "ClipBank":
        idx = list(idx)
        return ClipBank(self.spec, [self.episodes[i] for i in idx], [self.tasks[i] for i in idx],
                        [self.meta[i] for i in idx])


def load_bank(root: str | Path, spec: ClipSpec, episodes=None, desc: str = "load") -> ClipBank:
    """Decode a LeRobot dataset's episodes (all, or the given indices) at the spec's size."""
    from dreamgen.data import Dataset

    ds = Dataset(root)
    idx = range(ds.num_episodes) if episodes is None else episodes
    frames, tasks, meta = [], [], []
    for i in tqdm(idx, desc=desc, mininterval=10, ascii=True):
        ep = ds.episode(i)
        frames.append(resize_frames(ep.frames, spec.image_size))
        tasks.append(ep.task)
        meta.append(dict(ep.meta, episode_index=int(i)))
    if not frames:
        raise ValueError(f"{root}: no episodes to load")
    return ClipBank(spec, frames, tasks, meta)


def split_holdout(n: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) episode indices: every `every`-th episode is held out (a fixed, spread split)."""
    idx = np.arange(n)
    held = idx % every == every // 2
    return idx[~held], idx[held]


def sample_clips(bank: ClipBank, rng: np.random.Generator, batch: int, p_start0: float = 0.5):
    """A random batch: clips (B, num_frames, S, S, 3) uint8 and the episode index of each.

    Half the clips start at the episode's first frame, as dreamed clips do (they start from a
    simulator reset); the rest start anywhere, which multiplies the distinct clips.
    """
    eps = rng.integers(0, len(bank), batch)
    clips = []
    for i in eps:
        start = 0 if rng.random() < p_start0 else int(rng.integers(0, bank.max_start(i) + 1))
        clips.append(bank.clip(i, start))
    return np.stack(clips), eps
