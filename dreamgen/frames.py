"""Frame utilities shared by every model that learns from video (world model, IDM, policies, judges)."""
from __future__ import annotations

import numpy as np


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Area-downsample (..., H, W, 3) uint8 frames to (..., size, size, 3); H must be a multiple of size."""
    frames = np.asarray(frames)
    h, w = frames.shape[-3:-1]
    if frames.dtype != np.uint8 or frames.shape[-1] != 3 or h != w:
        raise ValueError(f"frames must be (..., H, H, 3) uint8, got {frames.shape} {frames.dtype}")
    if h == size:
        return frames
    if h % size:
        raise ValueError(f"cannot resize {h}x{w} frames to {size}x{size}: {h} is not a multiple of {size}")
    f = h // size
    x = frames.reshape(*frames.shape[:-3], size, f, size, f, 3).astype(np.float32).mean(axis=(-4, -2))
    return np.round(x).astype(np.uint8)
