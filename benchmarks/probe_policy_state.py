"""Probe (issue 18): can the policy heads learn this world when they see its true state?

    .venv/bin/python benchmarks/probe_policy_state.py --per 30 --steps 2000 [--source true|estimated]

Before building a vision backbone, this separates "the head and the data cannot do it" from
"the pixels are the problem". It collects `per` expert demos per lab behaviour (environment 0,
the target robot, the stage's teleop noise), with the simulator's object-centric world state
(`dreamgen.bench.state.world_state`) at every step, trains the GR00T-style flow head on
(world state, instruction, proprioception) -> 16-action chunks, and runs it closed loop on
10 seeded initial states per behaviour (executing 8 actions per query, as the evaluate stage).
Nothing in data/ is read or written.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from torch import nn

from dreamgen.bench import state as S
from dreamgen.policy.backbone import roles
from dreamgen.policy.config import PolicyConfig
from dreamgen.policy.models import FlowPolicy
from dreamgen.policy.windows import embed_texts
from dreamgen.world import BEHAVIOURS, TabletopEnv

N_COL = len(S.COLOUR_NAMES)
PER = len(S.PER_COLOUR)
N_GLOBAL = S.DIM - N_COL * PER


def mention_flags(text: str) -> np.ndarray:
    """(N_COL, 2): colour named first (the object) / later (the target): the stage's roles."""
    return roles([text])[0]


class StateTokens(nn.Module):
    """world state (B, D), mask (B, D), flags (B, N_COL, 2), text (B, 384), proprio (B, 4) -> tokens."""

    def __init__(self, w: int, use_flags: bool, relative: bool = False):
        super().__init__()
        self.use_flags, self.relative = use_flags, relative
        self.colour = nn.Sequential(nn.Linear(2 * PER + 2, w), nn.GELU(), nn.Linear(w, w))
        self.colour_id = nn.Parameter(torch.randn(1, N_COL, w) * 0.02)
        self.glob = nn.Sequential(nn.Linear(2 * N_GLOBAL, w), nn.GELU(), nn.Linear(w, w))
        self.text = nn.Sequential(nn.Linear(384, w), nn.GELU(), nn.Linear(w, w))
        self.prop = nn.Sequential(nn.Linear(5, w), nn.GELU(), nn.Linear(w, w))

    def forward(self, b: dict) -> torch.Tensor:
        s, m = b["wstate"] * b["wmask"], b["wmask"]
        n = len(s)
        if self.relative:  # every colour's x, y entries minus the end effector's, where defined
            s = s.clone()
            ee = s[:, [S.INDEX["ee_x"], S.INDEX["ee_y"]]]
            for c in S.COLOUR_NAMES:
                for k in ("obj", "zone", "button"):
                    i, j = S.idx(c, f"{k}_x"), S.idx(c, f"{k}_y")
                    s[:, i] = (s[:, i] - ee[:, 0]) * m[:, i] * 5
                    s[:, j] = (s[:, j] - ee[:, 1]) * m[:, j] * 5
        cs = torch.cat([s[:, :N_COL * PER].reshape(n, N_COL, PER), m[:, :N_COL * PER].reshape(n, N_COL, PER),
                        b["flags"] * float(self.use_flags)], -1)
        col = self.colour(cs) + self.colour_id
        g = self.glob(torch.cat([s[:, N_COL * PER:], m[:, N_COL * PER:]], -1))[:, None]
        prop = self.prop(torch.cat([b["state"], torch.ones(n, 1)], -1))[:, None]
        return torch.cat([col, g, self.text(b["text"])[:, None], prop], 1)


def collect(behaviours, per: int, seed0: int, max_steps: int = 80, noise: float = 1.0):
    env = TabletopEnv(render_obs=False, max_steps=max_steps)
    eps = []
    for bi, b in enumerate(behaviours):
        k = got = 0
        while got < per:
            seed = seed0 + 10_000 * bi + k
            k += 1
            obs, info = env.reset(seed=seed, options=dict(embodiment="robot", behaviour=b, environment=0))
            rng = np.random.default_rng([seed, 7919])
            ws, wm, st, ac = [], [], [], []
            success, left = False, 2
            for _ in range(max_steps):
                s, m = S.world_state(env)
                ws.append(s), wm.append(m), st.append(obs["state"])
                a = env.expert_action(noise, rng)
                ac.append(a)
                obs, _, _, trunc, info = env.step(a)
                success |= info["is_success"]
                left -= success
                if trunc or left < 0:
                    break
            if success:
                eps.append(dict(ws=np.stack(ws), wm=np.stack(wm), st=np.stack(st), ac=np.stack(ac),
                                text=info["instruction"], behaviour=b))
                got += 1
    return eps


def windows(eps, chunk: int):
    W = dict(ws=[], wm=[], st=[], ac=[], ti=[])
    texts = sorted({e["text"] for e in eps})
    for e in eps:
        t = len(e["ac"])
        pad = np.concatenate([e["ac"], np.zeros((chunk, 4), np.float32)])
        W["ws"].append(e["ws"]), W["wm"].append(e["wm"]), W["st"].append(e["st"])
        W["ac"].append(np.stack([pad[j:j + chunk] for j in range(t)]))
        W["ti"].append(np.full(t, texts.index(e["text"])))
    W = {k: np.concatenate(v) for k, v in W.items()}
    emb = embed_texts(texts)
    flags = np.stack([mention_flags(x) for x in texts])
    return W, emb, flags


def batch_of(W, emb, flags, idx):
    ti = W["ti"][idx]
    n = len(idx)
    # the stage encoder's keys too: the true state as the cached "features", the flags as roles
    return {"wstate": torch.from_numpy(W["ws"][idx]), "wmask": torch.from_numpy(W["wm"][idx]),
            "flags": torch.from_numpy(flags[ti]), "text": torch.from_numpy(emb[ti]),
            "state": torch.from_numpy(W["st"][idx]), "actions": torch.from_numpy(W["ac"][idx].astype(np.float32)),
            "features": torch.from_numpy(W["ws"][idx]), "roles": torch.from_numpy(flags[ti]),
            "state_mask": torch.ones(n, 1), "image": torch.zeros(n, 3, 32, 32)}


def evaluate(model, behaviours, per: int, execute: int, base_seed: int = 900000, stride: int = 100_000):
    env = TabletopEnv(render_obs=False)
    res = {}
    for b in behaviours:
        ok = 0
        for k in range(per):
            seed = base_seed + stride * BEHAVIOURS.index(b) + k
            obs, info = env.reset(seed=seed, options=dict(embodiment="robot", behaviour=b, environment=0))
            emb = embed_texts([info["instruction"]])
            fl = mention_flags(info["instruction"])[None]
            gen = torch.Generator().manual_seed(seed)
            done = success = False
            while not done:
                s, m = S.world_state(env)
                bt = {"wstate": torch.from_numpy(s[None]), "wmask": torch.from_numpy(m[None]),
                      "flags": torch.from_numpy(fl), "text": torch.from_numpy(emb), "state": torch.from_numpy(obs["state"][None]),
                      "features": torch.from_numpy(s[None]), "roles": torch.from_numpy(fl), "state_mask": torch.ones(1, 1),
                      "image": torch.zeros(1, 3, 32, 32)}
                for a in model.predict(bt, generator=gen)[0].numpy()[:execute]:
                    obs, _, success, trunc, info = env.step(a)
                    done = success or trunc
                    if done:
                        break
            ok += success
        res[b] = ok / per
    return res


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--per", type=int, default=30)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-flags", action="store_true")
    p.add_argument("--relative", action="store_true")
    p.add_argument("--noise", type=float, default=1.0, help="teleop noise of the demos")
    p.add_argument("--stage-encoder", action="store_true",
                   help="the train_policy stage's 'state' encoder (dreamgen.policy.backbone), fed the true state")
    p.add_argument("--behaviours", default=",".join(BEHAVIOURS))
    p.add_argument("--eval-per", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--execute", type=int, default=8)
    p.add_argument("--on-train", action="store_true", help="evaluate on the training demos' own resets")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.time()
    behaviours = a.behaviours.split(",")
    eps = collect(behaviours, a.per, 1000, noise=a.noise)
    W, emb, flags = windows(eps, 16)
    print(f"{len(eps)} demos, {len(W['ac'])} windows, {time.time() - t0:.0f} s", flush=True)
    cfg = PolicyConfig(family="gr00t", embodiment="robot", action_names=("vx", "vy", "wz", "grip"),
                       state_names=("x", "y", "yaw", "open"), width=a.width, layers=a.layers)
    if a.stage_encoder:
        from dataclasses import asdict, replace

        from dreamgen.bench.nets import EstimatorConfig

        cfg = replace(cfg, encoder="state", backbone=asdict(EstimatorConfig(32, 8, 32)))
    model = FlowPolicy(cfg)
    if not a.stage_encoder:
        model.obs = StateTokens(a.width, not a.no_flags, a.relative)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=a.steps, pct_start=0.05)
    rng = np.random.default_rng(0)
    t0 = time.time()
    for step in range(a.steps):
        loss, _ = model.loss(batch_of(W, emb, flags, rng.integers(0, len(W["ac"]), a.batch)))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 500 == 0 or step == a.steps - 1:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f} s", flush=True)
    model.eval()
    t0 = time.time()
    res = evaluate(model, behaviours, a.eval_per, a.execute, *((1000, 10_000) if a.on_train else (900000, 100_000)))
    print(" ".join(f"{b} {r:.1f}" for b, r in res.items()))
    print(f"mean success {np.mean(list(res.values())):.3f} over {a.eval_per * len(res)} episodes, eval {time.time() - t0:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
