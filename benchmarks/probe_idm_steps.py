"""Probe: does the IDM's replay success on real held-out videos grow with training length?

    .venv/bin/python benchmarks/probe_idm_steps.py [--ends 1500 3000 6000] [--width 256] [--ckpt DIR]

Issue 22 asks the labeller for replay_idm_strided >= 0.6 (the labels of held-out real videos at
the dreams' frame spacing, executed from the true initial state); the stage's 1,500-step IDM
gives 0.33 against a ceiling of 0.77. The stage's recipe (train_idm in params.yaml) is trained
once, resumed from its checkpoint to each length in --ends, and scored on the stage's held-out
episodes each time. Prints one JSON line per length; nothing in data/ changes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from dreamgen import data
from dreamgen.actions import idm, pipeline
from dreamgen.collect import WorldConfig
from dreamgen.training import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ends", type=int, nargs="+", default=[1500, 3000, 6000])
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, nargs="+", default=[1], help="label_samples values scored at each length")
    ap.add_argument("--model", default=None, help="score this saved IDM folder instead of training")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = yaml.safe_load(open("params.yaml"))["train_idm"]
    spec = json.loads(Path(p["spec_path"]).read_text())
    world_cfg = WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"])
    ds = data.Dataset(p["dataset_path"])
    train_idx, held_idx = idm.holdout_split(ds.num_episodes, p["holdout_every"])
    train_eps = pipeline.load_episodes(p["dataset_path"], train_idx, image_size=p["image_size"])
    held_eps = pipeline.load_episodes(p["dataset_path"], held_idx, image_size=p["image_size"])
    feat = ds.info["features"]
    cfg = idm.IDMConfig(embodiment=train_eps[0].meta["embodiment"], image_size=p["image_size"],
                        frame_stride=p["frame_stride"], control_fps=ds.fps,
                        action_names=tuple(feat["action"]["names"]), state_names=tuple(feat["observation.state"]["names"]),
                        width=a.width or p["width"], flow_steps=p["flow_steps"], backbone=a.backbone or p["backbone"])
    mean_action = np.concatenate([e.actions[:-1] for e in train_eps]).mean(0)
    if a.model:
        model = idm.load_idm(a.model)
        for n in a.samples:
            model.cfg = dataclasses.replace(model.cfg, label_samples=n)
            score(model, held_eps, mean_action, world_cfg, p["seed"], dict(model=a.model, label_samples=n))
        return
    ckpt = Path(a.ckpt or tempfile.mkdtemp(prefix="idm_probe_"))
    for end in a.ends:
        tc = TrainConfig(steps=max(a.ends), lr=a.lr or p["lr"], seed=p["seed"], ckpt_every=500, log_every=500)
        t0 = time.time()
        model, res = pipeline.fit_idm(train_eps, cfg, tc, p["batch_size"], ckpt, stop_after=end)
        train_s = time.time() - t0
        for n in a.samples:
            model.cfg = dataclasses.replace(model.cfg, label_samples=n)
            score(model, held_eps, mean_action, world_cfg, p["seed"],
                  dict(steps=res.steps_done, backbone=cfg.backbone, width=cfg.width, train_s=round(train_s), steps_per_s=res.steps_per_s,
                       label_samples=n))


def score(model, held_eps, mean_action, world_cfg, seed: int, head: dict) -> None:
    summary, rows = pipeline.evaluate_idm(model, held_eps, mean_action, world_cfg, seed=seed)
    by_b = {}
    for r in rows:
        by_b.setdefault(r["behaviour"], []).append(int(r["replay_idm_strided"]))
    print(json.dumps(head | dict(replay_idm_strided=summary["replay_idm_strided"], replay_idm_full=summary["replay_idm_full"],
                                 replay_true_strided_span=summary["replay_true_strided_span"],
                                 strided_action_mse=summary["strided"]["action_mse"],
                                 grip_sign_acc=summary["strided"]["grip_sign_acc"], episodes=len(held_eps),
                                 strided_by_behaviour={b: f"{sum(v)}/{len(v)}" for b, v in by_b.items()})), flush=True)


if __name__ == "__main__":
    main()
