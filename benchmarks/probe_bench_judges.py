"""Probe (issue 19): which state estimator and IF rule agree with the simulator on balanced clips?

Trains one estimator on simulator-labelled episodes (cached under --cache), then prints:
per-quantity errors on held-out frames, and IF accuracy of the state+predicate judge on
held-out clips balanced between successes and failures (`validity.success_and_failure_clips`),
per behaviour, plus swapped-instruction rejection. One JSON line per run goes to --out.

    python benchmarks/probe_bench_judges.py --arch heat --steps 3000
    python benchmarks/probe_bench_judges.py --arch success --steps 5000 --train-per 160

The object-slot estimators and the end-frame sampling of the jsonl's earlier lines were tried
and removed from dreamgen (they did not beat the heatmap estimator).
"""
from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch


def episodes(cache: Path, name: str, make):
    f = cache / f"{name}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    eps = make()
    f.write_bytes(pickle.dumps(eps))
    return eps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="heat", choices=("heat", "success"))
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--train-per", type=int, default=40)
    p.add_argument("--val-per", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--slack", type=float, default=0.0)
    p.add_argument("--cache", default="/tmp/pj")
    p.add_argument("--out", default="reports/probes/bench/estimator.jsonl")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    from dreamgen.bench import judges, nets, simulate, state, validity
    from dreamgen.collect import WorldConfig
    from dreamgen.training import TrainConfig
    from dreamgen.world.behaviours import BEHAVIOURS

    spec = json.loads(Path("data/world/spec.json").read_text())
    world = WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"])
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    n_env = spec["n_environments"]
    sim = lambda jobs: simulate.simulate_many(jobs, world, 32, 2)
    train = episodes(cache, f"train{a.train_per}", lambda: sim(simulate.make_jobs(a.train_per, BEHAVIOURS, n_env, 5_000_000)))
    val = episodes(cache, f"val{a.val_per}", lambda: sim(simulate.make_jobs(a.val_per, BEHAVIOURS, n_env, 6_000_000)))
    frames, states, masks = judges.frame_pool(train)
    if a.arch == "success":
        return success_probe(a, train, val)

    torch.manual_seed(0)
    est = nets.StateEstimator(nets.EstimatorConfig(32, a.width))
    t0 = time.time()
    res = judges.fit(est, judges.estimator_sampler(frames, states, masks, a.batch),
                     TrainConfig(a.steps, a.lr, 0, 500, log_every=max(1, a.steps // 10)),
                     cache / f"ckpt_{a.arch}_w{a.width}_b{a.batch}_n{a.train_per}", "estimator")
    train_s = time.time() - t0
    vf, vs, vm = judges.frame_pool(val)
    err = validity.estimator_errors(est.estimate(vf), vs, vm)
    print(err.to_string())

    rows = validity.success_and_failure_clips(val, 15, 4, "clean", "sim")
    clips = np.stack([r["clip"] for r in rows])
    n, t = clips.shape[:2]
    e = est.estimate(clips.reshape(n * t, *clips.shape[2:])).reshape(n, t, -1)
    truth = np.array([r["if_truth"] > 0.5 for r in rows])
    beh = np.array([r["behaviour"] for r in rows])
    by_slack = {}
    for slack in (0.0, 1.0, 2.0, 3.0, 4.0):
        pr = np.array([state.instruction_success(r["behaviour"], r["instruction"], e[k][0], e[k][-1], slack)
                       for k, r in enumerate(rows)])
        by_slack[slack] = float((pr == truth).mean())
    print("IF accuracy by slack", by_slack)
    pred = np.array([state.instruction_success(r["behaviour"], r["instruction"], e[k][0], e[k][-1], a.slack)
                     for k, r in enumerate(rows)])
    per = {b: dict(acc=float((pred[beh == b] == truth[beh == b]).mean()),
                   tpr=float(pred[(beh == b) & truth].mean()), tnr=float(1 - pred[(beh == b) & ~truth].mean()))
           for b in BEHAVIOURS}
    rng = np.random.default_rng(0)
    sw = []
    for k, r in enumerate(rows):
        if not truth[k]:
            continue
        others = [q for q in rows if q["behaviour"] != r["behaviour"]]
        o = others[rng.integers(len(others))]
        sw.append(not state.instruction_success(o["behaviour"], o["instruction"], e[k][0], e[k][-1]))
    out = dict(arch=a.arch, width=a.width, slack=a.slack, if_by_slack=by_slack, steps=a.steps, batch=a.batch, train_per=a.train_per,
               train_s=round(train_s), steps_per_s=res.steps_per_s, if_acc=float((pred == truth).mean()),
               if_balanced=float(np.mean([(pred[truth]).mean(), 1 - pred[~truth].mean()])), clips=len(rows),
               swapped_reject=float(np.mean(sw)), per_behaviour=per,
               errors={r.quantity: round(r.value, 3) for r in err.itertuples()})
    for b, v in per.items():
        print(f"{b:14s} acc {v['acc']:.2f} tpr {v['tpr']:.2f} tnr {v['tnr']:.2f}")
    print(f"IF acc {out['if_acc']:.3f} balanced {out['if_balanced']:.3f} swapped reject {out['swapped_reject']:.3f}; "
          f"{train_s:.0f} s train")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(out) + "\n")


def success_probe(a, train, val):
    """The pixel success judge (nets.SuccessNet) on the same balanced held-out clips."""
    from dreamgen.bench import judges, nets, validity
    from dreamgen.training import TrainConfig
    from dreamgen.world.behaviours import BEHAVIOURS

    torch.manual_seed(0)
    net = nets.SuccessNet(nets.SuccessConfig(32, a.width))
    t0 = time.time()
    res = judges.fit(net, judges.success_sampler(train, a.batch), TrainConfig(a.steps, a.lr, 0, 500, log_every=max(1, a.steps // 10)),
                     Path(a.cache) / f"ckpt_success_w{a.width}_b{a.batch}_n{a.train_per}", "success")
    train_s = time.time() - t0
    rows = validity.success_and_failure_clips(val, 15, 4, "clean", "sim")
    first = np.stack([r["clip"][0] for r in rows]); last = np.stack([r["clip"][-1] for r in rows])
    beh = np.array([r["behaviour"] for r in rows])
    prob = net.prob(first, last, [r["instruction"] for r in rows], [BEHAVIOURS.index(b) for b in beh])
    truth = np.array([r["if_truth"] > 0.5 for r in rows])
    pred = prob > 0.5
    rng = np.random.default_rng(0)
    sw_i, sw_b = [], []
    for k in np.flatnonzero(truth):
        others = [q for q in rows if q["behaviour"] != rows[k]["behaviour"]]
        o = others[rng.integers(len(others))]
        sw_i.append(o["instruction"]), sw_b.append(BEHAVIOURS.index(o["behaviour"]))
    sw = net.prob(first[truth], last[truth], sw_i, sw_b) < 0.5
    per = {b: dict(acc=float((pred[beh == b] == truth[beh == b]).mean()), tpr=float(pred[(beh == b) & truth].mean()),
                   tnr=float(1 - pred[(beh == b) & ~truth].mean())) for b in BEHAVIOURS}
    for b, v in per.items():
        print(f"{b:14s} acc {v['acc']:.2f} tpr {v['tpr']:.2f} tnr {v['tnr']:.2f}")
    out = dict(arch="success", width=a.width, steps=a.steps, batch=a.batch, train_per=a.train_per, train_s=round(train_s),
               steps_per_s=res.steps_per_s, if_acc=float((pred == truth).mean()), clips=len(rows),
               swapped_reject=float(sw.mean()), per_behaviour=per)
    print(f"IF acc {out['if_acc']:.3f} swapped reject {out['swapped_reject']:.3f}; {train_s:.0f} s train")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
