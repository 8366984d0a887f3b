"""Issue 22 probe: what can a dream of a held-out reset score, and does a salient robot help?

    python benchmarks/probe_world_model_look.py ceiling [--look silver|salient]
    python benchmarks/probe_world_model_look.py train --look silver|salient [--steps 1400] [--seed 0]

`ceiling`: the teleoperator's own re-run. For each held-out pick-and-place reset, the expert is
played again from the same layout with another noise stream (another plausible future), and that
clip is scored against the recorded one exactly as the stage scores a dream. A world model that
samples a plausible future cannot be expected to do better than this, so it bounds the bars.

`train`: the stage's mini world model (params.yaml's U-Net and recipe), trained from scratch on
pick-and-place episodes in environment 0 for a fixed number of steps, then dreamed from the
held-out resets with the dream stage's sampler and scored on those held-out clips. `--look`
changes only how the target robot is drawn (salient: thick dark-navy links, orange joints, a red
gripper; the issue's lever 1), so the two runs differ by that one lever.

Appends one JSON line per run to reports/probes/world_model/look.jsonl and writes a gallery PNG
beside it. Episodes are generated in memory with the collect stage's expert (noise from params).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import yaml

OUT = Path("reports/probes/world_model")
SALIENT = dict(width=4.5, link_rgb=(0.10, 0.14, 0.40), joint_rgb=(0.95, 0.55, 0.10), tool_rgb=(0.85, 0.10, 0.10))


def set_look(look: str) -> None:
    """Redraw the target robot for this process only (the probe's one lever)."""
    from dreamgen.world import embodiments

    if look == "salient":
        embodiments.LOOKS["robot"] = dataclasses.replace(embodiments.LOOKS["robot"], **SALIENT)
    elif look != "silver":
        raise SystemExit(f"--look must be silver or salient, got {look!r}")


def world_config(params: dict):
    from dreamgen.collect import WorldConfig

    w = params["world"]
    return WorldConfig(image_size=w["image_size"], supersample=w["supersample"], max_steps=w["max_steps"])


def episodes(params: dict, n: int, seed: int, workers: int = 2):
    """n successful pick-and-place episodes of the target robot in environment 0 (collect's expert)."""
    from dreamgen.collect import collect_successes

    cells = [("robot", "pick_place", 0, n)]
    return list(collect_successes(cells, seed, world_config(params), params["collect"]["expert_noise"],
                                  max_attempt_factor=2.0, workers=workers, desc="episodes"))


def spec_of(params: dict):
    from dreamgen.world_model import ClipSpec

    p = params["pretrain_world_model"]
    return ClipSpec(p["num_frames"], p["frame_stride"], p["image_size"])


def split(eps, every: int = 7, pool: int = 112):
    """(train, held-out) indices. The held-out episodes come from the first `pool` only, so a run with
    more episodes (--episodes) is scored on the same held-out resets (episode k's seed does not
    depend on how many are collected)."""
    held = [i for i in range(min(pool, len(eps))) if i % every == every // 2]
    return [i for i in range(len(eps)) if i not in held], held


def first_clip(frames: np.ndarray, spec) -> np.ndarray:
    from dreamgen.world_model import clip_indices, resize_frames

    return resize_frames(frames, spec.image_size)[clip_indices(len(frames), spec)]


def score(pred: np.ndarray, real: np.ndarray) -> dict:
    from dreamgen.world_model.evaluate import quality_report

    rep = quality_report(pred, real)  # its "look" (colour consistency) is renamed: --look names the drawing
    rep["colour_look"] = rep.pop("look")
    rep["colour_look_copy_first"] = rep.pop("look_copy_first")
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in rep.items()}


def gallery(rows: list[np.ndarray], path: Path) -> None:
    """Clips (T, S, S, 3) stacked as rows of one PNG (real, dream, real, dream, ...)."""
    from PIL import Image

    pad = lambda c: np.pad(c, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=255)  # noqa: E731
    img = np.concatenate([np.concatenate(list(pad(c)), axis=1) for c in rows], axis=0)
    Image.fromarray(img).resize((img.shape[1] * 3, img.shape[0] * 3), Image.NEAREST).save(path)


def append(row: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "look.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


def ceiling(params: dict, args) -> None:
    spec = spec_of(params)
    eps = episodes(params, args.episodes, args.data_seed)
    _, held = split(eps)
    from dreamgen.collect import retake

    takes = retake([eps[i].meta for i in held], world_config(params), noise_stream=12345, workers=2)
    real = np.stack([first_clip(eps[i].frames, spec) for i in held])
    rerun = np.stack([first_clip(t.frames, spec) for t in takes])
    ok = [t.meta["success"] for t in takes]
    append(dict(mode="ceiling", look=args.look, held_out=len(held), rerun_success=float(np.mean(ok)),
                noise=params["collect"]["expert_noise"], **score(rerun, real)))
    gallery([c for pair in zip(real[:6], rerun[:6]) for c in pair], OUT / f"ceiling_{args.look}.png")


def train(params: dict, args) -> None:
    from dreamgen.training import TrainConfig
    from dreamgen.world_model import ClipBank, build_pipeline, denoiser_configs, fit, resize_frames

    torch.set_num_threads(2)
    p, d = params["pretrain_world_model"], params["dream"]
    spec = spec_of(params)
    eps = episodes(params, args.episodes, args.data_seed)
    train_idx, held = split(eps)
    bank = ClipBank(spec, [resize_frames(eps[i].frames, spec.image_size) for i in train_idx],
                    [eps[i].task for i in train_idx], [eps[i].meta for i in train_idx])
    torch.manual_seed(args.seed)
    cfg, _ = denoiser_configs(SimpleNamespace(**p))
    # --next-frame: the same model and recipe on 2-frame clips (a frame and the one frame_stride steps
    # later), dreamed by chaining: each dreamed frame is the condition of the next (DIAMOND's design).
    model_spec = dataclasses.replace(spec, num_frames=2) if args.next_frame else spec
    if args.next_frame:
        bank = dataclasses.replace(bank, spec=model_spec)
    pipe = build_pipeline(cfg, model_spec, residual=p["residual"], shift=p["shift"], max_text_tokens=p["max_text_tokens"],
                          prediction=p["prediction"], train_shift=p["train_shift"], motion_weight=p["motion_weight"],
                          loss=p["loss"], train_times=p["train_times"])
    design = "next_frame" if args.next_frame else "clip"
    ckpt = Path("/tmp/probe_wm") / f"{args.look}-s{args.seed}-d{args.data_seed}-n{args.episodes}-{design}"
    t0, steps = time.perf_counter(), args.steps
    res, _ = fit(pipe, bank, TrainConfig(steps=steps, lr=p["lr"], seed=args.seed, ckpt_every=100), ckpt,
                 p["batch_size"], p_drop_text=p["p_drop_text"], desc="probe")
    train_s = time.perf_counter() - t0
    real = np.stack([first_clip(eps[i].frames, spec) for i in held])
    sample = lambda first, tasks: roll(pipe, first, tasks, spec.num_frames, d)  # noqa: E731
    pred = sample(real[:, 0], [eps[i].task for i in held])
    fit_real = np.stack([first_clip(eps[i].frames, spec) for i in train_idx[:16]])
    fit_pred = sample(fit_real[:, 0], [eps[i].task for i in train_idx[:16]])
    train_rep = score(fit_pred, fit_real)
    append(dict(mode="train", design=design, look=args.look, seed=args.seed, episodes=args.episodes, data_seed=args.data_seed, steps=steps,
                train_seconds=round(train_s, 1), train_episodes=len(train_idx), held_out=len(held),
                final_loss=round(float(np.mean([h["loss"] for h in res.history[-5:]])), 5),
                guidance=d["guidance_scale"], sampler_steps=d["inference_steps"],
                train_frames_in_place=train_rep["frames_in_place"], train_mae_dream=train_rep["mae_dream"],
                train_mae_copy_first=train_rep["mae_copy_first"], **score(pred, real)))
    gallery([c for pair in zip(real[:6], pred[:6]) for c in pair],
            OUT / f"train_{design}_{args.look}_s{args.seed}_n{len(train_idx)}.png")


def roll(pipe, first: np.ndarray, tasks: list[str], num_frames: int, d: dict) -> np.ndarray:
    """Clips (N, num_frames, S, S, 3): one dream call for a clip model; for a 2-frame model, chained
    calls, each from the last dreamed frame (seeds fixed per clip and frame)."""
    from dreamgen.world_model import dream

    n = len(first)
    if pipe.config.num_frames == num_frames:
        return dream(pipe, first, tasks, list(range(n)), guidance_scale=d["guidance_scale"],
                     steps=d["inference_steps"])
    frames = [first]
    for k in range(1, num_frames):
        nxt = dream(pipe, frames[-1], tasks, [1000 * k + i for i in range(n)], guidance_scale=d["guidance_scale"],
                    steps=d["inference_steps"])
        frames.append(nxt[:, -1])
    return np.stack(frames, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["ceiling", "train"])
    ap.add_argument("--look", default="silver")
    ap.add_argument("--steps", type=int, default=1400, help="optimizer steps (both looks alike: one lever)")
    ap.add_argument("--next-frame", action="store_true", help="a 2-frame model dreamed by chaining (DIAMOND)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-seed", type=int, default=5000)
    ap.add_argument("--episodes", type=int, default=112)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = yaml.safe_load(open(args.params))
    set_look(args.look)
    (ceiling if args.mode == "ceiling" else train)(params, args)


if __name__ == "__main__":
    main()
