"""Policy speed on this machine: training steps/s per family and closed-loop episodes/min.

    .venv/bin/python benchmarks/bench_policy.py [--steps 100] [--episodes 20] [--workers 2]

Trains each family for --steps on 3 real demos per behaviour of robot_cotrain with the params'
encoder (untrained weights are as fast as trained ones, so the evaluation uses the freshly
trained dp policy) and plays --episodes closed-loop episodes. Then prints, from the last run's
metrics files, each arm's whole-stage seconds and the evaluate stage's episodes per minute.
Numbers depend on what else runs on the cores.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamgen import evaluate as ev  # noqa: E402
from dreamgen.collect import WorldConfig  # noqa: E402
from dreamgen.params import load_params  # noqa: E402
from dreamgen.policy import pipeline, windows  # noqa: E402
from dreamgen.training import TrainConfig  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=None, help="default: params.yaml train_policy.batch_size")
    ap.add_argument("--width", type=int, default=None, help="default: params.yaml train_policy.width")
    args = ap.parse_args(argv)
    p = load_params()["train_policy"]
    e = load_params()["evaluate"]
    torch.set_num_threads(p["threads"] or torch.get_num_threads())
    spec = json.loads(Path(e["spec_path"]).read_text())
    world = WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"])
    batch, width = args.batch_size or p["batch_size"], args.width or p["width"]
    out, tmp = {}, Path(tempfile.mkdtemp())
    for family in ("dp", "gr00t"):
        arm = windows.parse_arm(f"{family}-r3-n0-s0")
        cfg = pipeline.policy_config(arm, p["real_dataset_path"], None, p["estimator_dir"], image_size=p["image_size"],
                                     encoder=p["encoder"], keypoints=p["keypoints"], chunk=p["chunk"],
                                     width=width, layers=p["layers"], train_timesteps=p["train_timesteps"],
                                     inference_steps=p["inference_steps"])
        arm_data = pipeline.prepare_arm(arm, cfg, p["real_dataset_path"], p["neural_dataset_path"], p["ratio"], False)
        model, res, _ = pipeline.fit_policy(cfg, arm_data, TrainConfig(steps=args.steps, lr=p["lr"], seed=0,
                                                                    ckpt_every=10 ** 9), batch, tmp / family,
                                            estimator_dir=p["estimator_dir"])
        pipeline.save_policy(model, tmp / family)
        out[f"{family}_train_steps_per_s"] = round(res.steps_per_s, 2)
        out[f"{family}_parameters"] = sum(q.numel() for q in model.parameters())
    jobs = ev.eval_jobs(spec["behaviours"], [0], max(1, args.episodes // len(spec["behaviours"])), e["seed"])
    t0 = time.perf_counter()
    rows = ev.evaluate(("policy", str(tmp / "dp")), jobs, world, e["execute"], workers=args.workers)
    out["dp_eval_episodes_per_min"] = round(60 * len(rows) / (time.perf_counter() - t0), 1)
    out.update(encoder=p["encoder"], batch_size=batch, width=width, execute=e["execute"], workers=args.workers,
               mean_episode_steps=sum(r["steps"] for r in rows) / len(rows))
    print(json.dumps(out, indent=1))
    # the last full run: each arm's stage time, the evaluation's speed
    arms = {}
    for arm in p["arms"]:
        f = Path(p["metrics_dir"]) / f"{arm}.json"
        if f.is_file():
            arms[arm] = round(json.loads(f.read_text()).get("stage_seconds", float("nan")), 1)
    if arms:
        print(f"last run, train_policy seconds per arm (notebook, data, features, training): {json.dumps(arms)}")
        print(f"  all {len(arms)} arms: {sum(arms.values()) / 60:.1f} min")
    ev_path = Path(e["metrics_path"])
    if ev_path.is_file():
        m = json.loads(ev_path.read_text())
        print(f"last run, evaluate: {m.get('policy_episodes_per_min', float('nan')):.0f} policy episodes/min, "
              f"{m.get('stage_seconds', float('nan')) / 60:.1f} min for the stage")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
