"""Expert success table and simulation/render speed.

    python -m dreamgen.world.benchmark --episodes 50 --workers 2

Success: `episodes` seeded runs per (embodiment, behaviour) cell at noise=1.0, seeds 0..n-1,
environment = seed % len(ENVIRONMENTS). Speed: steps/s of one process (one core).
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .behaviours import BEHAVIOURS
from .embodiments import EMBODIMENTS
from .env import TabletopEnv
from .environments import ENVIRONMENTS
from .expert import run_expert_episode


def success_cell(args) -> tuple[str, str, float, float]:
    """(embodiment, behaviour, success rate, mean steps) over seeds 0..n-1."""
    embodiment, behaviour, n, noise = args
    env = TabletopEnv()
    eps = [run_expert_episode(env, s, embodiment, behaviour, s % len(ENVIRONMENTS), noise=noise, render=False)
           for s in range(n)]
    return embodiment, behaviour, float(np.mean([e.meta["success"] for e in eps])), float(np.mean([e.meta["steps"] for e in eps]))


def steps_per_second(image_size: int, supersample: int, render: bool, n_steps: int = 2000) -> float:
    env = TabletopEnv(image_size=image_size, supersample=supersample, render_obs=render)
    rng, done, t0, seed = np.random.default_rng(0), True, time.perf_counter(), 0
    for _ in range(n_steps):
        if done:
            env.reset(seed=seed)
            seed += 1
        _, _, term, trunc, _ = env.step(env.expert_action(1.0, rng))
        done = term or trunc
    return n_steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--noise", type=float, default=1.0)
    args = ap.parse_args()
    for size, ss in ((64, 3), (32, 2)):
        print(f"{size}x{size} ss{ss}: {steps_per_second(size, ss, True):.0f} steps/s rendered, "
              f"{steps_per_second(size, ss, False):.0f} steps/s without rendering")
    cells = [(e, b, args.episodes, args.noise) for e in EMBODIMENTS for b in BEHAVIOURS]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(success_cell, cells))
    table = {(e, b): (r, s) for e, b, r, s in results}
    print(f"\nexpert success at noise={args.noise}, {args.episodes} episodes/cell (mean steps in brackets)")
    print("| embodiment | " + " | ".join(BEHAVIOURS) + " |")
    print("|---" * (len(BEHAVIOURS) + 1) + "|")
    for e in EMBODIMENTS:
        print(f"| {e} | " + " | ".join(f"{table[e, b][0]:.2f} ({table[e, b][1]:.0f})" for b in BEHAVIOURS) + " |")
    worst = min(table.items(), key=lambda kv: kv[1][0])
    print(f"\nworst cell: {worst[0]} = {worst[1][0]:.2f}")


if __name__ == "__main__":
    main()
