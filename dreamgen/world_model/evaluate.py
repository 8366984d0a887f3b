"""Measuring dreamed clips against real ones: pixel error, the copy-first-frame baseline, motion.

All clips are (N, T, S, S, 3) uint8 with the same first frame as their real counterpart.
"""
from __future__ import annotations

import numpy as np
import torch


def dream(pipe, images: np.ndarray, prompts: list[str], seeds: list[int], guidance_scale: float,
          steps: int, batch: int = 16, eta: float = 0.0) -> np.ndarray:
    """Dream one clip per (image (N, S, S, 3), prompt, seed): (N, T, S, S, 3) uint8, in batches.
    eta: the sampler's stochasticity (DreamGenVideoPipeline.__call__).

    pipe: a DreamGenVideoPipeline, or the paper profile's wan_stage.WanDreamer (its own
    scheduler, one clip per call; eta must be 0)."""
    from dreamgen.world_model.wan_stage import WanDreamer

    if isinstance(pipe, WanDreamer):
        if eta:
            raise ValueError(f"eta={eta}: the WAN path samples with its pipeline's own scheduler; use eta 0")
        return pipe.dream(images, prompts, seeds, guidance_scale, steps)
    out = []
    for i in range(0, len(images), batch):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i:i + batch]]
        out.append(pipe(images[i:i + batch], prompts[i:i + batch], guidance_scale=guidance_scale,
                        num_inference_steps=steps, generator=gens, eta=eta).frames)
    return np.concatenate(out)


def denoising_trajectory(pipe, image: np.ndarray, prompts: list[str], seed: int, guidance_scale: float,
                         steps: int, eta: float = 0.0) -> np.ndarray:
    """The clean clip the model believes in at each sampling step: (steps, N, T, S, S, 3) uint8.

    Shows where a dream goes wrong: whether the first (pure-noise) estimate already lacks a part
    of the scene, or whether it is there and lost on the way down.
    """
    est = []

    def keep(p, i, t, state):
        x0 = state["x0"] + p.encode_frames(image[:, None])[:, :, :1] if p.config.residual else state["x0"]
        est.append(p.decode_latents(x0))

    gens = [torch.Generator().manual_seed(int(seed) + i) for i in range(len(image))]
    pipe(image, prompts, guidance_scale=guidance_scale, num_inference_steps=steps, generator=gens, eta=eta,
         callback_on_step_end=keep)
    return np.stack(est)


def retake_clips(bank, world, noise_stream: int, workers: int = 1) -> np.ndarray:
    """First clips (N, T, S, S, 3) uint8 of a second take of each episode of `bank` (a ClipBank of
    recorded robot episodes): the expert replayed from the same reset with another
    teleoperation-noise stream (dreamgen.collect.retake), cut and resized as bank.clip(i).

    Scored against the recorded clips exactly as a dream is, it is what another plausible future
    of the same reset scores: the ceiling a dream can be held to. world: a collect.WorldConfig."""
    from dreamgen.collect import retake
    from .clips import ClipBank, resize_frames

    takes = retake(list(bank.meta), world, noise_stream, workers)
    moved = [i for i, (e, task) in enumerate(zip(takes, bank.tasks)) if e.task != task]
    if moved:
        raise ValueError(f"retake_clips: episodes {moved} came back with another instruction; the recorded "
                         "seeds do not reproduce their resets (a different world spec?)")
    again = ClipBank(bank.spec, [resize_frames(e.frames, bank.spec.image_size) for e in takes],
                     [e.task for e in takes], [e.meta for e in takes])
    return np.stack([again.clip(i) for i in range(len(again))])


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


STILL = 0.05  # MAE (0-255) below which two real frames count as the same picture


def frames_in_place(pred: np.ndarray, real: np.ndarray, still: float = STILL) -> tuple[float, int]:
    """Does the dream keep time? (share, frames counted) over dreamed frames 1..T-1 of clips (N, T, S, S, 3).

    A frame is in place when, of all the real frames of its own clip, its own is the nearest (MAE).
    Real frames that another real frame of the clip matches within `still` (the clip stands still
    there) are left out: no dream can be told in or out of place at them. Copying the first frame
    scores 0; a dream that jumps to the end state and stays there scores about 1/(T-1).
    """
    if pred.shape != real.shape:
        raise ValueError(f"pred {pred.shape} and real {real.shape} clips differ in shape")
    hits = []
    for p, r in zip(pred.astype(np.float32), real.astype(np.float32)):
        d = np.abs(p[1:, None] - r[None]).mean(axis=(2, 3, 4))  # (T-1, T): dreamed frame k vs real frame j
        rr = np.abs(r[:, None] - r[None]).mean(axis=(2, 3, 4))  # (T, T) real vs real
        np.fill_diagonal(rr, np.inf)
        for k in range(1, len(r)):
            if rr[k].min() > still:
                hits.append(d[k - 1, k] <= d[k - 1].min() + 1e-6)
    return (float(np.mean(hits)) if hits else float("nan")), len(hits)


def moving_mae(pred: np.ndarray, real: np.ndarray, moving: float = 13.0) -> float:
    """MAE (0-255) over the pixels of frames 1..T-1 that differ from the real first frame by more than
    `moving` (the robot and what it moves, about 9% of the pixels): where a dream can be wrong about
    the behaviour. Copying the first frame is wrong by at least `moving` on every one of them."""
    if pred.shape != real.shape:
        raise ValueError(f"pred {pred.shape} and real {real.shape} clips differ in shape")
    r = real.astype(np.float32)
    mask = np.abs(r[:, 1:] - r[:, :1]).max(-1) > moving  # (N, T-1, S, S)
    if not mask.any():
        return float("nan")
    return float(np.abs(pred[:, 1:].astype(np.float32) - r[:, 1:]).mean(-1)[mask].mean())


def _colour_match(a: np.ndarray, b: np.ndarray, tol: float) -> float:
    """Fraction of the pixels of image a (S, S, 3) whose colour lies within tol of some colour of b."""
    pal = np.unique(b.reshape(-1, 3), axis=0).astype(np.int16)
    pix, inv = np.unique(a.reshape(-1, 3), axis=0, return_inverse=True)
    d = np.abs(pix.astype(np.int16)[:, None] - pal[None]).max(-1).min(1)
    return float(np.mean(d[inv.ravel()] <= tol))


def look_consistency(pred: np.ndarray, real: np.ndarray, tol: float = 16.0) -> np.ndarray:
    """Does the dream keep the world's look? Per clip (N,), averaged over frames 1..T-1:
    the mean of precision (dreamed pixels whose colour, within `tol` on 0-255, is in the real
    frame) and recall (real pixels whose colour is in the dreamed frame).

    A real clip scores 1. Invented or smeared colours lower precision; a robot or object that
    dissolves into the table removes its colours from the dream and lowers recall. Colour only,
    so it needs no model: this flat-colour world makes colour a fair proxy for "what is there".
    """
    if pred.shape != real.shape:
        raise ValueError(f"pred {pred.shape} and real {real.shape} clips differ in shape")
    out = np.empty(len(pred))
    for i in range(len(pred)):
        scores = [(_colour_match(pred[i, t], real[i, t], tol) + _colour_match(real[i, t], pred[i, t], tol)) / 2
                  for t in range(1, pred.shape[1])]
        out[i] = float(np.mean(scores))
    return out


@torch.no_grad()
def pair_features(encoder, clips: np.ndarray, batch: int = 256) -> np.ndarray:
    """Features of every consecutive frame pair of clips (N, T, S, S, 3) by a two-frame encoder
    (the IDM's: frames (B, 2, 3, S, S) in [0, 1] -> (B, D)): (N * (T - 1), D)."""
    from dreamgen.actions.idm import to_tensor

    pairs = np.stack([clips[:, :-1], clips[:, 1:]], 2).reshape(-1, 2, *clips.shape[2:])
    return np.concatenate([encoder(to_tensor(pairs[i:i + batch])).numpy() for i in range(0, len(pairs), batch)])


def frechet_distance(a: np.ndarray, b: np.ndarray, ridge: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, D) and b (M, D).

    ridge: added to both covariances' diagonals. With fewer samples than feature dimensions (a
    few held-out clips) the covariances are singular and the matrix square root unstable; the
    ridge changes the distance by about 2 * D * ridge, far below what we compare.
    """
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    eye = ridge * np.eye(a.shape[1])
    ca, cb = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    covmean = linalg.sqrtm(ca @ cb)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


def quality_report(pred: np.ndarray, real: np.ndarray, encoder=None) -> dict:
    """Everything we measure of dreams against their real counterparts (same first frame, instruction).

    mae_*: pixel error of frames 1..T-1 (dream, copy-first baseline); motion_*: does the change go
    where the real one goes; frames_in_place: does the dream keep time (and over how many frames);
    mae_moving*: pixel error where the real clip moves (dream, copy-first baseline);
    look: look_consistency mean; fid_idm: Frechet distance of IDM pair
    features (the network that will label these dreams) between dreamed and real clips.
    """
    rep = {k: v for k, v in continuation_report(pred, real).items() if not k.endswith("per_frame")}
    rep["frames_in_place"], rep["frames_in_place_frames"] = frames_in_place(pred, real)
    rep["mae_moving"], rep["mae_moving_copy_first"] = moving_mae(pred, real), moving_mae(copy_first(real), real)
    rep["look"] = float(look_consistency(pred, real).mean())
    rep["look_copy_first"] = float(look_consistency(copy_first(real), real).mean())
    if encoder is not None:
        fr, fp = pair_features(encoder, real), pair_features(encoder, pred)
        rep["fid_idm"] = frechet_distance(fp, fr)
        rep["fid_idm_copy_first"] = frechet_distance(pair_features(encoder, copy_first(real)), fr)
    rep["clips"] = int(len(pred))
    return rep
