"""Probe (issue 18): an object-centric GR00T-style policy: colour-slot tokens + instruction tokens.

Usage: python benchmarks/probe_slot_policy.py --feat true|kp [--real 30] [--psteps 3000]
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
from probe_policy_backbone import KeypointEncoder, closed_loop  # its neighbour, as a script imports it

NC, PC = len(ST.COLOUR_NAMES), len(ST.PER_COLOUR)
NG = ST.DIM - NC * PC


def split_state(s, m):
    """(B, D) state and mask -> slots (B, NC, 2 PC), global (B, 2 NG)."""
    b = len(s)
    sl = torch.cat([(s * m)[:, :NC * PC].reshape(b, NC, PC), m[:, :NC * PC].reshape(b, NC, PC)], -1)
    gl = torch.cat([(s * m)[:, NC * PC:], m[:, NC * PC:]], -1)
    return sl, gl


class SlotPolicy(nn.Module):
    def __init__(self, colour_emb, text_dim=384, state_dim=4, action_dim=4, chunk=16, w=64, obs_layers=2, dit_layers=2):
        super().__init__()
        self.register_buffer("colour_emb", colour_emb)  # (NC, 384)
        self.txt = nn.Linear(text_dim, w)
        self.slot = nn.Sequential(nn.Linear(2 * PC, w), nn.GELU(), nn.Linear(w, w))
        self.glob = nn.Sequential(nn.Linear(2 * NG, w), nn.GELU(), nn.Linear(w, w))
        self.prop = nn.Sequential(nn.Linear(state_dim, w), nn.GELU(), nn.Linear(w, w))
        self.type_emb = nn.Parameter(torch.randn(4, w) * 0.02)  # slot, global, proprio, text
        mk = lambda n: nn.TransformerEncoder(nn.TransformerEncoderLayer(w, max(1, w // 32), 4 * w, 0.0, batch_first=True,
                                                                        norm_first=True), n, enable_nested_tensor=False)
        self.obs_tf = mk(obs_layers)
        self.dit = mk(dit_layers)
        self.act_in = nn.Linear(action_dim, w)
        self.act_pos = nn.Parameter(torch.randn(1, chunk, w) * 0.02)
        self.time = nn.Sequential(nn.Linear(64, w), nn.GELU(), nn.Linear(w, w))
        self.out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, action_dim))
        self.chunk, self.action_dim = chunk, action_dim

    def encode(self, s, m, prop, tok, tmask):
        sl, gl = split_state(s, m)
        slots = self.slot(sl) + self.txt(self.colour_emb)[None] + self.type_emb[0]
        toks = torch.cat([slots, (self.glob(gl) + self.type_emb[1])[:, None], (self.prop(prop) + self.type_emb[2])[:, None],
                          self.txt(tok) + self.type_emb[3]], 1)
        pad = torch.cat([torch.zeros(len(s), NC + 2, dtype=torch.bool), ~tmask], 1)
        return self.obs_tf(toks, src_key_padding_mask=pad), pad

    def velocity(self, x, t, obs, pad):
        from dreamgen.actions.idm import _time_embedding
        act = self.act_in(x) + self.act_pos + self.time(_time_embedding(t, 64))[:, None]
        pad2 = torch.cat([pad, torch.zeros(len(x), self.chunk, dtype=torch.bool)], 1)
        return self.out(self.dit(torch.cat([obs, act], 1), src_key_padding_mask=pad2)[:, obs.shape[1]:])

    def loss(self, s, m, prop, tok, tmask, a):
        obs, pad = self.encode(s, m, prop, tok, tmask)
        z = torch.randn_like(a)
        t = torch.rand(len(a))
        xt = (1 - t[:, None, None]) * z + t[:, None, None] * a
        return F.mse_loss(self.velocity(xt, t, obs, pad), a - z)

    @torch.no_grad()
    def predict(self, s, m, prop, tok, tmask, steps=8, gen=None):
        obs, pad = self.encode(s, m, prop, tok, tmask)
        x = torch.randn(len(s), self.chunk, self.action_dim, generator=gen)
        for i in range(steps):
            x = x + self.velocity(x, torch.full((len(s),), i / steps), obs, pad) / steps
        return x.clamp(-1, 1)


def token_text(texts, L=20):
    from dreamgen.policy.windows import _text_encoder
    from dreamgen.world_model.text import encode
    tok, model = _text_encoder()
    with torch.no_grad():
        h = encode(tok, model, list(texts), max_tokens=L)
    return h, h.abs().sum(-1) > 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", default="/tmp/probe_backbone")
    p.add_argument("--feat", default="true", choices=["true", "kp"])
    p.add_argument("--real", type=int, nargs="+", default=[30]); p.add_argument("--threads", type=int, default=1)
    p.add_argument("--w", type=int, default=64); p.add_argument("--psteps", type=int, default=3000)
    p.add_argument("--plr", type=float, default=1e-3); p.add_argument("--batch", type=int, default=64)
    p.add_argument("--episodes", type=int, default=10); p.add_argument("--execute", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    from dreamgen import data
    from dreamgen.bench.state import world_state
    from dreamgen.evaluate import eval_jobs
    from dreamgen.policy import windows as W
    from dreamgen.world import BEHAVIOURS, TabletopEnv

    torch.set_num_threads(a.threads)
    z = np.load(Path(a.work) / "states.npz")
    frames, states, masks, epi = (z[f"robot_cotrain.{k}"] for k in ("frames", "states", "masks", "episode"))
    enc = None
    if a.feat == "kp":
        enc = KeypointEncoder(ST.DIM, 24)
        enc.load_state_dict(torch.load(Path(a.work) / "encoder_kp.pt")); enc.eval()
        binary = torch.from_numpy(ST.BINARY)

        def read(imgs):
            out = []
            with torch.no_grad():
                for i in range(0, len(imgs), 512):
                    _, o = enc(torch.from_numpy(imgs[i:i + 512]).permute(0, 3, 1, 2).float() / 255)
                    out.append(torch.where(binary, torch.sigmoid(o), o))
            return torch.cat(out).numpy()
        states = read(frames)
        masks = np.ones_like(states)
    cemb = torch.from_numpy(W.embed_texts(list(ST.COLOUR_NAMES)))
    ds = data.Dataset("data/datasets/robot_cotrain")
    metas = ds.episodes_meta
    env = TabletopEnv(image_size=64, supersample=3, max_steps=80, render_obs=a.feat != "true")
    res = {}
    for r in a.real:
        sel = W.spread_select([W.behaviour_of(m) for m in metas], per_behaviour=r)
        S_, M_, P_, A_, T_ = [], [], [], [], []
        texts = {}
        for i in sel:
            ep = ds.episode(i)
            _, st, ac, _ = W.episode_windows(ep, 16, 1, 8)
            rows = np.where(epi == i)[0]
            S_.append(states[rows]); M_.append(masks[rows]); P_.append(st); A_.append(ac)
            T_.append(np.full(len(st), texts.setdefault(W.instruction(ep.task), len(texts))))
        Sx, Mx, Px, Ax = (torch.from_numpy(np.concatenate(v)).float() for v in (S_, M_, P_, A_))
        Tx = torch.from_numpy(np.concatenate(T_)).long()
        tok, tmask = token_text(list(texts))
        torch.manual_seed(a.seed)
        pol = SlotPolicy(cemb, w=a.w)
        opt = torch.optim.AdamW(pol.parameters(), lr=a.plr, weight_decay=1e-4)
        t0 = time.time()
        for step in range(a.psteps):
            g = torch.Generator().manual_seed(a.seed * 1_000_003 + step)
            idx = torch.randint(0, len(Sx), (a.batch,), generator=g)
            for gr in opt.param_groups:
                gr["lr"] = a.plr * 0.5 * (1 + np.cos(np.pi * step / a.psteps))
            loss = pol.loss(Sx[idx], Mx[idx], Px[idx], tok[Tx[idx]], tmask[Tx[idx]], Ax[idx])
            opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(pol.parameters(), 1.0); opt.step()
            if step % 500 == 0:
                print(f"r{r} step {step} loss {loss.item():.4f} {(step + 1) / (time.time() - t0):.1f} it/s", flush=True)
        tr_s = time.time() - t0
        pol.eval()
        t1 = time.time()

        def act(env, obs, text, gen):
            if a.feat == "true":
                s_, m_ = world_state(env)
            else:
                s_ = read(obs["image"][None])[0]
                m_ = np.ones_like(s_)
            return pol.predict(torch.from_numpy(s_[None]), torch.from_numpy(m_[None]),
                               torch.from_numpy(obs["state"][None]), *text, gen=gen)[0].numpy()

        rate, per = closed_loop(env, eval_jobs(BEHAVIOURS, [0], a.episodes, 900000), lambda ins: token_text([ins]), act,
                                a.execute)
        print(f"== slot r{r} feat={a.feat} w={a.w} steps={a.psteps}: success {rate:.2f}; train {tr_s:.0f}s eval {time.time() - t1:.0f}s; {per}", flush=True)
        res[f"r{r}"] = dict(success=rate, per=per)
    (Path(a.work) / f"slot_{a.feat}_{a.psteps}.json").write_text(json.dumps(res))


if __name__ == "__main__":
    main()
