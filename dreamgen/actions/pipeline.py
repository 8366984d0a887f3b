"""The steps the stages 06_train_idm, 07_train_lam and 08_label call, each one function."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from dreamgen import data
from dreamgen.actions import idm as idm_mod
from dreamgen.actions import lam as lam_mod
from dreamgen.actions.label import (DREAM_TAG, LATENT_KEY, RELABEL_TAG, LabelError, Labels, add_vector_column,
                                    chunk_action_names, file_digest, gather, label_errors, label_frames,
                                    neural_episode, replay, shard, subsample, video_mode)
from dreamgen.frames import resize_frames
from dreamgen.training import TrainConfig, train


def load_episodes(root, indices=None, progress: str | None = None, image_size: int | None = None) -> list:
    """Episodes of a dataset; image_size area-downsamples their frames (e.g. 64 -> 32, the world model's size)."""
    from tqdm import tqdm

    ds = data.Dataset(root)
    indices = range(ds.num_episodes) if indices is None else indices
    eps = [ds.episode(i) for i in tqdm(indices, desc=progress, disable=progress is None, mininterval=10, ascii=True)]
    if image_size is not None:
        for ep in eps:
            ep.frames = resize_frames(ep.frames, image_size)
    return eps


# --------------------------------------------------------------------------- IDM

def fit_idm(train_eps: list, cfg: idm_mod.IDMConfig, train_cfg: TrainConfig, batch_size: int, ckpt_dir,
            stop_after: int | None = None):
    """Train an IDM on episodes (with actions and states); returns (model, TrainResult)."""
    torch.manual_seed(train_cfg.seed)
    model = idm_mod.InverseDynamics(cfg)
    windows = idm_mod.make_windows(train_eps, cfg.frame_stride)
    result = train(model, idm_mod.batch_sampler(windows, batch_size), train_cfg, ckpt_dir, desc="train IDM",
                   stop_after=stop_after)
    return model.eval(), result


def evaluate_idm(model: idm_mod.InverseDynamics, episodes: list, mean_action: np.ndarray, world_cfg,
                 seed: int = 0, replay_episodes: bool = True) -> tuple[dict, list[dict]]:
    """Label held-out real episodes both ways and compare with the truth.

    full:    control-rate video, overlapping windows, temporal ensembling; actions (T-1, A)
             compared (the final no-op is left out), states (T, S).
    strided: frames k apart (as dreamed videos come); the chunks they give against the true ones.
    replay:  success of executing, from the true initial state, the true actions, the full-rate
             labels and the strided labels (chunks concatenated).
    Returns (summary metrics, one row per episode).
    """
    k = model.cfg.frame_stride
    rows, full_a, full_t, full_s, full_ts, str_a, str_t, str_s, str_ts = [], [], [], [], [], [], [], [], []
    for i, ep in enumerate(episodes):
        lab = label_frames(model, ep.frames, "full", seed=seed + i)
        full_a.append(lab.actions[:-1]), full_t.append(ep.actions[:-1])
        full_s.append(lab.states), full_ts.append(ep.states)
        frames_s, true_chunks = subsample(ep, k)
        row = dict(episode=i, behaviour=ep.meta.get("behaviour"), length=len(ep))
        if len(frames_s) >= 2:
            lab_s = label_frames(model, frames_s, "strided", seed=seed + i)
            pred_chunks = lab_s.actions[:-1].reshape(-1, k, model.cfg.action_dim)
            str_a.append(pred_chunks.reshape(-1, model.cfg.action_dim))
            str_t.append(true_chunks.reshape(-1, model.cfg.action_dim))
            str_s.append(lab_s.states), str_ts.append(ep.states[::k])
        else:
            pred_chunks = np.zeros((0, k, model.cfg.action_dim), np.float32)
        if replay_episodes:
            row["replay_true"] = replay(ep.meta, ep.actions, world_cfg)["success"]
            row["replay_idm_full"] = replay(ep.meta, lab.actions, world_cfg)["success"]
            row["replay_idm_strided"] = replay(ep.meta, pred_chunks.reshape(-1, model.cfg.action_dim), world_cfg)["success"]
            row["replay_true_strided_span"] = replay(ep.meta, true_chunks.reshape(-1, model.cfg.action_dim),
                                                     world_cfg)["success"]
        rows.append(row)
    cat = np.concatenate
    summary = {"full": label_errors(cat(full_a), cat(full_t), mean_action, cat(full_s), cat(full_ts)),
               "strided": label_errors(cat(str_a), cat(str_t), mean_action, cat(str_s), cat(str_ts))
               if str_a else {}}
    if replay_episodes:
        for key in ("replay_true", "replay_idm_full", "replay_idm_strided", "replay_true_strided_span"):
            summary[key] = float(np.mean([r[key] for r in rows]))
        summary["replay_episodes"] = len(rows)
    return summary, rows


# --------------------------------------------------------------------------- LAM

def fit_lam(pairs: lam_mod.FramePairs, cfg: lam_mod.LAMConfig, train_cfg: TrainConfig, batch_size: int, ckpt_dir,
            stop_after: int | None = None):
    torch.manual_seed(train_cfg.seed)
    model = lam_mod.LatentActionModel(cfg)
    result = train(model, lam_mod.pair_sampler(pairs, batch_size), train_cfg, ckpt_dir, desc="train LAM",
                   stop_after=stop_after)
    return model.eval(), result


def code_meanings(codes: np.ndarray, chunks: np.ndarray, state_deltas: np.ndarray, names) -> list[dict]:
    """Per code, the average motion it stands for on robot pairs with known actions.

    codes (M,), chunks (M, k, A) true actions of each pair, state_deltas (M, S) state change.
    Returns one row per code used: count, mean action per dimension (over the k steps), mean
    state change per dimension.
    """
    rows = []
    for c in np.unique(codes):
        m = codes == c
        row = {"code": int(c), "count": int(m.sum())}
        row |= {f"mean_{n}": float(chunks[m].mean((0, 1))[j]) for j, n in enumerate(names["action"])}
        row |= {f"delta_{n}": float(state_deltas[m].mean(0)[j]) for j, n in enumerate(names["state"])}
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- labelling

def label_dataset(src, out, idm_dir, lam_dir: str | None, dreamed: bool, episodes=None, seed: int = 0,
                  accelerator=None, force_mode: str | None = None) -> dict:
    """Label every video of dataset `src` and write the neural trajectories to `out` (LeRobot v2.1).

    dreamed: tag tasks <DREAM> (dreamed videos) or <RELABEL> (real videos relabelled).
    force_mode: 'strided' to view a control-rate video the way dreamed ones come (frames k apart).
    Checks every video against the labeller first and stops with a LabelError naming the video.
    Labelling is sharded over accelerate processes; the main process writes the dataset.
    Returns a summary (episodes, frames, seconds, frames_per_s, mode).
    """
    model = idm_mod.load_idm(idm_dir)
    cfg = model.cfg
    lam = lam_mod.load_lam(lam_dir) if lam_dir else None
    if lam is not None and lam.cfg.frame_stride != cfg.frame_stride:
        raise LabelError(f"{lam_dir}: latent action model has frame_stride {lam.cfg.frame_stride}, the IDM "
                         f"{cfg.frame_stride}; train them with the same frame_stride")
    ds = data.Dataset(src)
    indices = list(range(ds.num_episodes)) if episodes is None else list(episodes)
    fps = ds.fps / cfg.frame_stride if force_mode == "strided" else ds.fps
    k = cfg.frame_stride
    provenance = {"idm": str(idm_dir), "idm_sha256": file_digest(Path(idm_dir) / idm_mod.WEIGHTS_FILE),
                  "lam": str(lam_dir) if lam else None,
                  "lam_sha256": file_digest(Path(lam_dir) / lam_mod.WEIGHTS_FILE) if lam else None,
                  "frame_stride": k}
    t0 = time.perf_counter()
    results = []
    for i in shard(indices, accelerator):
        ep = ds.episode(i)
        frames = ep.frames[::k] if force_mode == "strided" else ep.frames
        where = f"{src} episode {i}"
        if frames.shape[1] > cfg.image_size and frames.shape[1] % cfg.image_size == 0:
            # Real videos (64 px) meet a labeller trained at the world model's size: view them the same way.
            frames = resize_frames(frames, cfg.image_size)
        # Dreams may not name their embodiment per episode; the dataset's robot_type then does.
        embodiment = ep.meta.get("embodiment", ds.info.get("robot_type"))
        mode = video_mode(cfg, frames.shape, fps, embodiment, where)
        labels = label_frames(model, frames, mode, seed=seed + i)
        latent = None
        if lam is not None:
            latent = lam_mod.video_codes(lam, frames, k if mode == "full" else 1).astype(np.float32)[:, None]
        meta = {"source_dataset": str(src), "source_episode": i, "source_meta": ep.meta, "labeller": provenance,
                "label_mode": mode}
        for key in ("world_model", "adapter", "prompt", "seed", "model"):  # a dream's own provenance
            if key in ep.meta:
                meta[key] = ep.meta[key]
        results.append((neural_episode(frames, ep.task, labels, DREAM_TAG if dreamed else RELABEL_TAG, meta), latent))
    results = gather(results, accelerator)
    seconds = time.perf_counter() - t0
    n_frames = sum(len(e) for e, _ in results)
    summary = dict(episodes=len(results), frames=n_frames, seconds=seconds, frames_per_s=n_frames / max(seconds, 1e-9),
                   mode=results[0][0].meta["label_mode"] if results else None)
    if accelerator is not None and not accelerator.is_main_process:
        return summary
    mode = summary["mode"]
    action_names = list(cfg.action_names) if mode == "full" else chunk_action_names(cfg.action_names, k)
    extra = {"neural": True, "dreamed": dreamed, "label_mode": mode, "action_chunk": 1 if mode == "full" else k,
             "control_fps": cfg.control_fps, "labeller": provenance, "source_dataset": str(src),
             "latent_actions": None if lam is None else {"key": LATENT_KEY, "codebook_size": lam.cfg.codebook_size,
                                                         "pair_gap_frames": k if mode == "full" else 1}}
    out_fps = int(round(fps)) if abs(fps - round(fps)) < 1e-6 else fps
    data.write_dataset(out, (e for e, _ in results), fps=out_fps, robot_type=cfg.embodiment,
                       state_names=list(cfg.state_names), action_names=action_names, extra_info=extra, overwrite=True)
    if lam is not None:
        add_vector_column(out, LATENT_KEY, [z for _, z in results], ["code"])
    return summary


def label_real_as_dreams(src, out, idm_dir, lam_dir: str | None = None, seed: int = 0, accelerator=None) -> dict:
    """Every episode of the real dataset `src`, labelled by the IDM exactly as dreams are, to `out`.

    The data of the policies' `-idm` sanity arms (a policy trained on IDM-labelled real videos
    shows what labelling alone costs): frames frame_stride control steps apart, resized to the
    IDM's image size, one flattened chunk of k actions per row (strided mode), predicted
    states, tasks tagged <RELABEL>; each episode's meta keeps source_episode and source_meta
    (behaviour, seed), so a policy arm can pick the very episodes its GT twin trains on.
    Whole episodes, not cut to a dream's clip length: a real episode (about 30 control steps,
    8 strided frames) is shorter than a dream clip anyway, and the -idm arm must see the same
    span of each episode as the GT arm, so that labels (and striding) are the only difference.
    Labels match `heldout_strided`'s for the same episode (the noise seed is seed + episode).
    Returns label_dataset's summary.
    """
    return label_dataset(src, out, idm_dir, lam_dir, dreamed=False, episodes=None, seed=seed,
                         accelerator=accelerator, force_mode="strided")


def _main(argv=None) -> int:
    """Label one dataset from the command line, sharded over processes:

        torchrun --nproc_per_node 2 -m dreamgen.actions.pipeline SRC OUT --idm DIR [--lam DIR] [--dreamed]

    (or `accelerate launch` configured for several processes; checked: 2 processes on CPU give
    the same dataset as one).
    """
    import argparse

    from accelerate import Accelerator

    ap = argparse.ArgumentParser(prog="python -m dreamgen.actions.pipeline", description=_main.__doc__)
    ap.add_argument("src"), ap.add_argument("out")
    ap.add_argument("--idm", required=True), ap.add_argument("--lam", default=None)
    ap.add_argument("--dreamed", action="store_true"), ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strided", action="store_true", help="view a control-rate video frame_stride frames apart")
    args = ap.parse_args(argv)
    acc = Accelerator(cpu=not torch.cuda.is_available())
    try:
        summary = label_dataset(args.src, args.out, args.idm, args.lam, args.dreamed, seed=args.seed, accelerator=acc,
                                force_mode="strided" if args.strided else None)
    except LabelError as err:
        print(f"dreamgen.actions.pipeline: {err}")
        return 2
    if acc.is_main_process:
        print(json.dumps(summary | {"processes": acc.num_processes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
