"""Probe: does the robot survive in dreams if its links stand out from the lab table?

    .venv/bin/python benchmarks/probe_robot_contrast.py [--link 0.30 0.33 0.40] [--steps 600]
        [--episodes 100] [--png robot_contrast.png] [--threads 2]

The target robot's links are silver, (204, 209, 219), on a lab table of (199, 199, 194): a
pixel loss hardly sees them (notebook 04, "Why the robot dissolves"). This re-renders the
robot's pick-and-place demonstrations in the lab with another link colour (`--link`, RGB in
[0, 1]; the default is the world's own silver when omitted), with the collect stage's seed, noise
and recipe, fully fine-tunes the default base world model on them as the finetune stage does
(`full_lr`, `batch_size`, `holdout_every`), and dreams the held-out episodes with the stage's
seeds, guidance and Euler steps. Prints MAE (with copying the first frame), look consistency
and the motion check; `--png` writes real clips above their dreams. Nothing in data/ changes:
the world's looks are patched in this process only.

Measured on 2 cores (100 demonstrations, 10 held out, 600 steps of full fine-tuning, about
4 minutes each): the world's silver links reproduce the finetune stage's full fine-tune exactly
(MAE 6.09, copy first frame 5.55; motion hits 0.6, chance 0.7), so the re-rendered episodes
are the dataset's; dark links `--link 0.30 0.33 0.40`, i.e. (76, 84, 102): MAE 10.42 (copy
9.79), motion hits 1.0 (chance 0.9). In the dark-link dreams the arm breaks into grey speckle
instead of fading into the table: contrast alone does not let this model draw the arm
(a 1,200-step run of an earlier version of this probe: the same).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dreamgen import report  # noqa: E402
from dreamgen import world_model as wm  # noqa: E402
from dreamgen.collect import WorldConfig, collect_successes  # noqa: E402
from dreamgen.params import load_params, stage_section, validate  # noqa: E402
from dreamgen.training import TrainConfig  # noqa: E402
from dreamgen.world import embodiments  # noqa: E402
from dreamgen.world_model import variants  # noqa: E402

PICKPLACE_DATASET = 1  # robot_pickplace_env0 is the collect stage's second recipe: seed + 1_000_000 * 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--link", type=float, nargs=3, default=None, help="link colour, RGB in [0, 1]")
    ap.add_argument("--steps", type=int, default=600, help="full fine-tuning steps")
    ap.add_argument("--episodes", type=int, default=100, help="pick-and-place demonstrations to render")
    ap.add_argument("--png", default=None, help="write real clips and their dreams here")
    ap.add_argument("--ckpt", default=None, help="checkpoint folder (default: a fresh temporary one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    if args.link is not None and not all(0.0 <= c <= 1.0 for c in args.link):
        raise SystemExit(f"--link: RGB components must lie in [0, 1], got {args.link}")
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    col = validate("collect", stage_section(params, "collect", args.params))
    ft = validate("finetune_world_model", stage_section(params, "finetune_world_model", args.params))
    spec = json.loads(open(col.spec_path).read())
    robot = spec["robot"]
    if args.link is not None:  # patched in this process only; the world's own looks stay as they are
        embodiments.LOOKS[robot] = dataclasses.replace(embodiments.LOOKS[robot], link_rgb=tuple(args.link))
    link = np.round(np.array(embodiments.LOOKS[robot].link_rgb) * 255).astype(int)

    t0 = time.time()
    eps = list(collect_successes([(robot, "pick_place", 0, args.episodes)], col.seed + 1_000_000 * PICKPLACE_DATASET,
                                 WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"]),
                                 col.expert_noise, col.max_attempt_factor, col.workers))
    cs = wm.load_pipeline(ft.base_dir).clip_spec
    bank = wm.ClipBank(cs, [wm.resize_frames(e.frames, cs.image_size) for e in eps], [e.task for e in eps],
                       [e.meta for e in eps])
    train_idx, held_idx = wm.split_holdout(len(eps), ft.holdout_every)
    held = bank.subset(held_idx)
    real = np.stack([held.clip(i) for i in range(len(held))])
    print(f"link colour {tuple(link.tolist())}: {len(eps)} demonstrations rendered in {time.time() - t0:.0f} s, "
          f"{len(held_idx)} held out", flush=True)

    ckpt = args.ckpt
    if ckpt is None:
        import tempfile
        ckpt = tempfile.mkdtemp(prefix="probe_robot_contrast_")
    cfg = TrainConfig(steps=args.steps, lr=ft.full_lr, seed=ft.seed, ckpt_every=ft.ckpt_every,
                      log_every=max(1, args.steps // 10), schedule=ft.lr_schedule)
    pipe, res, _, _ = variants.finetune(ft.base_dir, "full", bank.subset(train_idx), cfg, ckpt, ft.batch_size,
                                        ft.p_drop_text, desc="full fine-tune")  # as the finetune stage does
    dreams = wm.dream(pipe, real[:, 0], list(held.tasks), [ft.seed + 7000 + i for i in range(len(real))],
                      ft.guidance_scale, ft.inference_steps)
    r = wm.evaluate.quality_report(dreams, real)
    print(f"{res.steps_done} steps in {res.seconds:.0f} s: MAE {r['mae_dream']:.2f} (copy first {r['mae_copy_first']:.2f}), "
          f"look {r['look']:.3f} (copy first {r['look_copy_first']:.3f}), motion hit {r['motion_hit']:.2f} "
          f"(chance {r['motion_hit_shuffled']:.2f})")
    if args.png:
        k = min(4, len(real))
        rows = np.concatenate([real[:k], dreams[:k]])
        print("wrote", report.save_png(report.upscale(report.tile(rows.reshape(-1, *rows.shape[2:]), cols=cs.num_frames), 3),
                                       args.png))


if __name__ == "__main__":
    main()
