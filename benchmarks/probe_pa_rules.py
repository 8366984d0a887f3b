"""Probe for issue 19: what the PA judge's `gone` rule and its calibration size buy, on the bench
stage's own clips.

Rebuilds the bench notebook's calibration and validity clips (the same seeds and params), estimates
their state trajectories once with the stage's saved estimator (cached), and scores rule sets in
numpy: per clip kind, the share flagged (broken kinds) or passed (valid kinds). Rows: the rules
without `gone` (the previous run's nine), all rules, and all rules calibrated on three times the
calibration episodes.

    python benchmarks/probe_pa_rules.py [--params params.yaml] [--cache /tmp/pa_probe.pkl]

Needs the bench stage's outputs (model_dir/estimator). Prints the table and writes its rows as
JSON lines to reports/probes/bench/pa_rules.jsonl (the table in notebook 09, "What was tried").
"""
from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np

from dreamgen.params import load_params, validate


def _world(cfg):
    from dreamgen.collect import WorldConfig
    spec = json.loads(Path(cfg.spec_path).read_text())
    return spec, WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"])


def _estimate(estimator, rows: list[dict]) -> np.ndarray:
    """Estimated state trajectories (N, T, D) of the rows' clips (N, T, S, S, 3)."""
    clips = np.stack([r["clip"] for r in rows])
    return estimator.estimate(clips.reshape(-1, *clips.shape[2:])).reshape(len(clips), clips.shape[1], -1)


def build(cfg, cache: Path) -> dict:
    import torch

    from dreamgen import data
    from dreamgen.bench import judges, simulate, validity
    from dreamgen.world.behaviours import BEHAVIOURS

    torch.set_num_threads(cfg.threads or 1)
    spec, world_cfg = _world(cfg)
    clip_args = dict(num_frames=cfg.num_frames, stride=cfg.frame_stride)
    n_env = spec["n_environments"]
    sim = lambda jobs, desc: simulate.simulate_many(jobs, world_cfg, cfg.image_size, cfg.workers, desc)
    t0 = time.time()
    val_eps = sim(simulate.make_jobs(cfg.val_per_behaviour, BEHAVIOURS, n_env, 6_000_000 + cfg.seed * 100_000), "validation")
    cal_eps = sim(simulate.make_jobs(cfg.calib_per_behaviour, BEHAVIOURS, n_env, 6_500_000 + cfg.seed * 100_000), "calibration")
    corrupt_eps = [e for k, kind in enumerate(simulate.CORRUPTIONS) for e in sim(
        simulate.make_jobs(cfg.corrupt_per_behaviour, simulate.corruptible(kind), n_env,
                           7_000_000 + cfg.seed * 100_000 + 10_000 * k, corruption=kind), kind)]
    ds = data.Dataset(cfg.real_dataset_path)
    held = list(range(0, ds.num_episodes, cfg.holdout_every))
    held = held[: cfg.real_clips] if cfg.real_clips else held
    real_eps = validity.resimulate_dataset(ds, held, world_cfg, cfg.image_size, cfg.workers)
    print(f"simulated in {time.time() - t0:.0f} s")
    cal_rows = validity.success_and_failure_clips(cal_eps, kind="calibration", source="sim", seed=cfg.seed, **clip_args)
    real_rows = validity.success_and_failure_clips(real_eps, kind="real", source="real", seed=cfg.seed, **clip_args)
    rows = validity.sim_clips(val_eps, corrupt_eps, seed=cfg.seed, **clip_args) + real_rows + validity.degraded(real_rows, cfg.seed)
    est = judges.Judges.load(cfg.model_dir).estimator
    out = dict(cal_states=_estimate(est, cal_rows), states=_estimate(est, rows), clips=np.stack([r["clip"] for r in rows]),
               meta=[{k: v for k, v in r.items() if k != "clip"} for r in rows])
    cache.write_bytes(pickle.dumps(out))
    return out


def score(d: dict, name: str, pa_fn, calibrate_fn) -> dict:
    thr = calibrate_fn(list(d["cal_states"]))
    pa = np.array([pa_fn(s, thr) for s in d["states"]])
    kinds = np.array([m["kind"] for m in d["meta"]])
    valid = np.array([m["pa_truth"] for m in d["meta"]]) > 0.5
    res = {}
    for k in dict.fromkeys(kinds):
        sel = kinds == k
        ok = pa[sel] >= 1.0
        res[k] = float(ok.mean() if valid[sel].all() else (~ok).mean())
    return dict(rules=name, **res)


def rules_without(drop: tuple[str, ...]):
    """(pa_fn, calibrate_fn) for physics.RULES minus `drop`: the dropped rules never fire and the
    calibration splits its false alarms over the rest, as the stage would with that rule set."""
    from dreamgen.bench import physics
    keep = tuple(r for r in physics.RULES if r not in drop)

    def calibrate(cal, clip_pass):
        saved, physics.RULES = physics.RULES, keep
        try:
            thr = physics.calibrate(cal, clip_pass)
        finally:
            physics.RULES = saved
        return physics.Thresholds(**{**thr.to_dict(), **{r: np.inf for r in drop}})

    return (lambda s, t: physics.physics_alignment(s, t)[0]), calibrate


def more_calibration(cfg, n_per_behaviour: int, cache: Path) -> np.ndarray:
    """Estimated states of calibration clips from n episodes per behaviour (the stage's seeds)."""
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    from dreamgen.bench import judges, simulate, validity
    from dreamgen.world.behaviours import BEHAVIOURS
    spec, world_cfg = _world(cfg)
    eps = simulate.simulate_many(simulate.make_jobs(n_per_behaviour, BEHAVIOURS, spec["n_environments"],
                                                    6_500_000 + cfg.seed * 100_000), world_cfg, cfg.image_size,
                                 cfg.workers, "calibration")
    rows = validity.success_and_failure_clips(eps, cfg.num_frames, cfg.frame_stride, "calibration", "sim", cfg.seed)
    out = _estimate(judges.Judges.load(cfg.model_dir).estimator, rows)
    cache.write_bytes(pickle.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cache", default="/tmp/pa_probe.pkl")
    args = ap.parse_args()
    cfg = validate("bench", load_params(args.params)["bench"])
    cache = Path(args.cache)
    d = pickle.loads(cache.read_bytes()) if cache.exists() else build(cfg, cache)

    rows = []
    for name, drop in (("without gone", ("gone",)), ("all rules", ())):
        pa_fn, cal_fn = rules_without(drop)
        rows.append(score(d, name, pa_fn, lambda c: cal_fn(c, cfg.pa_clip_pass)))
    cal = more_calibration(cfg, 3 * cfg.calib_per_behaviour, cache.with_name(cache.stem + "_cal3x.pkl"))
    pa_fn, cal_fn = rules_without(())
    rows.append(score(dict(d, cal_states=cal), "all rules, 3x calibration episodes", pa_fn,
                      lambda c: cal_fn(c, cfg.pa_clip_pass)))
    import pandas as pd
    print(pd.DataFrame(rows).set_index("rules").round(2).to_string())
    out = Path("reports/probes/bench"); out.mkdir(parents=True, exist_ok=True)
    with open(out / "pa_rules.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
