"""Speed of the pseudo-action labellers, printed (never asserted: machines are noisy).

    python benchmarks/bench_actions.py            # training steps/s (IDM, LAM), frames labelled/s
    python benchmarks/bench_actions.py --stages   # + wall time of train_idm, train_lam, label (default profile)

Budgets on 2 cores (issue "pseudo-action labelling"): train_idm, train_lam <= ~300 s each;
label <= ~120 s. Sizes are read from params.yaml, so the figures are those of the default profile.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamgen.actions import idm, label, lam  # noqa: E402
from dreamgen.params import load_params  # noqa: E402


def steps_per_s(model, sample, seconds: float = 5.0) -> float:
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    rng, n, t0 = np.random.default_rng(0), 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        loss, _ = model.loss(sample(rng, n))
        opt.zero_grad(); loss.backward(); opt.step()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    p = load_params(ROOT / "params.yaml")
    ti, tl = p["train_idm"], p["train_lam"]
    k, s = ti["frame_stride"], args.size
    rng = np.random.default_rng(0)
    frames = (rng.random((200, s, s, 3)) * 255).astype(np.uint8)
    windows = idm.Windows(frames, np.arange(200 - k), rng.uniform(-1, 1, (200 - k, k, 4)).astype(np.float32),
                          rng.uniform(-1, 1, (200 - k, 2, 4)).astype(np.float32), k)
    print(f"torch threads: {torch.get_num_threads()}")
    model = idm.InverseDynamics(idm.IDMConfig("robot", s, k, 10, ("vx", "vy", "wz", "grip"), ("x", "y", "yaw", "opening"),
                                              width=ti["width"], flow_steps=ti["flow_steps"]))
    print(f"IDM training: {steps_per_s(model, idm.batch_sampler(windows, ti['batch_size'])):.1f} steps/s "
          f"(batch {ti['batch_size']}, width {ti['width']}, {s}px); {ti['steps']} steps planned")
    model.eval()
    for mode, n in (("full", 200), ("strided", 50)):
        t0 = time.perf_counter()
        label.label_frames(model, frames[:n], mode)
        print(f"IDM labelling ({mode}): {n / (time.perf_counter() - t0):.0f} frames/s")
    lmodel = lam.LatentActionModel(lam.LAMConfig(s, k, 10, tl["codebook_size"], tl["code_dim"], tl["width"]))
    pairs = lam.FramePairs(frames, np.arange(200 - k), k)
    print(f"LAM training: {steps_per_s(lmodel, lam.pair_sampler(pairs, tl['batch_size'])):.1f} steps/s "
          f"(batch {tl['batch_size']}, width {tl['width']}); {tl['steps']} steps planned")
    lmodel.eval()
    t0 = time.perf_counter()
    lam.video_codes(lmodel, frames, k)
    print(f"LAM coding: {200 / (time.perf_counter() - t0):.0f} frames/s")
    if args.stages:
        for stage in ("train_idm", "train_lam", "label"):
            t0 = time.perf_counter()
            rc = subprocess.run([sys.executable, "-m", "dreamgen.run", stage], cwd=ROOT).returncode
            print(f"stage {stage}: {time.perf_counter() - t0:.0f} s (exit {rc})")


if __name__ == "__main__":
    main()
