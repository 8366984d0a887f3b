"""Judge validity, the analogue of the paper's judge-vs-human check: judges against known truth.

Truth comes from the simulator (the success flag at a clip's last frame; whether physics was
corrupted), for real clips by replaying their episodes. Test clips are made the way dreams are: frames 4
control steps apart from an episode's first frame, at the judges' size. Kinds of clips:

  clean     held-out expert episodes, two clips each (to the end; cut before success): IF truth
            = success at the clip's last frame, PA truth = valid
  real      the same from held-out episodes of a real dataset, replayed from their seeds for
            every frame's truth (the replay must reproduce the recorded frames)
  degraded  real clips blurred and noised like dreams, truths unchanged
  swapped   a finished clean clip judged against another behaviour's instruction: IF truth = 0
  shuffled  a finished clean clip with its frames after the first permuted: PA truth = broken
  teleport, recolour, vanish, interpenetrate   physics corrupted in the simulator mid-clip: PA
            truth = broken
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
    """Clean (successes and failures, `success_and_failure_clips`), swapped, shuffled and
    corrupted clips (dicts with clip and truths) from sim episodes.

    swapped: each clean clip that shows its task done, judged against another behaviour's
    instruction (IF truth 0); shuffled: the same clip with its frames after the first permuted.
    """
    rng = np.random.default_rng(seed)
    rows = success_and_failure_clips(clean, num_frames, stride, "clean", "sim", seed)
    for r in [r for r in rows if r["if_truth"] == 1.0]:
        other = [o for o in clean if o.job.behaviour != r["behaviour"]]
        o = other[int(rng.integers(len(other)))]
        rows.append(_row(r["clip"], o.task, o.job.behaviour, "swapped", 0.0, 1.0, "sim"))
        perm = np.concatenate([[0], 1 + rng.permutation(num_frames - 1)])
        clip = r["clip"]
        if len(np.unique(clip.reshape(len(clip), -1), axis=0)) > 2 and not np.array_equal(clip[perm], clip):
            rows.append(_row(clip[perm], r["instruction"], r["behaviour"], "shuffled", np.nan, 0.0, "sim"))
    for e in corrupted:
        i = clip_indices(len(e), num_frames, stride)
        if e.corrupted_at < 0 or i[-1] < e.corrupted_at:  # the clip ends before any corruption: nothing to see
            continue
        rows.append(_row(e.frames[i], e.task, e.job.behaviour, e.job.corruption, float(e.success[i[-1]]), 0.0, "sim"))
    return rows


def success_and_failure_clips(episodes: list[LabelledEpisode], num_frames: int, stride: int, kind: str,
                               source: str, seed: int = 0) -> list[dict]:
    """Two clips per episode, both from its first frame as dreams are: one to its end (IF truth: the
    simulator's success flag there) and one cut at a random earlier frame where the task is not yet
    done (truth 0), so every behaviour has as many failures as successes.

    A cut clip ends at frame c (4 <= c < the first success; past c it repeats frame c, the way
    `clip_indices` pads a short episode). Episodes whose task is done by frame 4 give no cut clip.
    """
    rng = np.random.default_rng([seed, 4242])
    rows = []
    for e in episodes:
        i = clip_indices(len(e), num_frames, stride)
        rows.append(_row(e.frames[i], e.task, e.job.behaviour, kind, float(e.success[i[-1]]), 1.0, source))
        done = np.flatnonzero(e.success)
        first = int(done[0]) if len(done) else len(e)
        if first > stride:
            c = int(rng.integers(stride, first))
            i = clip_indices(c + 1, num_frames, stride)
            rows.append(_row(e.frames[i], e.task, e.job.behaviour, kind, float(e.success[c]), 1.0, source))
    return rows


def resimulate_dataset(dataset, indices, world, image_size: int, workers: int = 1) -> list[LabelledEpisode]:
    """Replay recorded episodes from their seeds (the teleop loop is deterministic) to get every
    frame's true state and success flag; raises unless the replayed frames equal the recorded ones."""
    from .simulate import SimJob, simulate_many

    metas = [dataset.episodes_meta[int(j)] for j in indices]
    missing = [int(j) for j, m in zip(indices, metas) if not {"behaviour", "environment", "seed"} <= set(m)]
    if missing:
        raise ValueError(f"{dataset.root}: episodes {missing[:5]} record no behaviour/environment/seed; "
                         f"they cannot be replayed for their true states")
    jobs = [SimJob(m["behaviour"], int(m["environment"]), int(m["seed"]), float(m.get("noise", 1.0)),
                   embodiment=m.get("embodiment", "robot")) for m in metas]
    eps = simulate_many(jobs, world, image_size, workers)
    for j, e in zip(indices, eps):
        rec = resize_frames(dataset.episode(int(j)).frames, image_size)
        if rec.shape != e.frames.shape or not np.array_equal(rec, e.frames):
            raise ValueError(f"{dataset.root} episode {int(j)}: replaying seed {e.job.seed} does not reproduce "
                             f"the recorded frames (was the dataset made by another world version?)")
    return eps


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
        for col, judge in (("if_classifier", "IF classifier"), ("if_success", "IF success net")):
            if col in g and len(g) and g[col].notna().all():
                m = binary_metrics(g[col] > 0.5, g.if_truth > 0.5)
                out.append(dict(judge=judge, kind=kind, **m, auc=auc(g[col], g.if_truth > 0.5)))
    valid = df[df.pa_truth > 0.5]
    for kind, g in [("all", df), *df.groupby("kind")]:
        m = binary_metrics(g.pa >= 1.0, g.pa_truth > 0.5)
        # AUC of PA as a score separating valid clips from broken ones, per broken kind vs all valid clips
        ref = g if kind == "all" or (g.pa_truth > 0.5).all() else pd.concat([valid, g])
        out.append(dict(judge="PA rules", kind=kind, **m, auc=auc(ref.pa, ref.pa_truth > 0.5),
                        mean_pa=float(g.pa.mean())))
    return pd.DataFrame(out)


def per_behaviour(df: pd.DataFrame, judges=("if_state",)) -> pd.DataFrame:
    """Per behaviour: clips, successes, and each IF judge's accuracy, tpr (successes accepted) and
    tnr (failures rejected) against the truth. df: judge_rows output with an IF truth."""
    g = df[df.if_truth.notna()]
    out = []
    for b, x in g.groupby("behaviour"):
        t = x.if_truth.to_numpy() > 0.5
        row = dict(behaviour=b, clips=len(x), successes=int(t.sum()))
        for j in judges:
            p = x[j].to_numpy(float) > 0.5
            row[f"{j}_accuracy"] = float((p == t).mean())
            row[f"{j}_tpr"] = float(p[t].mean()) if t.any() else float("nan")
            row[f"{j}_tnr"] = float((~p[~t]).mean()) if (~t).any() else float("nan")
        out.append(row)
    return pd.DataFrame(out).set_index("behaviour")


def degraded(rows: list[dict], seed: int = 0, blur: float = 0.6, noise: float = 8.0) -> list[dict]:
    """Copies of clips made to look like dreams (a light blur and pixel noise), truths unchanged:
    clips of lower visual quality whose content is still known, kind 'degraded'."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng([seed, 777])
    out = []
    for r in rows:
        x = gaussian_filter(r["clip"].astype(np.float32), sigma=(0, blur, blur, 0))
        x = np.clip(x + rng.normal(0, noise, x.shape), 0, 255).round().astype(np.uint8)
        out.append(dict(r, clip=x, kind="degraded"))
    return out


def judge_truth_agreement(df: pd.DataFrame, if_col: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """Pearson r (with a percentile-bootstrap interval over clips) between the judges' per-clip
    score and the truth's, the way the paper relates its judge to human raters.

    Both scores are the mean of IF and PA: the judge's (if_col, 0/1 or a probability, and PA in
    [0, 1]) and the truth's (the simulator's success, 1 for a physically valid clip). Clips
    without an IF truth (shuffled frames) are left out. Undefined (NaN, with the reason) when
    either side is constant or fewer than 3 clips remain.
    """
    from .correlation import correlation_report

    g = df[df.if_truth.notna()]
    judge = (g[if_col].to_numpy(float) + g.pa.to_numpy(float)) / 2
    truth = (g.if_truth.to_numpy(float) + g.pa_truth.to_numpy(float)) / 2
    r = correlation_report(judge, truth, n_boot, seed)  # NaN with a reason when undefined (a constant side)
    return dict(pearson=r["pearson"], pearson_ci=list(r["pearson_ci"]), spearman=r["spearman"], n=r["n"],
                defined=r["defined"], reason=r["reason"],
                kinds={k: int(v) for k, v in g.kind.value_counts().sort_index().items()}, paper_pearson=0.94)


# What the success predicates (state.instruction_success) allow, beside each estimated quantity.
TOLERANCE = {"object position": "inside the zone by 3 units: 7 from a bowl's centre, 5 per axis on a push square, 7 on a mat",
             "zone position": "as the object's (the two are compared)",
             "button position": "not read by a predicate (it guides the pressed bit)",
             "end effector position": "not read by a predicate (PA: at most 20 units per transition)",
             "bar angle (cos, sin of 2a)": "a quarter turn within 0.35 rad",
             "drawer extension": ">= 0.75 open, <= 0.15 closed", "stain left": "not read (a frame cannot know the reset's amount)",
             "stain amount": "<= 0.1 x the first frame's",
             "beads in tray": "all three beads in (> 5/6)", "gripper opening": "not read by a predicate",
             "presence (object, zone, button, ...)": "a bit", "held": "a bit: nothing held at the end",
             "stacked": "a bit", "button pressed": "a bit"}


def estimator_errors(est: np.ndarray, true: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
    """Per group of state entries: mean absolute error (positions in world units, per axis) or
    accuracy, beside the tolerance of the predicates that read it.

    est, true, masks: (N, D) for N held-out frames.
    """
    from . import state

    groups = {"object position": ("obj_x", "obj_y"), "zone position": ("zone_x", "zone_y"),
              "button position": ("button_x", "button_y"),
              "end effector position": ("ee_x", "ee_y"), "bar angle (cos, sin of 2a)": ("obj_c2", "obj_s2"),
              "drawer extension": ("drawer_ext",), "stain left": ("stain_left",), "stain amount": ("stain_mass",), "beads in tray": ("beads_in",),
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
    out = pd.DataFrame(rows)
    return out.assign(predicate_tolerance=out.quantity.map(TOLERANCE))
