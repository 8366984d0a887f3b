"""Probe (issue 18): do the train_policy stage's own image policies learn from less noisy demos?

The true-state probe (probe_policy_ceiling.py) says the teleoperator's noise, not vision, is
what behaviour cloning fails on. This one keeps the stage's code and default sizes
(params.yaml train_policy: gr00t, 32 px, width 64, 800 steps) and changes only the demos: a
lab dataset like robot_cotrain collected at another teleop noise, then a GT-only arm trained
through dreamgen.policy.pipeline and evaluated closed loop as the evaluate stage does.

    python benchmarks/probe_policy_noise.py --noise 0 --real 30 --work /tmp/policy_noise [--out F.jsonl]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--real", type=int, default=30, help="demos per behaviour (collected and trained on)")
    p.add_argument("--family", default="gr00t")
    p.add_argument("--steps", type=int, default=0, help="0: train_policy.steps of params.yaml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=10, help="per behaviour, lab only")
    p.add_argument("--work", default="/tmp/policy_noise")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="")
    p.add_argument("--encoder", default="", help="'' : train_policy.encoder of params.yaml; conv or keypoints")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    import torch

    from dreamgen import data, evaluate
    from dreamgen.collect import WorldConfig, collect_successes
    from dreamgen.params import load_params
    from dreamgen.policy import pipeline, windows
    from dreamgen.training import TrainConfig
    from dreamgen.world import BEHAVIOURS, EMBODIMENTS

    params = load_params("params.yaml")
    tp, col, ev = params["train_policy"], params["collect"], params["evaluate"]
    spec = json.loads(Path(params["collect"]["spec_path"]).read_text())
    world = WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"])
    root = Path(a.work) / f"lab_noise{a.noise:g}_r{a.real}"
    t0 = time.time()
    if not (root / "meta" / "info.json").is_file():
        cells = [(spec["robot"], b, 0, a.real) for b in BEHAVIOURS]
        eps = collect_successes(cells, col["seed"], world, a.noise, col["max_attempt_factor"], a.workers, desc="demos")
        emb = EMBODIMENTS[spec["robot"]]
        data.write_dataset(root, eps, fps=spec["fps"], robot_type=spec["robot"], camera=col["camera"],
                           state_names=list(emb.state_names), action_names=list(emb.action_names), overwrite=True)
    t_collect = time.time() - t0
    torch.set_num_threads(a.threads)
    encoder = a.encoder or tp["encoder"]
    arm = windows.parse_arm(f"{a.family}-r{a.real}-n0-s{a.seed}")
    cfg = pipeline.policy_config(arm, str(root), image_size=tp["image_size"], encoder=encoder, keypoints=tp["keypoints"],
                                 chunk=tp["chunk"], width=tp["width"],
                                 layers=tp["layers"], train_timesteps=tp["train_timesteps"],
                                 inference_steps=tp["inference_steps"])
    arm_data = pipeline.prepare_arm(arm, cfg, str(root), "", tp["ratio"], tp["mask_neural_state"])
    steps = a.steps or tp["steps"]
    train_cfg = TrainConfig(steps=steps, lr=tp["lr"], seed=tp["seed"] + arm.seed, ckpt_every=steps,
                            log_every=max(1, steps // 10))
    ckpt = Path(a.work) / f"ckpt_{root.name}_{arm.name}_{steps}_{encoder}"
    model, result, _ = pipeline.fit_policy(cfg, arm_data, train_cfg, tp["batch_size"], ckpt)
    folder = pipeline.save_policy(model, Path(a.work) / f"policy_{root.name}_{arm.name}_{steps}_{encoder}")
    jobs = evaluate.eval_jobs(BEHAVIOURS, [0], a.episodes, ev["seed"], embodiment=spec["robot"])
    t1 = time.time()
    rows = evaluate.evaluate(("policy", str(folder)), jobs, world, ev["execute"], workers=a.workers)
    tab = evaluate.success_table(rows, ["behaviour"])
    k = int(sum(r["success"] for r in rows))
    out = dict(noise=a.noise, real=a.real, family=a.family, encoder=encoder, steps=steps, seed=a.seed, successes=k, episodes=len(rows),
               success=k / len(rows), per_behaviour=dict(zip(tab.behaviour, tab.success.round(2))),
               seconds=dict(collect=t_collect, train=result.seconds, eval=time.time() - t1))
    print(json.dumps(out))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
