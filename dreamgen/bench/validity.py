"""Judge validity, the analogue of the paper's judge-vs-human check: judges against known truth.

Truth comes from the simulator (the success flag at a clip's last frame; whether physics was
corrupted) or from a dataset's records. Test clips are made the way dreams are: 8 frames 4
control steps apart from an episode's first frame, at 32x32. Kinds of clips:

  clean     held-out expert episodes: IF truth = success at the last frame, PA truth = valid
  real      held-out episodes of a real dataset: IF truth = recorded success when the clip
            reaches the episode's end, PA truth = valid
  swapped   a clean clip judged against another behaviour's instruction: IF truth = 0
  shuffled  a clean clip with its frames after the first permuted: PA truth = broken
  teleport, recolour, vanish   physics corrupted in the simulator mid-clip: PA truth = broken
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dreamgen.frames import resize_frames

from .simulate import LabelledEpisode, clip_indices


def auc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); nan without both classes."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    return float(greater / (len(pos) * len(neg)))


def binary_metrics(pred, truth) -> dict:
    """accuracy, balanced accuracy (mean of the two class recalls), n and the positive rate."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    recalls = [float((p[t == c] == c).mean()) for c in (True, False) if (t == c).any()]
    return dict(accuracy=float((p == t).mean()) if len(t) else float("nan"),
                balanced_accuracy=float(np.mean(recalls)) if recalls else float("nan"),
                n=int(len(t)), positive_rate=float(t.mean()) if len(t) else float("nan"))


def _row(clip, ep_task, behaviour, kind, if_truth, pa_truth, source):
    return dict(clip=clip, instruction=ep_task, behaviour=behaviour, kind=kind, if_truth=if_truth,
                pa_truth=pa_truth, source=source)


def sim_clips(clean: list[LabelledEpisode], corrupted: list[LabelledEpisode], num_frames: int, stride: int,
              seed: int = 0) -> list[dict]:
    """Clean, swapped, shuffled and corrupted clips (dicts with clip and truths) from sim episodes."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, e in enumerate(clean):
        i = clip_indices(len(e), num_frames, stride)
        clip = e.frames[i]
        rows.append(_row(clip, e.task, e.job.behaviour, "clean", float(e.success[i[-1]]), 1.0, "sim"))
        other = [o for o in clean if o.job.behaviour != e.job.behaviour]
        o = other[int(rng.integers(len(other)))]
        rows.append(_row(clip, o.task, o.job.behaviour, "swapped", 0.0, 1.0, "sim"))
        perm = np.concatenate([[0], 1 + rng.permutation(num_frames - 1)])
        if len(np.unique(i)) > 2 and not np.array_equal(clip[perm], clip):
            rows.append(_row(clip[perm], e.task, e.job.behaviour, "shuffled", np.nan, 0.0, "sim"))
    for e in corrupted:
        i = clip_indices(len(e), num_frames, stride)
        if i[-1] < e.job.corrupt_step:  # the episode ended before the corruption: nothing to see
            continue
        rows.append(_row(e.frames[i], e.task, e.job.behaviour, e.job.corruption, float(e.success[i[-1]]), 0.0, "sim"))
    return rows


def real_clips(dataset, indices, num_frames: int, stride: int, image_size: int) -> list[dict]:
    """Clips from the first frame of real dataset episodes; IF truth only where the clip sees the end."""
    rows = []
    for j in indices:
        ep = dataset.episode(int(j))
        i = clip_indices(len(ep), num_frames, stride)
        reaches_end = i[-1] == len(ep) - 1
        truth = float(ep.meta.get("success", True)) if reaches_end else np.nan
        rows.append(_row(resize_frames(ep.frames[i], image_size), ep.task, ep.meta["behaviour"], "real",
                         truth, 1.0, str(dataset.root)))
    return rows


def judge_rows(judges, rows: list[dict]) -> pd.DataFrame:
    """Every judge's scores beside the truths, one row per clip (the clip pixels dropped)."""
    clips = np.stack([r["clip"] for r in rows])
    scores = judges.judge(clips, [r["behaviour"] for r in rows], [r["instruction"] for r in rows])
    return pd.DataFrame([{k: v for k, v in r.items() if k != "clip"} | s for r, s in zip(rows, scores)])


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per judge and clip kind: agreement with the truth (accuracy, balanced accuracy, AUC, n)."""
    out = []
    has_if = df[df.if_truth.notna()]
    for kind, g in [("all", has_if), *has_if.groupby("kind")]:
        m = binary_metrics(g.if_state > 0.5, g.if_truth > 0.5)
        out.append(dict(judge="IF state+predicate", kind=kind, **m, auc=auc(g.if_state, g.if_truth > 0.5)))
        if g.if_classifier.notna().all():
            m = binary_metrics(g.if_classifier > 0.5, g.if_truth > 0.5)
            out.append(dict(judge="IF classifier", kind=kind, **m, auc=auc(g.if_classifier, g.if_truth > 0.5)))
    valid = df[df.pa_truth > 0.5]
    for kind, g in [("all", df), *df.groupby("kind")]:
        m = binary_metrics(g.pa >= 1.0, g.pa_truth > 0.5)
        # AUC of PA as a score separating valid clips from broken ones, per broken kind vs all valid clips
        ref = g if kind == "all" or (g.pa_truth > 0.5).all() else pd.concat([valid, g])
        out.append(dict(judge="PA rules", kind=kind, **m, auc=auc(ref.pa, ref.pa_truth > 0.5),
                        mean_pa=float(g.pa.mean())))
    return pd.DataFrame(out)


def estimator_errors(est: np.ndarray, true: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
    """Per group of state entries: mean absolute error (positions in world units) or accuracy.

    est, true, masks: (N, D) for N held-out frames.
    """
    from . import state

    groups = {"object position": ("obj_x", "obj_y"), "zone position": ("zone_x", "zone_y"),
              "end effector position": ("ee_x", "ee_y"), "bar angle (cos, sin of 2a)": ("obj_c2", "obj_s2"),
              "drawer extension": ("drawer_ext",), "stain left": ("stain_left",), "beads in tray": ("beads_in",),
              "gripper opening": ("opening",), "presence (object, zone, button, ...)": ("obj", "zone", "button",
                                                                                       "drawer", "beads", "stain"),
              "held": ("held",), "stacked": ("obj_stacked",), "button pressed": ("button_pressed",)}
    keys = np.array([n.split(".")[-1] for n in state.NAMES])
    rows = []
    for name, ks in groups.items():
        cols = np.isin(keys, ks)
        m = masks[:, cols] > 0
        e, t = est[:, cols][m], true[:, cols][m]
        if state.BINARY[cols].all():
            rows.append(dict(quantity=name, metric="accuracy", value=float(((e > 0.5) == (t > 0.5)).mean()), n=int(m.sum())))
        else:
            scale = state.SCALE if "position" in name else 1.0
            rows.append(dict(quantity=name, metric="MAE" + (" (units)" if scale > 1 else ""),
                             value=float(np.abs(e - t).mean() * scale), n=int(m.sum())))
    return pd.DataFrame(rows)
