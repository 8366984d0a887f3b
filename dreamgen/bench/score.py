"""Scoring dreamed videos: `score_videos` over a LeRobot dataset or in-memory clips, and the ranking table."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from . import nets


def _check_clip(frames, where: str, image_size: int, num_frames: int | None) -> np.ndarray:
    try:
        nets.check_frames(frames, image_size)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if frames.ndim != 4 or len(frames) < 2:
        raise ValueError(f"{where}: a video is (T >= 2, {image_size}, {image_size}, 3), got {frames.shape}")
    if num_frames is not None and len(frames) != num_frames:
        raise ValueError(f"{where}: {len(frames)} frames, the judges expect {num_frames} "
                         f"(dreams of the world model's clip length)")
    return frames


def _check_fps(fps, expected: float | None, where: str) -> None:
    if expected is not None and fps is not None and abs(float(fps) - expected) > 1e-6:
        raise ValueError(f"{where}: {fps} frames per second, the judges expect {expected} (frames "
                         f"{10 / expected:g} control steps apart); subsample the video to that rate first")


def _from_dataset(root, image_size, num_frames, fps):
    from dreamgen import data

    root = Path(root)
    try:
        ds = data.Dataset(root)
    except Exception as err:  # missing or broken metadata
        raise ValueError(f"{root}: not a readable LeRobot dataset ({type(err).__name__}: {err})") from None
    _check_fps(ds.fps, fps, str(root))
    for i in range(ds.num_episodes):
        try:
            ep = ds.episode(i)
        except Exception as err:
            raise ValueError(f"{root} episode {i}: unreadable ({type(err).__name__}: {err})") from None
        yield _check_clip(ep.frames, f"{root} episode {i}", image_size, num_frames), ep.task, \
            dict(ep.meta, dataset=str(root), episode=i)


def score_videos(source, judges, num_frames: int | None = None, fps: float | None = None,
                 vlm=None) -> pd.DataFrame:
    """Judge every video of `source`: a LeRobot dataset folder, or an iterable of
    (frames (T, S, S, 3) uint8, instruction, meta) with meta["behaviour"] (and optionally
    "split", "fps").

    Returns one row per video: dataset, episode, behaviour, split, instruction, if_state (0/1),
    if_classifier and if_success (probabilities), pa and the per-rule violation counts. num_frames / fps, when
    given, are enforced (a dream of another length or rate gets a ValueError naming it), as is
    the judges' frame size. `vlm` (a vlm.VLMJudge), when given, adds its if_vlm and pa_vlm columns.
    """
    size = judges.image_size
    if isinstance(source, (str, Path)):
        items = _from_dataset(source, size, num_frames, fps)
    else:
        items = ((_check_clip(f, f"video {k}", size, num_frames), t, dict(m, episode=m.get("episode", k)))
                 for k, (f, t, m) in enumerate(source))
    rows, clips = [], []
    for frames, task, meta in items:
        where = f"{meta.get('dataset', 'video')} {meta['episode']}"
        _check_fps(meta.get("fps"), fps, where)
        if "behaviour" not in meta:
            raise ValueError(f"{where}: meta has no 'behaviour'; the IF predicate needs it")
        rows.append(dict(dataset=meta.get("dataset", ""), episode=meta["episode"], behaviour=meta["behaviour"],
                         split=meta.get("split", ""), instruction=task))
        clips.append(frames)
    if not rows:
        raise ValueError(f"{source}: no videos to score")
    if len({c.shape for c in clips}) > 1:
        raise ValueError(f"videos differ in shape ({sorted({c.shape for c in clips})}); give clips of one length")
    scores = judges.judge(np.stack(clips), [r["behaviour"] for r in rows], [r["instruction"] for r in rows])
    if vlm is not None:
        scores = [s | vlm.judge(c, r["instruction"]) for s, c, r in zip(scores, clips, rows)]
    return pd.DataFrame([r | s for r, s in zip(rows, scores)])


def ranking_table(scored: Iterable[pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
    """Mean IF (both judges) and PA per dataset and split, the layout of the paper's Table 2."""
    df = pd.concat(scored) if not isinstance(scored, pd.DataFrame) else scored
    extra = {k: (k, "mean") for k in ("if_vlm", "pa_vlm") if k in df}
    ifs = {k: (k, "mean") for k in ("if_state", "if_classifier", "if_success") if k in df}
    g = df.groupby(["dataset", "split"])
    return g.agg(videos=("pa", "size"), **ifs, pa=("pa", "mean"), **extra).reset_index()
