"""Speed and budget figures of the foundation, printed (never asserted: machines are noisy).

    python benchmarks/bench_foundation.py            # simulator and dataset-writing speed
    python benchmarks/bench_foundation.py --stages   # + world and collect stages, default profile (~3 min)
    python benchmarks/bench_foundation.py --tests    # + the whole test suite (budget 15 min)

Budgets on 2 cores (DESIGN.md, issue "foundation"): world + collect <= 180 s; tests <= 900 s.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamgen import data, world  # noqa: E402


def sim_speed(image_size: int, supersample: int, render: bool, seconds: float = 3.0) -> float:
    """Control steps per second of one process, random robot actions, reset every episode.

    Without rendering the environment skips drawing observations (render_obs=False): physics
    and bookkeeping alone; with it, every step draws the observation image.
    """
    env = world.TabletopEnv(image_size=image_size, supersample=supersample, max_steps=80, render_obs=render)
    env.reset(seed=0, options=dict(embodiment=world.ROBOT, behaviour="pick_place", environment=0))
    rng, n, t0 = np.random.default_rng(0), 0, time.perf_counter()
    dim = world.EMBODIMENTS[world.ROBOT].action_dim
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, dim).astype(np.float32))
        n += 1
        if term or trunc:
            env.reset(seed=n)
    return n / (time.perf_counter() - t0)


def write_speed(n_episodes: int = 20) -> tuple[float, float]:
    """(frames/s written, bytes per frame) for expert episodes at 64x64 with lossless video."""
    env = world.TabletopEnv(image_size=64, supersample=3, max_steps=80)
    eps = [world.run_expert_episode(env, seed=i, embodiment=world.ROBOT, behaviour=world.BEHAVIOURS[i % 10],
                                    environment=i % 8) for i in range(n_episodes)]
    frames = sum(len(e) for e in eps)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data.write_dataset(Path(tmp) / "d", eps, fps=10, robot_type="robot")
        dt = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (Path(tmp) / "d" / "videos").rglob("*.mp4"))
    return frames / dt, size / frames


def timed(cmd: list[str], cwd: Path) -> float:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--tests", action="store_true")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}")
    for size, ss in ((64, 3), (32, 2)):
        print(f"simulator {size}x{size} supersample {ss}: {sim_speed(size, ss, False):7.0f} steps/s without "
              f"rendering, {sim_speed(size, ss, True):6.0f} with")
    fps, bpf = write_speed()
    print(f"dataset writing (lossless H.264 RGB, 64x64): {fps:.0f} frames/s, {bpf:.0f} bytes/frame")
    if args.stages:
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp) / "repo"
            shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv", ".git", "data", "reports",
                                                                      "__pycache__"))
            t = {s: timed([sys.executable, "-m", "dreamgen.run", s], repo) for s in ("world", "collect")}
        total = sum(t.values())
        print(f"stages, default profile: world {t['world']:.1f} s + collect {t['collect']:.1f} s = {total:.1f} s "
              f"(budget 180 s: {'within' if total <= 180 else 'OVER'})")
    if args.tests:
        t = timed([sys.executable, "-m", "pytest", "-q", "-x"], ROOT)
        print(f"test suite: {t:.0f} s (budget 900 s: {'within' if t <= 900 else 'OVER'})")


if __name__ == "__main__":
    main()
