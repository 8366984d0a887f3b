"""World-model throughput on this machine: training steps/s, dreamed clips/min, and the fraction
of the CPU's measured matmul throughput that each achieves.

    python benchmarks/bench_world_model.py [--threads 1] [--steps 10] [--clips 16]

Uses the default-profile configuration from params.yaml (a fresh, randomly initialised model of
the same size: speed does not depend on the weights). Prints figures; asserts nothing. These
machines are shared and noisy: compare ratios measured in one run, not absolute numbers.
"""
from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from dreamgen.world_model import ClipSpec, FlowMatchingVideoModel, build_pipeline, denoiser_configs, dream
from dreamgen.world_model.fit import make_sampler
from dreamgen.world_model.clips import ClipBank


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def default_pipeline(p: dict, text=None):
    """A fresh, randomly initialised world model of pretrain_world_model params `p`'s size and recipe
    (speed does not depend on the weights); text: (tokenizer, encoder), default all-MiniLM-L6-v2."""
    torch.manual_seed(0)
    denoiser, _ = denoiser_configs(SimpleNamespace(**p))
    return build_pipeline(denoiser, ClipSpec(p["num_frames"], p["frame_stride"], p["image_size"]),
                          residual=p["residual"], shift=p["shift"], max_text_tokens=p["max_text_tokens"],
                          prediction=p["prediction"], train_shift=p["train_shift"], motion_weight=p["motion_weight"],
                          loss=p["loss"], train_times=p["train_times"], text=text)


def random_bank(spec: ClipSpec, episodes: int = 8, frames: int = 40) -> ClipBank:
    """Episodes of uniform noise frames (S, S, 3) with instructions "task i": throughput input."""
    rng = np.random.default_rng(0)
    eps = [rng.integers(0, 255, (frames, spec.image_size, spec.image_size, 3), dtype=np.uint8)
           for _ in range(episodes)]
    return ClipBank(spec, eps, [f"task {i}" for i in range(episodes)], [{} for _ in eps])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    p = yaml.safe_load(open(args.params))["pretrain_world_model"]
    d = yaml.safe_load(open(args.params))["dream"]
    pipe = default_pipeline(p)
    peak = matmul_gflops()
    print(f"threads {args.threads}; matmul 1024^2 fp32: {peak:.1f} GFLOP/s")

    rng = np.random.default_rng(0)
    bank = random_bank(pipe.clip_spec)
    eps = bank.episodes
    sample = make_sampler(pipe, bank, p["batch_size"], p["p_drop_text"], p["train_shift"], times=p["train_times"])
    model = FlowMatchingVideoModel(pipe.transformer, residual=p["residual"], prediction=p["prediction"],
                                   motion_weight=p["motion_weight"], loss=p["loss"])
    pipe.transformer.requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = sample(rng, 0)
    with FlopCounterMode(display=False) as fc:
        loss, _ = model.loss(batch)
        loss.backward()
    step_flops = fc.get_total_flops()
    times = []
    for i in range(args.steps + 1):
        batch = sample(rng, i)
        t = time.perf_counter()
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    step_s = float(np.median(times[1:]))
    print(f"training ({type(pipe.transformer).__name__}, batch {p['batch_size']}, {sum(q.numel() for q in model.parameters()) / 1e6:.2f} M params): "
          f"{1 / step_s:.2f} steps/s, {step_flops / 1e9:.2f} GFLOP/step, "
          f"{step_flops / step_s / 1e9 / peak:.0%} of matmul peak")

    pipe.transformer.requires_grad_(False).eval()
    images = np.stack([e[0] for e in eps] * (args.clips // 8 + 1))[:args.clips]
    prompts = [f"task {i}" for i in range(len(images))]
    with FlopCounterMode(display=False) as fc:
        dream(pipe, images[:1], prompts[:1], [0], d["guidance_scale"], d["inference_steps"])
    clip_flops = fc.get_total_flops()
    t = time.perf_counter()
    dream(pipe, images, prompts, list(range(len(images))), d["guidance_scale"], d["inference_steps"],
          batch=d["batch_size"])
    sec = (time.perf_counter() - t) / len(images)
    print(f"dreaming ({d['inference_steps']} steps, guidance {d['guidance_scale']}, batch {d['batch_size']}): "
          f"{60 / sec:.0f} clips/min, {clip_flops / 1e9:.2f} GFLOP/clip, {clip_flops / sec / 1e9 / peak:.0%} of matmul peak")


if __name__ == "__main__":
    main()
