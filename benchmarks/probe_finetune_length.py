"""Probe: does a longer pick-and-place LoRA fit its training clips, and do held-out dreams keep time?

    .venv/bin/python benchmarks/probe_finetune_length.py 600 1800 3600

Issue 22 asks frames_in_place >= 0.8 on held-out pick-and-place episodes; the stage's 600-step
LoRA gives 0.22. This fine-tunes the stage's LoRA recipe (rank 16, lr 1e-3, batch 8, the U-Net
targets) on robot_pickplace_env0's training episodes in a copy of the checkpoint folder under
/tmp, resuming from length to length (constant learning rate), and scores dreams (8 Euler steps,
guidance 3) of the 10 held-out episodes and of 10 training episodes' first clips. Nothing in data/
changes. Measured on 2 cores (2026-12-03), held-out / training clips frames in place:
600 steps 0.19 / 0.31, 1,800 steps 0.32 / 0.61 (about 6 minutes), 3,600 steps 0.38 / 0.75 (about 13 minutes in all).
"""
import json
import shutil
import sys
import time

import numpy as np
import torch

torch.set_num_threads(2)
from dreamgen import world_model as wm
from dreamgen.world_model import variants, lora
from dreamgen.training import TrainConfig
from dreamgen.data import Dataset
root = "/tmp/ft_probe_ckpt"
shutil.copytree("data/models/world_model/finetune_ckpt", root, dirs_exist_ok=True)
base = "data/models/world_model/base"
spec = wm.load_pipeline(base).clip_spec
path = "data/datasets/robot_pickplace_env0"
bank = wm.load_bank(path, spec)
tr, held = wm.split_holdout(Dataset(path).num_episodes, 10)
train_bank, hb = bank.subset(tr), bank.subset(held)
real = np.stack([hb.clip(i) for i in range(len(hb))]); tasks = list(hb.tasks)
treal = np.stack([train_bank.clip(i) for i in range(0, len(train_bank), 9)]); ttasks = [train_bank.tasks[i] for i in range(0, len(train_bank), 9)]
for steps in [int(s) for s in sys.argv[1:]]:
    t0 = time.time()
    cfg = TrainConfig(steps=steps, lr=0.001, seed=0, ckpt_every=100, log_every=25, schedule="constant")
    pipe, res, fp, n = variants.finetune(base, "lora", train_bank, cfg, root, batch_size=8, p_drop_text=0.1, rank=16,
                                          alpha=16.0, targets=["to_q","to_k","to_v","to_out.0","ff.net.0.proj","ff.net.2","conv1","conv2"],
                                          desc="probe")
    out = dict(steps=steps, resumed_from=res.resumed_from, train_s=round(res.seconds))
    for name, r, tk in (("held", real, tasks), ("train", treal, ttasks)):
        d = wm.dream(pipe, r[:, 0], tk, [7000 + i for i in range(len(r))], 3.0, 8)
        q = wm.evaluate.quality_report(d, r)
        out[name] = {k: round(q[k], 3) for k in ("frames_in_place", "frames_in_place_frames", "mae_moving", "mae_moving_copy_first", "mae_dream", "mae_copy_first")}
    print(json.dumps(out), flush=True)
