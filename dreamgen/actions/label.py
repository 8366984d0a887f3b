"""Pseudo-action labelling: videos -> neural trajectories (actions, states, latent actions).

Two ways a video meets the IDM (frame_stride = k control steps between its two frames):
- "full":    a control-rate video (fps = control_fps). Every window (t, t+k) gives a chunk of the
             actions t..t+k-1; each action is covered by up to k chunks, averaged (temporal
             ensembling, as the official labeller combines overlapping chunks).
             Output actions (T, A), the last one the no-op that follows the final frame.
- "strided": a video whose frames are k control steps apart (fps = control_fps / k), as dreamed
             videos are. Each consecutive pair gives the k actions between them, no overlap.
             Output actions (T, k*A): row i is the chunk from frame i to frame i+1 (last: no-op).
States are (T, S) in both, the average of the predictions that see each frame.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from dreamgen import data
from dreamgen.actions.idm import IDMConfig, InverseDynamics, to_tensor
from dreamgen.episode import Episode

DREAM_TAG = "<DREAM>"        # dreamed videos, as in the paper's neural trajectories
RELABEL_TAG = "<RELABEL>"    # real videos labelled by the IDM (never mixed up with dreams)
LATENT_KEY = "action.latent"


class LabelError(ValueError):
    """A video or labeller that does not fit; the message says what and where."""


def video_mode(cfg: IDMConfig, frames_shape: tuple, fps: float, embodiment: str | None, where: str) -> str:
    """'full' or 'strided' for a video (T, H, W, 3) at `fps`; LabelError if the IDM cannot label it."""
    if embodiment is not None and embodiment != cfg.embodiment:
        raise LabelError(f"{where}: video of embodiment {embodiment!r}, but the IDM was trained for "
                         f"{cfg.embodiment!r} (its actions would mean nothing); train an IDM on that robot's data")
    t, h, w = frames_shape[:3]
    if (h, w) != (cfg.image_size, cfg.image_size):
        raise LabelError(f"{where}: frames are {h}x{w}, the IDM takes {cfg.image_size}x{cfg.image_size}")
    k = cfg.frame_stride
    if abs(fps - cfg.control_fps) < 1e-6:
        mode, need = "full", k + 1
    elif abs(fps * k - cfg.control_fps) < 1e-6:
        mode, need = "strided", 2
    else:
        raise LabelError(f"{where}: video at {fps} fps; the IDM (frame_stride={k}, control rate "
                         f"{cfg.control_fps} Hz) labels {cfg.control_fps} fps or {cfg.control_fps / k:g} fps videos")
    if t < need:
        raise LabelError(f"{where}: {t} frames; labelling a {mode} video needs at least {need}")
    return mode


@dataclass
class Labels:
    actions: np.ndarray   # (T, A) full, (T, k*A) strided
    states: np.ndarray    # (T, S)
    mode: str


@torch.no_grad()
def label_frames(model: InverseDynamics, frames: np.ndarray, mode: str, seed: int = 0,
                 batch_size: int = 256) -> Labels:
    """Label a video (T, H, W, 3) uint8 in `mode` ('full' or 'strided', see the module doc)."""
    cfg = model.cfg
    k, a_dim, s_dim, t_len = cfg.frame_stride, cfg.action_dim, cfg.state_dim, len(frames)
    gap = k if mode == "full" else 1
    starts = np.arange(t_len - gap)
    gen = torch.Generator().manual_seed(seed)
    chunks, states = [], []
    for s in range(0, len(starts), batch_size):
        i = starts[s:s + batch_size]
        a, st = model.predict(to_tensor(np.stack([frames[i], frames[i + gap]], 1)), generator=gen)
        chunks.append(a.numpy())
        states.append(st.numpy())
    chunks, states = np.concatenate(chunks), np.concatenate(states)
    s_sum, s_n = np.zeros((t_len, s_dim)), np.zeros((t_len, 1))
    np.add.at(s_sum, starts, states[:, 0])
    np.add.at(s_n, starts, 1)
    np.add.at(s_sum, starts + gap, states[:, 1])
    np.add.at(s_n, starts + gap, 1)
    state = (s_sum / s_n).astype(np.float32)
    if mode == "strided":
        actions = np.zeros((t_len, k * a_dim), np.float32)
        actions[:-1] = chunks.reshape(len(starts), -1)
        return Labels(actions, state, mode)
    a_sum, a_n = np.zeros((t_len, a_dim)), np.zeros((t_len, 1))
    for j in range(k):  # chunk from t covers actions t + j
        np.add.at(a_sum, starts + j, chunks[:, j])
        np.add.at(a_n, starts + j, 1)
    actions = np.where(a_n > 0, a_sum / np.maximum(a_n, 1), 0.0).astype(np.float32)
    actions[-1] = 0.0  # the no-op after the final frame, as the datasets store it
    return Labels(actions, state, mode)


def subsample(ep: Episode, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A control-rate episode seen the way dreamed videos are: frames 0, k, 2k, ... and the true
    chunks between them. Returns frames (T', H, W, 3), true chunks (T'-1, k, A)."""
    idx = np.arange(0, len(ep), k)
    chunks = np.stack([ep.actions[i:i + k] for i in idx[:-1]]) if len(idx) > 1 else np.zeros((0, k, ep.actions.shape[1]))
    return ep.frames[idx], chunks


def file_digest(path, n: int = 12) -> str:
    """Short sha256 of a checkpoint file, recorded as provenance."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:n]


# --------------------------------------------------------------------------- metrics

def label_errors(pred_actions: np.ndarray, true_actions: np.ndarray, mean_action: np.ndarray,
                 pred_states: np.ndarray | None = None, true_states: np.ndarray | None = None,
                 grip_index: int = -1) -> dict:
    """Errors of labelled actions (N, A) against the truth, and against copying the mean action.

    grip_sign_acc: fraction of steps where the gripper command has the true sign (open/close).
    """
    out = dict(action_mse=float(((pred_actions - true_actions) ** 2).mean()),
               action_mse_mean_baseline=float(((mean_action[None] - true_actions) ** 2).mean()),
               action_mse_per_dim=((pred_actions - true_actions) ** 2).mean(0).tolist(),
               grip_sign_acc=float((np.sign(pred_actions[:, grip_index]) == np.sign(true_actions[:, grip_index])).mean()),
               n=int(len(true_actions)))
    if pred_states is not None:
        out["state_mae"] = float(np.abs(pred_states - true_states).mean())
        out["state_mae_per_dim"] = np.abs(pred_states - true_states).mean(0).tolist()
    return out


def replay(meta: dict, actions: np.ndarray, world_cfg) -> dict:
    """Execute actions (N, A) open loop from the episode's true initial state in the simulator.

    meta: the episode's meta (seed, embodiment, behaviour, environment); world_cfg: a
    collect.WorldConfig matching the world spec. Success = the task's predicate at any step.
    """
    from dreamgen.world import TabletopEnv

    env = TabletopEnv(image_size=world_cfg.image_size, supersample=world_cfg.supersample,
                      max_steps=world_cfg.max_steps, render_obs=False)
    env.reset(seed=int(meta["seed"]), options=dict(embodiment=meta["embodiment"], behaviour=meta["behaviour"],
                                                   environment=int(meta["environment"])))
    for t, a in enumerate(actions):
        _, _, term, trunc, info = env.step(a)
        if info["is_success"]:
            return dict(success=True, steps=t + 1)
        if trunc:
            break
    return dict(success=False, steps=len(actions))


# --------------------------------------------------------------------------- datasets

def shard(items: list, accelerator=None) -> list:
    """This process's share of `items` (all of them without accelerate or with one process)."""
    if accelerator is None or accelerator.num_processes == 1:
        return list(items)
    with accelerator.split_between_processes(list(items)) as part:
        return list(part)


def gather(results: list, accelerator=None) -> list:
    """Every process's results, in process order (which keeps the order of `shard`)."""
    if accelerator is None or accelerator.num_processes == 1:
        return results
    from accelerate.utils import gather_object

    return gather_object(results)


def add_vector_column(root, key: str, per_episode: list[np.ndarray], names: list[str]) -> None:
    """Add a float32 vector column `key` (T, D) to every episode parquet of a written dataset,
    and declare it in info.json and episodes_stats, so LeRobot's loader reads it as a feature.

    write_dataset writes state and action only; latent actions need one more column.
    """
    ds = data.Dataset(root)
    if len(per_episode) != ds.num_episodes:
        raise ValueError(f"{key}: {len(per_episode)} arrays for {ds.num_episodes} episodes")
    stats_lines = []
    for i, x in enumerate(per_episode):
        x = np.asarray(x, np.float32).reshape(len(x), -1)
        table = pq.read_table(ds.data_path(i))
        if len(x) != table.num_rows:
            raise ValueError(f"{key}: episode {i} has {table.num_rows} rows, got {len(x)} values")
        if x.shape[1] == 1:  # LeRobot stores a shape-[1] feature as a plain column, not one-element lists
            column = pa.array(x[:, 0])
        else:
            offsets = pa.array(np.arange(0, x.size + 1, x.shape[1], dtype=np.int32))
            column = pa.ListArray.from_arrays(offsets, pa.array(x.ravel()))
        pq.write_table(table.append_column(key, column), ds.data_path(i))
        stats = ds.episodes_stats[i]
        stats[key] = {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).astype(float).tolist(),
                      "std": x.std(0).astype(float).tolist(), "count": [len(x)]}
        stats_lines.append(json.dumps({"episode_index": i, "stats": stats}))
    info = dict(ds.info)
    features = {}
    for k, v in info["features"].items():  # keep LeRobot's order: vectors before the index columns
        if k == "timestamp":
            features[key] = {"dtype": "float32", "shape": [len(names)], "names": list(names)}
        features[k] = v
    info["features"] = features
    (Path(root) / "meta/info.json").write_text(json.dumps(info, indent=4))
    (Path(root) / "meta/episodes_stats.jsonl").write_text("\n".join(stats_lines) + "\n")


def neural_episode(frames: np.ndarray, task: str, labels: Labels, tag: str, provenance: dict) -> Episode:
    """An Episode of labelled frames: tagged task, predicted actions and states, provenance meta."""
    return Episode(frames=frames, task=f"{tag} {task}" if tag else task, states=labels.states,
                   actions=labels.actions, meta=provenance)


def chunk_action_names(names, k: int) -> list[str]:
    """Names of a flattened (k, A) chunk: vx@0, vy@0, ..., grip@k-1."""
    return [f"{n}@{j}" for j in range(k) for n in names]


def replay_dreams(root, world_cfg) -> list[dict]:
    """Execute each labelled episode's actions from the reset its first frame came from.

    root: a neural-trajectory dataset with strided labels (row i = the chunk of k actions from
    frame i to i+1): dreams (their source meta has the sim_seed they were dreamed from), or real
    episodes relabelled at the dreams' spacing (`heldout_strided`: their source meta has the
    seed they were recorded from; split "real"). For each episode: did the labels solve the
    task, and did the expert's own first (T-1)*k actions from the same reset (the ceiling: a
    clip spans only that many steps)? Returns one row per episode: split, behaviour,
    environment, success, expert_in_span.
    """
    from dreamgen.world import TabletopEnv, run_expert_episode

    ds = data.Dataset(root)
    k = ds.info.get("dreamgen", {}).get("action_chunk")
    if not k or ds.info["dreamgen"].get("label_mode") != "strided":
        raise LabelError(f"{root}: replay_dreams needs strided labels of dreamed videos (action_chunk k)")
    env = TabletopEnv(image_size=world_cfg.image_size, supersample=world_cfg.supersample,
                      max_steps=world_cfg.max_steps, render_obs=False)
    rows = []
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        src = ep.meta.get("source_meta", {})
        seed = src.get("sim_seed", src.get("seed"))
        if seed is None:
            raise LabelError(f"{root} episode {i}: no sim_seed or seed in its source meta; only videos from "
                             "simulator resets can be replayed")
        meta = dict(seed=seed, embodiment=src["embodiment"], behaviour=src["behaviour"],
                    environment=src["environment"])
        actions = ep.actions[:-1].reshape(-1, ep.actions.shape[1] // k)
        # the expert at the noise this reset was recorded with (real demos carry it; dreams' references: the default 1.0)
        expert = run_expert_episode(env, meta["seed"], meta["embodiment"], meta["behaviour"],
                                    meta["environment"], noise=float(src.get("noise", 1.0)), render=False)
        rows.append(dict(split=src.get("split", "real" if "sim_seed" not in src else None),
                         behaviour=meta["behaviour"], environment=meta["environment"],
                         success=replay(meta, actions, world_cfg)["success"],
                         expert_in_span=replay(meta, expert.actions[:len(actions)], world_cfg)["success"]))
    return rows
