"""Ranking world-model variants on the same prompts, and the policies trained on each one's dreams.

The paper's Table 2 scores several world models by the videos they dream from the same first
frames and instructions; its claim is that the score predicts the success of a policy trained
on those dreams. Here every variant dreams the same prompts (fresh simulator resets, the same
instructions and noise seeds), the judges score them per split, the IDM labels them, a
neural-trajectories-only policy (same size, steps and seed for every variant) learns from them
and plays the same seeded initial states. The helpers below are the small pieces the bench
notebook strings together.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

BASE = "base"  # the variant name of the zero-shot base model (no adapter, no fine-tune)
POLICY_CHUNK = 16           # actions per policy prediction, as in the paper and train_policy


def variant_folder(variants_dir, experiment: str, name: str) -> Path | None:
    """Folder of a variant, None for the base model; FileNotFoundError naming the stage if absent."""
    if name == BASE:
        return None
    folder = Path(variants_dir) / experiment / name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no world-model variant {name!r} of experiment {experiment!r}; "
                                f"the finetune_world_model stage writes it (or drop it from bench.rank_variants)")
    return folder


def trained_pairs(infos: dict[str, dict]) -> set[tuple[str, int]]:
    """The (behaviour, environment) pairs the fine-tuned variants saw, from load_variant's infos.

    infos: variant name -> info dict. The base has none; every fine-tuned variant must agree,
    since the splits (seen / new behaviour / unseen environment) are defined by them.
    """
    pairs = {name: {(b, int(e)) for b, e in info.get("meta", {}).get("trained_pairs", [])}
             for name, info in infos.items() if info.get("kind") != "base"}
    if not pairs:
        raise ValueError("the ranking needs at least one fine-tuned variant: the splits are defined by its robot data")
    first = next(iter(pairs.values()))
    if not first:
        raise ValueError(f"variant {next(iter(pairs))} records no trained_pairs in its metadata")
    for name, p in pairs.items():
        if p != first:
            raise ValueError(f"variants disagree on their robot data: {name} trained on {sorted(p)}, "
                             f"another on {sorted(first)}; rank variants of one experiment")
    return first


def spread_counts(n_cells: int, total: int) -> list[int]:
    """Split `total` prompts over `n_cells` cells as evenly as possible, earlier cells first.

    spread_counts(7, 9) -> [2, 2, 1, 1, 1, 1, 1]; cells that get 0 are dropped by rank_cells.
    """
    if n_cells < 0 or total < 0:
        raise ValueError(f"spread_counts: n_cells and total must be >= 0, got {n_cells}, {total}")
    if n_cells == 0:
        return []
    q, r = divmod(total, n_cells)
    return [q + (i < r) for i in range(n_cells)]


def rank_cells(trained: set, behaviours: list[str], environments: list[int], per_split: int) -> list:
    """The dream stage's cells (plan_cells) with `per_split` prompts per split spread over its cells.

    Returns DreamCells in plan order; a split with more cells than prompts keeps its first cells.
    """
    from dreamgen.world_model.dreams import SPLITS, DreamCell, plan_cells

    if per_split < 1:
        raise ValueError(f"rank_prompts_per_split must be >= 1, got {per_split}")
    cells = plan_cells(trained, behaviours, environments, 1, 1, 1)
    out = []
    for split in SPLITS:
        mine = [c for c in cells if c.split == split]
        out += [DreamCell(c.behaviour, c.environment, c.split, n)
                for c, n in zip(mine, spread_counts(len(mine), per_split)) if n > 0]
    return out


def eval_jobs_for_cells(cells: list, episodes_per_cell: int, seed: int, robot: str) -> list:
    """Closed-loop evaluation jobs on the cells the dreams cover (every variant's policy plays these).

    Seeds follow evaluate.eval_jobs (base + 100000 b + 1000 e + k), so a cell's initial states
    are the same whichever other cells are played.
    """
    from dreamgen import evaluate

    if episodes_per_cell < 1:
        raise ValueError(f"rank_eval_episodes must be >= 1, got {episodes_per_cell}")
    jobs = []
    for c in cells:
        jobs += evaluate.eval_jobs([c.behaviour], [c.environment], episodes_per_cell, seed, embodiment=robot)
    return jobs


def filter_mask(scores: pd.DataFrame, min_pa: float, use_if: bool, if_col: str = "if_state") -> np.ndarray:
    """Which dreams the judges keep: PA >= min_pa, and (use_if) IF (column if_col) above 0.5. (N,) bool."""
    if not 0.0 <= min_pa <= 1.0:
        raise ValueError(f"filter_min_pa must be in [0, 1], got {min_pa}")
    keep = scores["pa"].to_numpy(float) >= min_pa
    if use_if:
        keep &= scores[if_col].to_numpy(float) > 0.5
    return keep


def policy_arm(n_neural: int, seed: int = 0) -> str:
    """The train_policy arm name of a neural-trajectories-only GR00T-style policy."""
    if n_neural < 1:
        raise ValueError("a neural-only policy needs at least one neural trajectory")
    return f"gr00t-r0-n{n_neural}-s{seed}"


def train_neural_policy(real_path, neural_path, out_dir, steps: int, batch_size: int, lr: float, seed: int,
                        image_size: int, width: int, layers: int, inference_steps: int) -> dict:
    """Train a neural-only policy on every trajectory of `neural_path` and save it to `out_dir`.

    `real_path` only gives the action/state layout and embodiment (no real windows are used).
    Returns the arm name, the windows and the training summary.
    """
    import shutil

    from dreamgen import data
    from dreamgen.policy import pipeline, windows
    from dreamgen.training import TrainConfig

    n = data.Dataset(neural_path).num_episodes
    arm = windows.parse_arm(policy_arm(n))
    cfg = pipeline.policy_config(arm, str(real_path), str(neural_path), image_size=image_size, chunk=POLICY_CHUNK,
                                 width=width, layers=layers, inference_steps=inference_steps)
    arm_data = pipeline.prepare_arm(arm, cfg, str(real_path), str(neural_path), 1.0, False)
    cfg = pipeline.with_provenance(cfg, arm, arm_data, str(real_path), str(neural_path), False)
    shutil.rmtree(out_dir, ignore_errors=True)
    train_cfg = TrainConfig(steps=steps, lr=lr, seed=seed, ckpt_every=max(1, steps), log_every=max(1, steps // 10))
    model, result, _ = pipeline.fit_policy(cfg, arm_data, train_cfg, batch_size, Path(out_dir) / "ckpt")
    pipeline.save_policy(model, out_dir)
    shutil.rmtree(Path(out_dir) / "ckpt", ignore_errors=True)  # the saved policy is what counts
    return dict(arm=arm.name, neural_trajectories=n, neural_windows=len(arm_data.neural), steps=result.steps_done,
                seconds=result.seconds, final_loss=float(result.history[-1]["loss"]))


def _if_aggs(scores: pd.DataFrame) -> dict:
    return {c: (c, "mean") for c in ("if_state", "if_classifier", "if_success") if c in scores}


def variant_table(scores: pd.DataFrame, success: pd.DataFrame, if_col: str = "if_state") -> pd.DataFrame:
    """One row per variant: mean IF (every judge), PA, bench = mean(IF of `if_col`, PA), and policy success.

    scores: one row per dream with variant, if_state, if_classifier (and if_success), pa.
    success: one row per evaluation episode with variant, success. Returns variant, videos, the
    IF columns, pa, bench, episodes, successes, success, ci_lo, ci_hi in the order variants first appear.
    """
    from dreamgen.report import wilson_interval

    order = list(dict.fromkeys(scores["variant"]))
    g = scores.groupby("variant").agg(videos=("pa", "size"), **_if_aggs(scores), pa=("pa", "mean"))
    g["bench"] = (g[if_col] + g["pa"]) / 2  # the paper ranks by IF and PA; their mean is one number
    s = success.groupby("variant").success.agg(["size", "sum"]).rename(columns={"size": "episodes", "sum": "successes"})
    t = g.join(s, how="left").loc[order]
    t["successes"] = t["successes"].fillna(0).astype(int)
    t["episodes"] = t["episodes"].fillna(0).astype(int)
    t["success"] = t["successes"] / t["episodes"].where(t["episodes"] > 0)
    ci = [wilson_interval(int(k), int(n)) if n else (math.nan, math.nan) for k, n in zip(t.successes, t.episodes)]
    t["ci_lo"], t["ci_hi"] = [c[0] for c in ci], [c[1] for c in ci]
    return t.reset_index().rename(columns={"index": "variant"})


def split_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Table-2 layout: variant x split -> videos, IF (every judge), PA."""
    from dreamgen.world_model.dreams import SPLITS

    t = scores.groupby(["variant", "split"]).agg(videos=("pa", "size"), **_if_aggs(scores), pa=("pa", "mean"))
    order = list(dict.fromkeys(scores["variant"]))
    t = t.reset_index()
    t["_v"] = t.variant.map(order.index)
    t["_s"] = t.split.map(lambda s: SPLITS.index(s) if s in SPLITS else len(SPLITS))
    return t.sort_values(["_v", "_s"]).drop(columns=["_v", "_s"]).reset_index(drop=True)


def json_safe(x):
    """NaN -> None throughout dicts/lists (a metrics file must be valid JSON; NaN means undefined)."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (float, np.floating)) and not np.isfinite(x):
        return None
    return x.item() if isinstance(x, np.generic) else x
