"""Probe (issue 18): how well can behaviour cloning do here when vision is solved?

The policies fail (GT 2 / 12 / 11% at 3 / 10 / 30 demos per behaviour). This probe removes
vision: the policy reads the simulator's true world state (dreamgen.bench.state.world_state),
re-expressed so that it generalises across colours and places:
- one token per colour slot (its object, zone and button entries, and the object and zone
  positions relative to the end effector), with its role in the instruction (named first,
  named second, not named) instead of its colour, pooled by role;
- the global entries, the proprioception and the behaviour as a one-hot.
A deterministic MLP predicts a chunk of actions (MSE), executed open loop for `--execute`
steps. Demonstrations come from the scripted teleoperator in the lab (environment 0), seeds
far from the evaluation's; evaluation uses dreamgen.evaluate's seeded initial states.

    python benchmarks/probe_policy_ceiling.py run --behaviours all --demos 30 [--noise 0] \
        [--out reports/probes/policy/ceiling.jsonl]
    python benchmarks/probe_policy_ceiling.py show --out reports/probes/policy/ceiling.jsonl \
        --png reports/probes/policy/policy_ceiling.png

Each run appends one JSON line (arguments, success per behaviour, timings) to --out.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dreamgen.bench import state as ST

NC, PC = len(ST.COLOUR_NAMES), len(ST.PER_COLOUR)
SLOT = ST.PER_COLOUR.index
DEMO_SEED = 5_000_000   # demonstrations; the evaluation's initial states start at 900,000


def roles(instruction: str) -> np.ndarray:
    """(NC, 3) one-hot role of each colour slot: named first, named second, not named."""
    named = [c for c in ST.instruction_colours(instruction) if c in ST.COLOUR_NAMES][:2]
    r = np.zeros((NC, 3), np.float32)
    r[:, 2] = 1
    for j, c in enumerate(named):
        k = ST.COLOUR_NAMES.index(c)
        r[k] = 0
        r[k, j] = 1
    return r


def features(state, mask, proprio, instruction: str, behaviour_index: int, previous=None):
    """(slots (NC, 2 PC + 7), global (2 (D - NC PC) + 4 + 10 [+ 4])) from one true state; with
    `previous` (the proprioception one step earlier), also the last step's motion: the teleoperator's
    lag makes its next command depend on its last one, which a single frame does not show."""
    blk, mb = (state * mask)[:NC * PC].reshape(NC, PC), mask[:NC * PC].reshape(NC, PC)
    ee = state[[ST.INDEX["ee_x"], ST.INDEX["ee_y"]]]
    rel = [(blk[:, [SLOT(f"{k}_x"), SLOT(f"{k}_y")]] - ee) * mb[:, [SLOT(f"{k}_x"), SLOT(f"{k}_y")]] * 10
           for k in ("obj", "zone")]
    slots = np.concatenate([blk, mb, *rel, roles(instruction)], 1)
    glob = [(state * mask)[NC * PC:], mask[NC * PC:], proprio, np.eye(10, dtype=np.float32)[behaviour_index]]
    if previous is not None:
        glob.append((proprio - previous) * 10)
    glob = np.concatenate(glob)
    return slots.astype(np.float32), glob.astype(np.float32)


class RolePooledMLP(nn.Module):
    """slots (B, NC, S) with their role one-hot last, global (B, G) -> chunk (B, chunk * 4)."""

    def __init__(self, slot_dim: int, glob_dim: int, out: int, width: int):
        super().__init__()
        self.tok = nn.Sequential(nn.Linear(slot_dim, width), nn.GELU(), nn.Linear(width, width))
        self.mlp = nn.Sequential(nn.Linear(3 * width + glob_dim, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                                 nn.Linear(width, out))

    def forward(self, slots, glob):
        t, r = self.tok(slots), slots[..., -3:]
        pooled = [(t * r[..., j:j + 1]).sum(1) for j in range(3)]
        return self.mlp(torch.cat([*pooled, glob], 1))


def observe(env, obs, estimator):
    """(state (D,), mask (D,)): the simulator's, or the estimator's reading of the rendered frame
    (every entry then counts as defined; presences are its probabilities)."""
    if estimator is None:
        return ST.world_state(env)
    x = torch.from_numpy(obs["image"][None]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        _, out = estimator(x)
    s = torch.where(torch.as_tensor(ST.BINARY), torch.sigmoid(out), out)[0].numpy()
    return s, np.ones_like(s)


def load_estimator(path: str):
    """The keypoint state estimator of probe_policy_backbone.py (its `encoder --arch kp` weights)."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from probe_policy_backbone import KeypointEncoder

    est = KeypointEncoder(ST.DIM, 24)
    est.load_state_dict(torch.load(path, map_location="cpu"))
    return est.eval()


def demonstrations(env, behaviours, n: int, noise: float, chunk: int, history: bool, estimator=None):
    """n successful teleoperated demos per behaviour -> (slots, global, chunks) windows."""
    from dreamgen.world import BEHAVIOURS

    out = ([], [], [])
    for b in behaviours:
        kept, k = 0, 0
        while kept < n:
            seed = DEMO_SEED + 10_000 * BEHAVIOURS.index(b) + k
            k += 1
            obs, info = env.reset(seed=seed, options=dict(embodiment="robot", behaviour=b, environment=0))
            rng = np.random.default_rng([seed, 7919])   # the datasets' teleop-noise stream
            rows, acts, ok, prev = [], [], False, obs["state"]
            for _ in range(env.max_steps):
                s, m = observe(env, obs, estimator)
                rows.append(features(s, m, obs["state"], info["instruction"], BEHAVIOURS.index(b),
                                     prev if history else None))
                prev = obs["state"]
                acts.append(env.expert_action(noise, rng))
                obs, _, ok, truncated, info = env.step(acts[-1])
                if ok or truncated:
                    break
            if not ok:
                continue
            acts = np.array(acts + [np.zeros(4, np.float32)] * chunk)  # the no-op after success
            for t, (sl, gl) in enumerate(rows):
                out[0].append(sl), out[1].append(gl), out[2].append(acts[t:t + chunk].reshape(-1))
            kept += 1
    return tuple(torch.from_numpy(np.stack(x)).float() for x in out)


def run(a) -> None:
    from dreamgen.evaluate import eval_jobs
    from dreamgen.world import BEHAVIOURS, TabletopEnv

    torch.set_num_threads(a.threads)
    behaviours = list(BEHAVIOURS) if a.behaviours == ["all"] else a.behaviours
    estimator = load_estimator(a.estimator) if a.estimator else None
    env = TabletopEnv(image_size=64, supersample=3, max_steps=80, render_obs=estimator is not None)
    t0 = time.time()
    slots, glob, chunks = demonstrations(env, behaviours, a.demos, a.noise, a.chunk, a.history, estimator)
    t_demo = time.time() - t0
    torch.manual_seed(a.seed)
    net = RolePooledMLP(slots.shape[-1], glob.shape[-1], chunks.shape[1], a.width)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    for step in range(a.steps):
        idx = torch.randint(0, len(chunks), (a.batch,), generator=gen)
        for g in opt.param_groups:
            g["lr"] = a.lr * 0.5 * (1 + np.cos(np.pi * step / a.steps))
        sl = slots[idx]
        if a.input_noise:  # perturb the defined entries: the states a drifting policy visits
            sl = sl + a.input_noise * torch.randn(sl.shape, generator=gen) * (sl != 0)
        loss = F.mse_loss(net(sl, glob[idx]), chunks[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    t_train = time.time() - t0
    net.eval()
    success: dict = {}
    t0 = time.time()
    for job in eval_jobs(behaviours, [0], a.episodes, a.eval_seed):
        obs, info = env.reset(seed=job.seed, options=dict(embodiment="robot", behaviour=job.behaviour, environment=0))
        done = ok = False
        prev, past = obs["state"], []
        while not done:
            s, m = observe(env, obs, estimator)
            sl, gl = features(s, m, obs["state"], info["instruction"], BEHAVIOURS.index(job.behaviour),
                              prev if a.history else None)
            with torch.no_grad():
                chunk = net(torch.from_numpy(sl[None]), torch.from_numpy(gl[None]))[0].reshape(a.chunk, 4)
            chunk = chunk.clamp(-1, 1).numpy()
            if a.ensemble:  # temporal ensembling (ACT): each step, the weighted mean of what recent chunks said of it
                past = [chunk] + [c[1:] for c in past if len(c) > 1][:a.chunk - 1]
                w = np.exp(-a.ensemble * np.arange(len(past)))     # newest first
                chunk = (sum(wi * c[0] for wi, c in zip(w, past)) / w.sum())[None]
            for act in chunk[:a.execute]:
                prev = obs["state"]
                obs, _, ok, truncated, info = env.step(act)
                done = ok or truncated
                if done:
                    break
        success.setdefault(job.behaviour, []).append(bool(ok))
    flat = [x for v in success.values() for x in v]
    row = dict(args={k: v for k, v in vars(a).items() if k not in ("cmd", "out", "png")}, windows=len(chunks),
               final_loss=float(loss), success=float(np.mean(flat)), episodes=len(flat),
               per_behaviour={b: float(np.mean(v)) for b, v in success.items()},
               seconds=dict(demos=t_demo, train=t_train, eval=time.time() - t0))
    print(json.dumps(row))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(row) + "\n")


def _plain(r: dict) -> bool:
    """A run with the default levers (no history, no ensembling, seed 0) over all behaviours."""
    g = r["args"]
    return (g["behaviours"] == ["all"] and not g.get("history") and not g.get("ensemble") and g["seed"] == 0
            and not g.get("estimator"))


def show(a) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dreamgen.report import wilson_interval

    rows = [json.loads(line) for line in Path(a.out).read_text().splitlines() if line.strip()]
    plain = [r for r in rows if _plain(r)]

    def errorbar(ax, pts, style, label):
        x, p, e = map(np.array, zip(*sorted(pts)))
        ci = np.array([wilson_interval(int(round(pi * ei)), int(ei)) for pi, ei in zip(p, e)])
        ax.errorbar(x, p, yerr=[p - ci[:, 0], ci[:, 1] - p], fmt=style, capsize=3, label=label)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for noise, style in ((1.0, "o-"), (0.0, "s")):
        pts = [(r["args"]["demos"], r["success"], r["episodes"]) for r in plain if r["args"]["noise"] == noise]
        if pts:
            errorbar(axes[0], pts, style, f"true state, teleop noise {noise:g}")
    axes[0].plot([3, 10, 30], [0.02, 0.12, 0.11], "kx--", label="the stage's image policies (GT, committed run)")
    axes[0].axhline(0.6, ls=":", color="gray", label="issue 18's bar at 30 demos")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("demos per behaviour")
    axes[0].set_ylabel("closed-loop success (10 behaviours)")
    axes[0].set_title("Behaviour cloning with vision solved (the simulator's state)", fontsize=9)
    pts = [(r["args"]["noise"], r["success"], r["episodes"]) for r in plain if r["args"]["demos"] == 30]
    if pts:
        errorbar(axes[1], pts, "o-", "30 demos per behaviour")
    axes[1].set_xlabel("teleoperation noise of the demos (the datasets: 1)")
    axes[1].set_title("The same policy against the demos' noise", fontsize=9)
    for ax in axes:
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    plt.tight_layout()
    fig.savefig(a.png, dpi=120)
    print(f"wrote {a.png} from {len(plain)} of {len(rows)} runs")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=["run", "show"])
    p.add_argument("--behaviours", nargs="+", default=["all"])
    p.add_argument("--demos", type=int, default=30, help="successful demos per behaviour")
    p.add_argument("--noise", type=float, default=1.0, help="teleop noise of the demos (the datasets use 1)")
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--execute", type=int, default=2)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--input-noise", type=float, default=0.05)
    p.add_argument("--ensemble", type=float, default=0.0,
                   help="> 0: temporal ensembling with weights exp(-m * age), one action per query")
    p.add_argument("--estimator", default="", help="keypoint estimator weights: read the state from pixels")
    p.add_argument("--history", action="store_true", help="also the last step's proprioceptive motion")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=10, help="per behaviour")
    p.add_argument("--eval-seed", type=int, default=900000, help="as evaluate.seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="")
    p.add_argument("--png", default="reports/probes/policy/policy_ceiling.png")
    a = p.parse_args()
    run(a) if a.cmd == "run" else show(a)


if __name__ == "__main__":
    main()
