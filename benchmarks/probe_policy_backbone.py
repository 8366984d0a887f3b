"""Probe (issue 18): does a state-predicting vision backbone, trained once, make policies learn?

Phases (each caches its result under --work):
  states   re-simulate the teleop + web datasets' episodes from their seeds: frames + world states
           (the frames are checked to equal the datasets' pixel for pixel)
  encoder  train a state estimator on those frames (--arch cnn: a plain CNN; --arch kp: spatial
           soft-argmax keypoints per colour slot for positions); per-quantity errors on 2,000
           random frames left out of training (their episodes are not)
  policy   cache features (--feat state|hidden|both, or the simulator's true state: true), train
           a GR00T-style flow head on them per real-data regime, evaluate closed loop

Usage (the runs of the README's "What limits the policies"):
  python benchmarks/probe_policy_backbone.py states --limit 600
  python benchmarks/probe_policy_backbone.py encoder --arch cnn --threads 1 --steps 3000 --batch 64
  python benchmarks/probe_policy_backbone.py encoder --arch kp --threads 1 --steps 3000 --batch 64
  python benchmarks/probe_policy_backbone.py policy --threads 1 --feat true --real 30 --psteps 4000
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


def sim_dataset(path, world, limit=None, workers=2):
    from dreamgen import data
    from dreamgen.bench import simulate as S

    ds = data.Dataset(path)
    metas = ds.episodes_meta[:limit] if limit else ds.episodes_meta
    jobs = [S.SimJob(m["behaviour"], int(m["environment"]), int(m["seed"]), float(m.get("noise", 1.0)),
                     embodiment=m["embodiment"]) for m in metas]
    eps = S.simulate_many(jobs, world, world.image_size, workers=workers, desc=f"sim {Path(path).name}")
    return ds, eps


def phase_states(a):
    from dreamgen.collect import WorldConfig

    spec = json.loads(Path(a.spec).read_text())
    world = WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"])
    out = {}
    for name in a.datasets:
        ds, eps = sim_dataset(f"data/datasets/{name}", world, a.limit)
        # check: the re-simulated frames are the dataset's
        for i in (0, len(eps) - 1):
            f = ds.episode(i).frames
            assert f.shape == eps[i].frames.shape, (name, i, f.shape, eps[i].frames.shape)
            err = np.abs(f.astype(int) - eps[i].frames.astype(int)).max()
            print(name, i, "max frame diff", err)
        out[name] = dict(frames=np.concatenate([e.frames for e in eps]), states=np.concatenate([e.states for e in eps]),
                         masks=np.concatenate([e.masks for e in eps]),
                         episode=np.concatenate([np.full(len(e), k) for k, e in enumerate(eps)]))
        print(name, out[name]["frames"].shape)
    Path(a.work).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(Path(a.work) / "states.npz", **{f"{n}.{k}": v for n, d in out.items() for k, v in d.items()})


class StateEncoder(nn.Module):
    """(B, 3, 64, 64) in [0, 1] -> hidden (B, H) and state prediction (B, D): a plain CNN, with the pixel
    coordinates as 2 extra input channels."""

    def __init__(self, dim, width=24, hidden=256):
        super().__init__()
        w = width

        def blk(i, o, s, k=3):
            return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2), nn.GroupNorm(8, o), nn.GELU())
        self.conv = nn.Sequential(blk(5, w, 2, 5), blk(w, 2 * w, 2), blk(2 * w, 2 * w, 1), blk(2 * w, 4 * w, 2),
                                  blk(4 * w, 4 * w, 1), blk(4 * w, 4 * w, 2))  # 64 -> 4
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, hidden), nn.GELU())
        self.head = nn.Linear(hidden, dim)

    def forward(self, x):
        b, _, s, _ = x.shape
        g = torch.linspace(-1, 1, s)
        coords = torch.stack(torch.meshgrid(g, g, indexing="ij"))[None].expand(b, -1, -1, -1)
        h = self.fc(self.conv(torch.cat([x * 2 - 1, coords], 1)))
        return h, self.head(h)


def keypoint_slots():
    """(names of the K keypoints, (K, 2) indices of their x, y entries in the state vector)."""
    from dreamgen.bench import state as ST
    names, ix = [], []
    for c in ST.COLOUR_NAMES:
        for k in ("obj", "zone"):
            names.append(f"{c}.{k}"); ix.append((ST.idx(c, k + "_x"), ST.idx(c, k + "_y")))
    names.append("ee"); ix.append((ST.INDEX["ee_x"], ST.INDEX["ee_y"]))
    return names, np.array(ix)


class KeypointEncoder(nn.Module):
    """(B, 3, 64, 64) -> hidden (B, H), state (B, D): positions from spatial soft-argmax keypoints
    (one heatmap per colour slot and the end effector), everything else from pooled features."""

    def __init__(self, dim, width=24, hidden=256):
        super().__init__()
        w = width

        def blk(i, o, s, k=3):
            return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2), nn.GroupNorm(8, o), nn.GELU())
        self.trunk = nn.Sequential(blk(3, w, 2, 5), blk(w, w, 2), blk(w, 2 * w, 1), blk(2 * w, 2 * w, 1))  # 16x16
        _, ix = keypoint_slots()
        self.register_buffer("kp_ix", torch.from_numpy(ix))
        k = len(ix)
        self.heat = nn.Conv2d(2 * w, k, 1)
        self.deep = nn.Sequential(blk(2 * w, 4 * w, 2), blk(4 * w, 4 * w, 2))  # 4x4
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16 + 3 * k, hidden), nn.GELU())
        self.head = nn.Linear(hidden, dim)
        self.scale = nn.Parameter(torch.full((k, 2), 0.5))
        self.bias = nn.Parameter(torch.full((k, 2), 0.5))

    def forward(self, x):
        f = self.trunk(x * 2 - 1)                           # (B, 2w, 16, 16)
        hm = self.heat(f)                                   # (B, K, 16, 16)
        b, k, s, _ = hm.shape
        p = hm.flatten(2).softmax(-1).reshape(b, k, s, s)
        g = torch.linspace(-1, 1, s)
        u = (p.sum(2) * g).sum(-1)                          # x: over columns
        v = (p.sum(3) * g).sum(-1)
        xy = torch.stack([u, v], -1) * self.scale + self.bias   # (B, K, 2) state units
        peak = hm.flatten(2).amax(-1)
        h = self.fc(torch.cat([self.deep(f).flatten(1), xy.flatten(1), peak], 1))
        out = self.head(h)
        out = out.index_put((torch.arange(b)[:, None], self.kp_ix[:, 0][None].expand(b, -1)), xy[..., 0])
        out = out.index_put((torch.arange(b)[:, None], self.kp_ix[:, 1][None].expand(b, -1)), xy[..., 1])
        return torch.cat([h, xy.flatten(1)], 1), out


def make_encoder(a, dim):
    width = a.width or 24  # the width measured
    return KeypointEncoder(dim, width) if a.arch == "kp" else StateEncoder(dim, width)


def aug(x, rng, shift=3, p_blur=0.5):
    b, _, s, _ = x.shape
    pad = F.pad(x, (shift,) * 4, mode="replicate")
    dx, dy = rng.integers(0, 2 * shift + 1, b), rng.integers(0, 2 * shift + 1, b)
    x = torch.stack([pad[i, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(b)])
    blur = torch.from_numpy(rng.random(b) < p_blur)
    if blur.any():
        lo = F.interpolate(F.avg_pool2d(x[blur], 2), scale_factor=2, mode="bilinear", align_corners=False)
        x[blur] = lo
    return x


def phase_encoder(a):
    from dreamgen.bench import state as ST

    torch.set_num_threads(a.threads)
    z = np.load(Path(a.work) / "states.npz")
    names = sorted({k.split(".")[0] for k in z.files})
    frames = np.concatenate([z[f"{n}.frames"] for n in names])
    states = np.concatenate([z[f"{n}.states"] for n in names])
    masks = np.concatenate([z[f"{n}.masks"] for n in names])
    # hold out every 10th frame block by episode parity for error reporting
    n = len(frames)
    rng0 = np.random.default_rng(0)
    perm = rng0.permutation(n)
    val, tr = perm[:2000], perm[2000:]
    binary = torch.from_numpy(ST.BINARY)
    torch.manual_seed(0)
    model = make_encoder(a, ST.DIM)
    print("encoder params", sum(p.numel() for p in model.parameters()) / 1e6, "M; frames", n)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    t0 = time.time()
    for step in range(a.steps):
        rng = np.random.default_rng([0, step])
        idx = tr[rng.integers(0, len(tr), a.batch)]
        x = torch.from_numpy(frames[idx]).permute(0, 3, 1, 2).float() / 255
        x = aug(x, rng)
        y, m = torch.from_numpy(states[idx]), torch.from_numpy(masks[idx])
        lr = a.lr * 0.5 * (1 + np.cos(np.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        _, p = model(x)
        l_reg = (((p - y) ** 2) * m * (~binary)).sum() / (m * (~binary)).sum().clamp(min=1)
        l_bin = (F.binary_cross_entropy_with_logits(p, y.clamp(0, 1), reduction="none") * m * binary).sum() / \
            (m * binary).sum().clamp(min=1)
        loss = 100 * l_reg + l_bin
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 200 == 0 or step == a.steps - 1:
            print(f"step {step} loss {loss.item():.4f} reg {l_reg.item():.5f} bin {l_bin.item():.4f} "
                  f"{(step + 1) / (time.time() - t0):.1f} steps/s", flush=True)
    torch.save(model.state_dict(), Path(a.work) / f"encoder_{a.arch}.pt")
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(frames[val]).permute(0, 3, 1, 2).float() / 255
        _, p = model(x)
        p = torch.where(binary, torch.sigmoid(p), p).numpy()
    y, m = states[val], masks[val]
    err = {}
    for j, name in enumerate(ST.NAMES):
        mm = m[:, j] > 0
        if mm.sum() < 5:
            continue
        if ST.BINARY[j]:
            err[name] = float(((p[mm, j] > 0.5) != (y[mm, j] > 0.5)).mean())
        else:
            err[name] = float(np.abs(p[mm, j] - y[mm, j]).mean() * (ST.SCALE if name.split(".")[-1] in
                                                                      ("obj_x", "obj_y", "zone_x", "zone_y", "ee_x", "ee_y") else 1))
    keys = {}
    for k, v in err.items():
        keys.setdefault(k.split(".")[-1], []).append(v)
    print({k: round(float(np.mean(v)), 3) for k, v in keys.items()})
    (Path(a.work) / f"encoder_err_{a.arch}.json").write_text(json.dumps(err, indent=1))


# ---------------------------------------------------------------------------- policy on features

class Head(nn.Module):
    """GR00T-style flow head on a cached observation vector: cond tokens + noisy action tokens."""

    def __init__(self, obs_dim, text_dim, state_dim, action_dim, chunk, width=128, layers=4, n_obs_tokens=4):
        super().__init__()
        w = width
        self.k = n_obs_tokens
        self.obs = nn.Sequential(nn.Linear(obs_dim, 2 * w), nn.GELU(), nn.Linear(2 * w, w * n_obs_tokens))
        self.text = nn.Sequential(nn.Linear(text_dim, w), nn.GELU(), nn.Linear(w, w))
        self.state = nn.Sequential(nn.Linear(state_dim, w), nn.GELU(), nn.Linear(w, w))
        self.act_in = nn.Linear(action_dim, w)
        self.pos = nn.Parameter(torch.randn(1, chunk + n_obs_tokens + 2, w) * 0.02)
        self.time = nn.Sequential(nn.Linear(64, w), nn.GELU(), nn.Linear(w, w))
        layer = nn.TransformerEncoderLayer(w, max(1, w // 32), 4 * w, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, action_dim))
        self.chunk, self.action_dim = chunk, action_dim

    def cond(self, obs, text, state):
        b = len(obs)
        return torch.cat([self.obs(obs).reshape(b, self.k, -1), self.text(text)[:, None], self.state(state)[:, None]], 1)

    def velocity(self, x, t, cond):
        from dreamgen.actions.idm import _time_embedding
        act = self.act_in(x) + self.time(_time_embedding(t, 64))[:, None]
        h = torch.cat([cond, act], 1) + self.pos
        return self.out(self.blocks(h)[:, cond.shape[1]:])

    def loss(self, obs, text, state, a):
        z = torch.randn_like(a)
        t = torch.rand(len(a))
        xt = (1 - t[:, None, None]) * z + t[:, None, None] * a
        return F.mse_loss(self.velocity(xt, t, self.cond(obs, text, state)), a - z)

    @torch.no_grad()
    def predict(self, obs, text, state, steps=8, gen=None):
        c = self.cond(obs, text, state)
        x = torch.randn(len(obs), self.chunk, self.action_dim, generator=gen)
        for i in range(steps):
            x = x + self.velocity(x, torch.full((len(obs),), i / steps), c) / steps
        return x.clamp(-1, 1)


class _Actor:
    """An actor for dreamgen.evaluate.run_episode: start(instruction) -> context once per episode,
    act(env, obs, context, generator) -> action chunk (chunk, 4) per query."""

    def __init__(self, start, act):
        self._start, self._act = start, act

    def start(self, env, instruction: str, seed: int) -> None:
        self.context, self.gen = self._start(instruction), torch.Generator().manual_seed(int(seed))

    def chunk(self, env, obs: dict) -> np.ndarray:
        return self._act(env, obs, self.context, self.gen)


def closed_loop(env, jobs, start, act, execute: int) -> tuple[float, dict]:
    """Play the evaluation jobs as the evaluate stage does: (success rate, {behaviour: rate})."""
    from dreamgen.evaluate import run_episode

    actor, per = _Actor(start, act), {}
    for job in jobs:
        per.setdefault(job.behaviour, []).append(run_episode(env, actor, job, execute)["success"])
    return float(np.mean([x for v in per.values() for x in v])), {b: float(np.mean(v)) for b, v in per.items()}


def phase_policy(a):
    from dreamgen import data
    from dreamgen.bench import state as ST
    from dreamgen.collect import WorldConfig
    from dreamgen.evaluate import eval_jobs
    from dreamgen.policy import windows as W
    from dreamgen.bench.state import world_state
    from dreamgen.world import BEHAVIOURS, TabletopEnv

    torch.set_num_threads(a.threads)
    z = np.load(Path(a.work) / "states.npz")
    frames, states, masks, epi = (z[f"robot_cotrain.{k}"] for k in ("frames", "states", "masks", "episode"))
    enc = make_encoder(a, ST.DIM)
    if a.feat != "true":  # the true state needs no estimator
        enc.load_state_dict(torch.load(Path(a.work) / f"encoder_{a.arch}.pt"))
    enc.eval()
    binary = torch.from_numpy(ST.BINARY)

    def featurize(imgs):  # (N, 64, 64, 3) uint8 -> (N, F)
        out = []
        with torch.no_grad():
            for i in range(0, len(imgs), 512):
                x = torch.from_numpy(imgs[i:i + 512]).permute(0, 3, 1, 2).float() / 255
                h, p = enc(x)
                p = torch.where(binary, torch.sigmoid(p), p)
                out.append(torch.cat([p, h], 1) if a.feat == "both" else (p if a.feat == "state" else h))
        return torch.cat(out).numpy()

    if a.feat == "true":
        feats = np.concatenate([states * masks, masks], 1)
    else:
        feats = featurize(frames)
    ds = data.Dataset("data/datasets/robot_cotrain")
    metas = ds.episodes_meta
    spec = json.loads(Path(a.spec).read_text())
    world = WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"])
    results = {}
    for r in a.real:
        sel = W.spread_select([W.behaviour_of(m) for m in metas], per_behaviour=r)
        F_, T_, S_, A_ = [], [], [], []
        texts = {}
        for i in sel:
            ep = ds.episode(i)
            _, st, ac, _ = W.episode_windows(ep, a.chunk, 1, 8)
            rows = np.where(epi == i)[0]
            assert len(rows) == len(st), (len(rows), len(st))
            F_.append(feats[rows]); S_.append(st); A_.append(ac)
            T_.append(np.full(len(st), texts.setdefault(W.instruction(ep.task), len(texts))))
        Fx, Sx, Ax, Tx = (torch.from_numpy(np.concatenate(v)).float() for v in (F_, S_, A_, T_))
        Tx = Tx.long()
        temb = torch.from_numpy(W.embed_texts(list(texts)))
        for seed in a.seeds:
            torch.manual_seed(seed)
            head = Head(Fx.shape[1], temb.shape[1], Sx.shape[1], Ax.shape[2], a.chunk, a.hw, a.layers)
            opt = torch.optim.AdamW(head.parameters(), lr=a.plr, weight_decay=1e-4)
            t0 = time.time()
            for step in range(a.psteps):
                g = torch.Generator().manual_seed(seed * 1_000_003 + step)
                idx = torch.randint(0, len(Fx), (a.batch,), generator=g)
                for gr in opt.param_groups:
                    gr["lr"] = a.plr * 0.5 * (1 + np.cos(np.pi * step / a.psteps))
                loss = head.loss(Fx[idx], temb[Tx[idx]], Sx[idx], Ax[idx])
                opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(head.parameters(), 1.0); opt.step()
                if step % 1000 == 0:
                    print(f"r{r} s{seed} step {step} loss {loss.item():.4f} {(step + 1) / (time.time() - t0):.0f} it/s", flush=True)
            train_s = time.time() - t0
            head.eval()
            env = TabletopEnv(image_size=world.image_size, supersample=world.supersample, max_steps=world.max_steps)
            jobs = eval_jobs(BEHAVIOURS, [0], a.episodes, 900000)
            t1 = time.time()

            def act(env, obs, text, gen):
                if a.feat == "true":
                    s_, m_ = world_state(env)
                    f = np.concatenate([s_ * m_, m_])[None]
                else:
                    f = featurize(obs["image"][None])
                return head.predict(torch.from_numpy(f).float(), text, torch.from_numpy(obs["state"][None]), gen=gen)[0].numpy()

            rate, per = closed_loop(env, jobs, lambda ins: torch.from_numpy(W.embed_texts([ins])), act, a.execute)
            print(f"== r{r} s{seed} feat={a.feat}: success {rate:.2f} over {len(jobs)} eps; train {train_s:.0f}s, "
                  f"eval {time.time() - t1:.0f}s; {per}", flush=True)
            results[f"r{r}-s{seed}"] = dict(success=rate, per_behaviour=per, train_s=train_s)
    tag = a.tag or a.feat
    (Path(a.work) / f"policy_{tag}.json").write_text(json.dumps(results, indent=1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("phase", choices=["states", "encoder", "policy"])
    p.add_argument("--work", default="/tmp/probe_backbone")
    p.add_argument("--spec", default="data/world/spec.json")
    p.add_argument("--datasets", nargs="+", default=["robot_cotrain", "web"])
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--width", type=int, default=0, help="0: 24, the width measured")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--feat", default="state", choices=["state", "hidden", "both", "true"])
    p.add_argument("--real", type=int, nargs="+", default=[3, 10, 30])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--hw", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--psteps", type=int, default=5000)
    p.add_argument("--plr", type=float, default=1e-3)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--execute", type=int, default=8)
    p.add_argument("--tag", default="")
    p.add_argument("--arch", default="cnn", choices=["cnn", "kp"])
    a = p.parse_args()
    dict(states=phase_states, encoder=phase_encoder, policy=phase_policy)[a.phase](a)


if __name__ == "__main__":
    main()
