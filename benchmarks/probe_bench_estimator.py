"""Probe (issue 18): train the bench stage's state estimator alone, as the policies' backbone.

    .venv/bin/python benchmarks/probe_bench_estimator.py --out /tmp/probe_estimator

The train_policy stage's default encoder ("state") reads the estimator the bench stage trains
(bench.model_dir/estimator). The bench stage needs the dreams and the world-model variants, so
to try the policies before those exist this runs the bench notebook's estimator cells only,
with params.yaml's bench values (its training episodes, seeds, width, steps, batch and learning
rate): the same estimator the stage would train on this machine. It prints the per-quantity
errors on the validation episodes, and saves the estimator where `--out` says; point
`train_policy.estimator_dir` at it (in a copy of params.yaml passed with
`python -m dreamgen.run train_policy --params COPY --arm ARM`).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/probe_estimator")
    a = p.parse_args()

    import torch

    from dreamgen.bench import judges, nets, simulate, validity
    from dreamgen.collect import WorldConfig
    from dreamgen.params import load_params
    from dreamgen.training import TrainConfig
    from dreamgen.world.behaviours import BEHAVIOURS

    cfg = load_params("params.yaml")["bench"]
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    spec = json.loads(Path(cfg["spec_path"]).read_text())
    world = WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"])
    t0 = time.time()
    sim = lambda jobs, desc: simulate.simulate_many(jobs, world, cfg["image_size"], cfg["workers"], desc)
    train_eps = sim(simulate.make_jobs(cfg["train_per_behaviour"], BEHAVIOURS, spec["n_environments"],
                                       5_000_000 + cfg["seed"] * 100_000), "train episodes")
    val_eps = sim(simulate.make_jobs(cfg["val_per_behaviour"], BEHAVIOURS, spec["n_environments"],
                                     6_000_000 + cfg["seed"] * 100_000), "validation episodes")
    frames, states, masks = judges.frame_pool(train_eps)
    t_sim = time.time() - t0
    torch.manual_seed(cfg["seed"])
    est = nets.StateEstimator(nets.EstimatorConfig(cfg["image_size"], cfg["estimator_width"]))
    out = Path(a.out)
    res = judges.fit(est, judges.estimator_sampler(frames, states, masks, cfg["batch_size"]),
                     TrainConfig(cfg["estimator_steps"], cfg["lr"], cfg["seed"], cfg["ckpt_every"],
                                 log_every=max(1, cfg["estimator_steps"] // 20)), out / "ckpt", "state estimator")
    nets.save(est, out / "estimator")
    vf, vs, vm = judges.frame_pool(val_eps)
    err = validity.estimator_errors(est.estimate(vf), vs, vm)
    print(err.to_string())
    print(json.dumps(dict(frames=len(frames), sim_seconds=round(t_sim), train_seconds=round(res.seconds),
                          steps_per_s=round(res.steps_per_s, 1), saved=str(out / "estimator"))))


if __name__ == "__main__":
    main()
