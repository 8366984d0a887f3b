"""Probe: what the sampler's settings (guidance scale, Euler steps) do to a variant's dreams.

    .venv/bin/python benchmarks/probe_dream_settings.py [--variant lora] [--experiment pickplace_env0]
        [--guidance 1 3 6] [--steps 8 20] [--eta 0] [--threads 1]

Dreams the held-out episodes of the experiment's robot dataset (every `holdout_every`-th, as
the finetune stage holds them out) from their first frame and instruction, with the
fine-tuned variant of `finetune_world_model.out_dir` (or `base`), at every (guidance, steps,
eta) setting, eta being the sampler's stochasticity, with the same seeds as the finetune
stage's quality table. Prints, per setting, what that table reports: MAE against copying the
first frame, the motion check against chance, look consistency and the Frechet distance on IDM
pair features. No training; writes nothing.
Needs `dvc repro finetune_world_model` (and train_idm) first.

Measured on the default profile's pickplace_env0 LoRA (600 steps), 10 clips, 2 idle threads
(MAE / FD-IDM; copy-first-frame 5.55 / 30.5; motion hits at chance in every setting):
guidance 1: 6.75 / 22.9 at 8 Euler steps, 7.94 / 16.6 at 20; guidance 3: 6.83 / 22.8 and
8.04 / 16.2 (the stage's own figures at 8 steps: the same); guidance 6: 6.99 / 22.3 and
8.28 / 15.6. Guidance barely matters; more Euler steps trade pixel error for a closer
feature distribution (sharper, riskier samples). Guidance 3, 8 steps, eta 0 / 0.5 / 1: MAE
6.83 / 6.53 / 5.76, FD-IDM 22.8 / 24.4 / 30.3: the more fresh noise, the closer the dreams come
to a frozen first frame without the robot (notebook 04, "Why the robot dissolves").
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dreamgen import world_model as wm  # noqa: E402
from dreamgen.actions import idm  # noqa: E402
from dreamgen.data import Dataset  # noqa: E402
from dreamgen.params import load_params, stage_section, validate  # noqa: E402
from dreamgen.world_model import variants  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="lora")
    ap.add_argument("--experiment", default="pickplace_env0")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0, 6.0])
    ap.add_argument("--steps", type=int, nargs="+", default=[8, 20])
    ap.add_argument("--eta", type=float, nargs="+", default=[0.0],
                    help="sampler stochasticity: 0 = deterministic Euler, 1 = fresh noise each step")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = validate("finetune_world_model", stage_section(load_params(args.params), "finetune_world_model", args.params))
    path = next((p for p in cfg.dataset_paths if Path(p).name.removeprefix("robot_") == args.experiment), None)
    if path is None:
        raise SystemExit(f"--experiment {args.experiment!r} is not among finetune_world_model.dataset_paths")
    folder = None if args.variant == "base" else Path(cfg.out_dir) / args.experiment / args.variant
    pipe, _ = variants.load_variant(cfg.base_dir, folder)
    _, held_idx = wm.split_holdout(Dataset(path).num_episodes, cfg.holdout_every)
    held = wm.load_bank(path, pipe.clip_spec, desc=args.experiment).subset(held_idx)
    real = np.stack([held.clip(i) for i in range(len(held))])
    encoder = idm.load_idm(cfg.idm_dir).encoder
    seeds = [cfg.seed + 7000 + i for i in range(len(real))]  # the finetune stage's quality seeds
    print(f"{args.experiment}/{args.variant}: {len(real)} held-out clips, {args.threads} thread(s)")
    for g, n, eta in [(g, n, e) for g in args.guidance for n in args.steps for e in args.eta]:
        t0 = time.time()
        dreams = wm.dream(pipe, real[:, 0], list(held.tasks), seeds, g, n, eta=eta)
        r = wm.evaluate.quality_report(dreams, real, encoder=encoder)
        print(f"guidance {g:g}, {n} Euler steps, eta {eta:g}: MAE {r['mae_dream']:.2f} "
              f"(copy first {r['mae_copy_first']:.2f}), "
              f"motion hit {r['motion_hit']:.2f} (chance {r['motion_hit_shuffled']:.2f}), look {r['look']:.3f} "
              f"(copy first {r['look_copy_first']:.3f}), FD-IDM {r['fid_idm']:.1f} (copy first "
              f"{r['fid_idm_copy_first']:.1f}); {(time.time() - t0) / len(real):.2f} s/clip", flush=True)


if __name__ == "__main__":
    main()
