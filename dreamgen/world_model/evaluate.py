"""Measuring dreamed clips against real ones: pixel error, the copy-first-frame baseline, motion.

All clips are (N, T, S, S, 3) uint8 with the same first frame as their real counterpart.
"""
from __future__ import annotations

import numpy as np
import torch


def dream(pipe, images: np.ndarray, prompts: list[str], seeds: list[int], guidance_scale: float,
          steps: int, batch: int = 16) -> np.ndarray:
    """Dream one clip per (image (N, S, S, 3), prompt, seed): (N, T, S, S, 3) uint8, in batches."""
    out = []
    for i in range(0, len(images), batch):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i:i + batch]]
        out.append(pipe(images[i:i + batch], prompts[i:i + batch], guidance_scale=guidance_scale,
                        num_inference_steps=steps, generator=gens).frames)
    return np.concatenate(out)


def per_frame_mae(pred: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Mean absolute pixel error (0-255) of each frame, averaged over clips: (T,)."""
    if pred.shape != real.shape:
        raise ValueError(f"pred {pred.shape} and real {real.shape} clips differ in shape")
    return np.abs(pred.astype(np.float32) - real.astype(np.float32)).mean(axis=(0, 2, 3, 4))


def copy_first(real: np.ndarray) -> np.ndarray:
    """The do-nothing baseline: the first frame held for the whole clip."""
    return np.repeat(real[:, :1], real.shape[1], axis=1)


def change_centroid(clips: np.ndarray, thresh: float = 40.0) -> np.ndarray:
    """Where the clip changed, first to last frame: (N, 2) (row, col) weighted centroid; NaN if nothing did."""
    diff = np.abs(clips[:, -1].astype(np.float32) - clips[:, 0].astype(np.float32)).sum(-1)  # (N, S, S)
    w = np.where(diff > thresh, diff, 0.0)
    total = w.sum(axis=(1, 2))
    s = clips.shape[2]
    rr, cc = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([(w * rr).sum((1, 2)) / total, (w * cc).sum((1, 2)) / total], axis=1)


def motion_check(pred: np.ndarray, real: np.ndarray, radius_frac: float = 0.125, seed: int = 0) -> dict:
    """Does the change go where the real one goes? Distances between change centroids.

    hit: the dreamed change's centroid lies within radius_frac * S of the real one's.
    shuffled: the same against the real change of another clip (chance level).
    moved_frac: fraction of dreamed clips that change at all (a frozen clip cannot hit).
    """
    s = real.shape[2]
    cp, cr = change_centroid(pred), change_centroid(real)
    perm = np.random.default_rng(seed).permutation(len(real))
    perm = np.where(perm == np.arange(len(real)), (perm + 1) % len(real), perm)
    d = np.linalg.norm(cp - cr, axis=1)
    d_shuf = np.linalg.norm(cp - cr[perm], axis=1)
    valid = ~np.isnan(cr[:, 0])
    r = radius_frac * s
    hit = lambda dist: float(np.mean(np.nan_to_num(dist[valid], nan=np.inf) <= r)) if valid.any() else float("nan")
    return dict(hit=hit(d), hit_shuffled=hit(d_shuf), radius_px=r,
                moved_frac=float(np.mean(~np.isnan(cp[:, 0]))),
                dist_px=float(np.nanmean(d)) if np.any(~np.isnan(d)) else float("nan"))


def continuation_report(pred: np.ndarray, real: np.ndarray) -> dict:
    """Pixel MAE of frames 1..T-1 for the dream and for copy-first-frame, per frame and overall."""
    m_dream, m_copy = per_frame_mae(pred, real), per_frame_mae(copy_first(real), real)
    return dict(mae_dream=float(m_dream[1:].mean()), mae_copy_first=float(m_copy[1:].mean()),
                mae_dream_per_frame=m_dream.tolist(), mae_copy_per_frame=m_copy.tolist(),
                **{f"motion_{k}": v for k, v in motion_check(pred, real).items()})
