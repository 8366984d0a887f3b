"""The one in-memory record of an episode that the world produces and the datasets store."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Episode:
    """One episode, real or neural.

    frames:  (T, H, W, 3) uint8, frame t is the observation before action t.
    states:  (T, S) float32 proprioception, or None (web videos have none).
    actions: (T, A) float32, or None (web videos have none). The last row is the
             no-op that follows the final frame, so every frame has an action.
    task:    the language instruction.
    meta:    provenance and labels (embodiment, behaviour, environment, seed,
             success, ...); JSON-serialisable values only.
    """

    frames: np.ndarray
    task: str
    states: np.ndarray | None = None
    actions: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be (T,H,W,3) uint8, got {f.shape} {f.dtype}")
        for name in ("states", "actions"):
            a = getattr(self, name)
            if a is not None and (a.ndim != 2 or len(a) != len(f)):
                raise ValueError(f"{name} must be (T, D) with T={len(f)} frames, got {a.shape}")

    def __len__(self) -> int:
        return len(self.frames)
