"""Closed-loop evaluation of policies in the simulator, with confidence intervals.

Every policy compared is run from the same seeded initial states: `eval_jobs` derives one seed
per (behaviour, environment, episode) from a base seed, so two arms differ only by their
policy. An actor proposes a chunk of actions from an observation; the first `execute` of them
are executed before it is asked again (receding horizon). Episodes run in worker processes
and come back in job order, so results do not depend on the number of workers.
"""
from __future__ import annotations

import functools
import multiprocessing as mp
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

from dreamgen.collect import WorldConfig
from dreamgen.report import wilson_interval


@dataclass(frozen=True)
class EvalJob:
    behaviour: str
    environment: int
    seed: int
    embodiment: str = "robot"


def eval_jobs(behaviours: Iterable[str], environments: Iterable[int], episodes_per_cell: int, base_seed: int,
              embodiment: str = "robot") -> list[EvalJob]:
    """One job per behaviour x environment x episode; seed = base + 100000 b + 1000 e + k, so a
    cell's initial states do not depend on which other cells are evaluated."""
    from dreamgen.world import BEHAVIOURS

    return [EvalJob(b, int(e), base_seed + 100_000 * BEHAVIOURS.index(b) + 1_000 * int(e) + k, embodiment)
            for b in behaviours for e in environments for k in range(episodes_per_cell)]


# --------------------------------------------------------------------------- actors

class PolicyActor:
    """A trained policy (folder of dreamgen.policy.config.save_policy) as an actor."""

    def __init__(self, folder_or_model):
        from dreamgen.policy.models import load_policy

        self.model = load_policy(folder_or_model) if isinstance(folder_or_model, str) else folder_or_model.eval()
        self.cfg = self.model.cfg

    def start(self, env, instruction: str, seed: int) -> None:
        import torch

        from dreamgen.policy.windows import embed_texts

        from dreamgen.policy.backbone import roles

        self.text = embed_texts([instruction])
        self.roles = roles([instruction])
        self.gen = torch.Generator().manual_seed(int(seed))  # the sampling noise is part of the seeded episode

    def chunk(self, env, obs: dict) -> np.ndarray:
        from dreamgen.frames import resize_frames
        from dreamgen.policy.windows import obs_batch

        image = resize_frames(obs["image"], self.cfg.image_size)[None]
        batch = obs_batch(image, self.text, obs["state"][None], np.ones(1, np.float32), self.roles)
        return self.model.predict(batch, generator=self.gen)[0].numpy()


class ExpertActor:
    """The scripted teleoperator (the upper bound): one action per query."""

    def __init__(self, noise: float = 1.0):
        self.noise = noise

    def start(self, env, instruction: str, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def chunk(self, env, obs: dict) -> np.ndarray:
        return env.expert_action(self.noise, self.rng)[None]


class ZeroActor:
    """Does nothing; a lower bound and a test that success is not free."""

    def start(self, env, instruction: str, seed: int) -> None:
        pass

    def chunk(self, env, obs: dict) -> np.ndarray:
        return np.zeros((16, 4), np.float32)


def make_actor(spec: tuple):
    """spec: ("policy", folder) | ("expert", noise) | ("zero",); picklable, so workers build their own."""
    kind = spec[0]
    if kind == "policy":
        return PolicyActor(spec[1])
    if kind == "expert":
        return ExpertActor(spec[1])
    if kind == "zero":
        return ZeroActor()
    raise ValueError(f"unknown actor spec {spec!r}")


def check_actor(spec: tuple, jobs: list[EvalJob]) -> None:
    """Refuse, before any episode, to evaluate a policy on an embodiment it was not trained for."""
    if spec[0] != "policy":
        return
    from dreamgen.policy.config import PolicyError, load_config

    cfg = load_config(spec[1])
    wrong = sorted({j.embodiment for j in jobs} - {cfg.embodiment})
    if wrong:
        raise PolicyError(f"{spec[1]}: policy trained for embodiment {cfg.embodiment!r}, asked to drive {wrong}; "
                          f"evaluate it on {cfg.embodiment!r} or train one for {wrong}")


# --------------------------------------------------------------------------- episodes

def run_episode(env, actor, job: EvalJob, execute: int, record: bool = False) -> dict:
    """Reset to the job's initial state and act until success or max_steps.

    Returns success, steps, instruction (and frames (T+1, H, W, 3) uint8 when record).
    """
    obs, info = env.reset(seed=job.seed, options=dict(embodiment=job.embodiment, behaviour=job.behaviour,
                                                       environment=job.environment))
    actor.start(env, info["instruction"], job.seed)
    frames = [obs["image"]] if record else None
    done, success, steps = False, False, 0
    while not done:
        for a in actor.chunk(env, obs)[:max(1, execute)]:
            obs, _, success, truncated, info = env.step(a)
            steps += 1
            if record:
                frames.append(obs["image"])
            done = success or truncated
            if done:
                break
    out = dict(asdict(job), success=bool(success), steps=steps, instruction=info["instruction"])
    if record:
        out["frames"] = np.stack(frames)
    return out


@functools.lru_cache(maxsize=4)
def _env(world: WorldConfig):
    from dreamgen.world import TabletopEnv

    return TabletopEnv(image_size=world.image_size, supersample=world.supersample, max_steps=world.max_steps)


@functools.lru_cache(maxsize=2)
def _actor(spec: tuple):
    return make_actor(spec)


def _play(args) -> dict:
    import torch

    torch.set_num_threads(1)  # one thread per worker: the workers are the parallelism
    spec, world, job, execute = args
    return run_episode(_env(world), _actor(spec), job, execute)


def evaluate(spec: tuple, jobs: list[EvalJob], world: WorldConfig, execute: int, workers: int = 1,
             desc: str | None = None) -> list[dict]:
    """Play every job with the actor of `spec`; one row per episode, in job order."""
    from tqdm import tqdm

    check_actor(spec, jobs)
    args = [(spec, world, j, execute) for j in jobs]
    bar = dict(total=len(jobs), desc=desc, disable=desc is None, mininterval=10, ascii=True)
    if workers <= 1:
        return list(tqdm(map(_play, args), **bar))
    with mp.get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(_play, args, chunksize=2), **bar))


def record_episode(spec: tuple, job: EvalJob, world: WorldConfig, execute: int) -> dict:
    """Re-run one (deterministic) episode in this process with its frames, for a video."""
    return run_episode(_env(world), make_actor(spec), job, execute, record=True)


# --------------------------------------------------------------------------- statistics

def success_table(rows: list[dict], by: list[str]) -> "pd.DataFrame":
    """Success rate, count and 95% Wilson interval per group of `by` columns."""
    import pandas as pd

    df = pd.DataFrame(rows)
    out = []
    for key, g in df.groupby(by, sort=False):
        k, n = int(g["success"].sum()), len(g)
        lo, hi = wilson_interval(k, n)
        out.append(dict(zip(by, key if isinstance(key, tuple) else (key,)), successes=k, episodes=n,
                        success=k / n, ci_lo=lo, ci_hi=hi))
    return pd.DataFrame(out)


def resolvable_difference(n_a: int, n_b: int, p: float = 0.5, z: float = 1.96) -> float:
    """The smallest success-rate difference two arms of n_a and n_b episodes resolve at 95%
    (two-sided two-proportion z-test, both rates near p; p = 0.5 is the widest case)."""
    if n_a < 1 or n_b < 1:
        raise ValueError(f"episode counts must be positive, got {n_a} and {n_b}")
    return float(z * np.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b)))


def loglinear_fit(counts, rates) -> dict:
    """Least-squares fit rate = a + b log10(count): slope b (success per decade), intercept a, R^2."""
    x, y = np.log10(np.asarray(counts, float)), np.asarray(rates, float)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("a log-linear fit needs at least two distinct counts")
    b, a = np.polyfit(x, y, 1)
    ss_res, ss_tot = float(((y - (a + b * x)) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    # R^2 is undefined when every rate is equal (None, so metrics stay valid JSON)
    return dict(slope=float(b), intercept=float(a), r2=float(1 - ss_res / ss_tot) if ss_tot > 0 else None,
                points=len(x))


# --------------------------------------------------------------------------- the results R1-R3

# The paper's numbers (success rates, %) for the side-by-side: DreamGen, Table 4 (RoboCasa,
# GR00T N1, 24 tasks) and section 4; demos per task of each data regime.
PAPER_R1 = {30: (17.4, 23.3), 100: (32.1, 39.9), 300: (49.6, 57.6)}
PAPER_R3 = 20.6


def arm_table(rows: list[dict]) -> "pd.DataFrame":
    """rows (one per episode, with an `arm` column) -> one row per arm: family, real, neural,
    seed, latent, idm, successes, episodes, success, ci_lo, ci_hi; plus `config` (the arm
    without its seed, e.g. gr00t-r10-n0-idm)."""
    import pandas as pd

    from dreamgen.policy.windows import parse_arm

    tab = success_table(rows, ["arm"])
    arms = [parse_arm(a) for a in tab["arm"]]
    meta = pd.DataFrame([dict(family=a.family, real=a.real_per_behaviour, neural=a.neural, seed=a.seed,
                              latent=a.latent, idm=a.idm, config=a.config) for a in arms])
    return pd.concat([meta, tab], axis=1)


def per_seed_text(seeds, rates) -> str:
    """'s0 0.14, s1 0.20': the per-seed success rates a pooled row stands for."""
    return ", ".join(f"s{int(s)} {r:.2f}" for s, r in sorted(zip(seeds, rates)))


def pool_seeds(arms: "pd.DataFrame") -> "pd.DataFrame":
    """One row per config (arm without seed) over its training seeds.

    success: the mean over seeds of each seed's success rate (the seed is the unit a policy is
    trained as); ci_lo, ci_hi: the Wilson interval of all the config's episodes pooled
    (successes / episodes; it covers episode noise, not the spread between seeds, which
    per_seed lists); pooled_success = successes / episodes (equal to success when every seed
    played the same episodes)."""
    import pandas as pd

    out = []
    for cfg, g in arms.groupby("config", sort=False):
        k, n = int(g["successes"].sum()), int(g["episodes"].sum())
        lo, hi = wilson_interval(k, n)
        first = g.iloc[0]
        out.append(dict(config=cfg, family=first["family"], real=int(first["real"]), neural=int(first["neural"]),
                        latent=bool(first["latent"]), idm=bool(first.get("idm", False)), seeds=len(g),
                        per_seed=per_seed_text(g["seed"], g["success"]), successes=k, episodes=n,
                        success=float(g["success"].mean()), pooled_success=k / n, ci_lo=lo, ci_hi=hi))
    return pd.DataFrame(out)


def _plain(df: "pd.DataFrame") -> "pd.DataFrame":
    """Configs trained on true real actions and IDM-labelled dreams: neither -lam nor -idm."""
    idm = df["idm"].astype(bool) if "idm" in df else df.latent & False
    return df[~df.latent.astype(bool) & ~idm]


def r1_table(pooled: "pd.DataFrame", r1_neural: int) -> "pd.DataFrame":
    """Per family and real-demo regime that has both configs: GT only vs GT + r1_neural neural
    (success = mean over seeds, CI pooled over their episodes, per-seed rates listed), ours
    beside the paper's (regimes matched by order over every family's regimes: our lowest to the
    paper's 30 demos, so a family run at one regime only still meets its own paper row). Where the
    -idm sanity config of the regime exists (same real episodes, IDM labels), its success too
    (idm_real, else NaN)."""
    import pandas as pd

    by = pooled.set_index("config")
    out, plain = [], _plain(pooled)
    both = lambda g: set(g[(g.neural == 0) & (g.real > 0)].real) & set(g[(g.neural == r1_neural) & (g.real > 0)].real)  # noqa: E731
    regimes = sorted(set().union(*[both(g) for _, g in plain.groupby("family")]))
    for fam, g in plain.groupby("family", sort=False):
        gt = g[(g.neural == 0) & (g.real > 0)].set_index("real")
        mix = g[(g.neural == r1_neural) & (g.real > 0)].set_index("real")
        for r in sorted(both(g)):
            paper = list(PAPER_R1.items())[min(regimes.index(r), len(PAPER_R1) - 1)]
            a, b = gt.loc[r], mix.loc[r]
            c = by.loc[f"{fam}-r{r}-n0-idm"] if f"{fam}-r{r}-n0-idm" in by.index else None
            out.append(dict(family=fam, real_per_behaviour=r, neural=r1_neural,
                            gt=a.success, gt_ci=f"[{a.ci_lo:.2f}, {a.ci_hi:.2f}]",
                            gt_neural=b.success, gt_neural_ci=f"[{b.ci_lo:.2f}, {b.ci_hi:.2f}]",
                            delta=b.success - a.success, seeds=int(min(a.seeds, b.seeds)),
                            gt_per_seed=a.per_seed, gt_neural_per_seed=b.per_seed, episodes=int(a.episodes),
                            idm_real=float("nan") if c is None else c.success,
                            idm_real_ci="" if c is None else f"[{c.ci_lo:.2f}, {c.ci_hi:.2f}]",
                            paper_demos=paper[0], paper_gt=paper[1][0] / 100, paper_gt_neural=paper[1][1] / 100))
    return pd.DataFrame(out)


def sanity_table(pooled: "pd.DataFrame", expert: dict) -> "pd.DataFrame":
    """The sanity rows beside R1: the scripted expert (upper bound), and for every -idm config the
    GT config of the same real episodes ("GT r10") and the IDM-labelled one ("IDM-labelled real
    (r10)"): their gap is what labelling alone costs a policy.

    expert: dict(successes, episodes). Returns rows: row, config, seeds, per_seed, successes,
    episodes, success, ci_lo, ci_hi.
    """
    import pandas as pd

    lo, hi = wilson_interval(int(expert["successes"]), int(expert["episodes"]))
    out = [dict(row="expert (upper bound)", config="expert", seeds=0, per_seed="", successes=int(expert["successes"]),
                episodes=int(expert["episodes"]), success=expert["successes"] / expert["episodes"], ci_lo=lo, ci_hi=hi)]
    by = pooled.set_index("config")
    idm = pooled[pooled["idm"].astype(bool)] if "idm" in pooled else pooled.iloc[:0]
    for r in idm.itertuples():
        extra = f" + {r.neural} neural" if r.neural else ""
        twin = r.config[:-len("-idm")]
        for label, cfg in ((f"GT r{r.real}{extra}", twin), (f"IDM-labelled real (r{r.real}){extra}", r.config)):
            if cfg in by.index and not any(o["config"] == cfg for o in out):
                c = by.loc[cfg]
                out.append(dict(row=label if pooled.family.nunique() == 1 else f"{r.family}: {label}", config=cfg,
                                seeds=int(c.seeds), per_seed=c.per_seed, successes=int(c.successes),
                                episodes=int(c.episodes), success=c.success, ci_lo=c.ci_lo, ci_hi=c.ci_hi))
    return pd.DataFrame(out)


def r2_points(pooled: "pd.DataFrame", r2_real: int) -> "pd.DataFrame":
    """The scaling configs: neural count (> 0) at r2_real real demos per behaviour, one row per
    family x count (success = mean over seeds, pooled CI), sorted by family and count."""
    g = _plain(pooled)
    g = g[(g.real == r2_real) & (g.neural > 0)].sort_values(["family", "neural"])
    return g.reset_index(drop=True)


def r2_seed_points(arms: "pd.DataFrame", r2_real: int) -> "pd.DataFrame":
    """The same scaling arms, one row per training seed (arm_table rows): every point the
    log-linear fit can use."""
    g = _plain(arms)
    g = g[(g.real == r2_real) & (g.neural > 0)].sort_values(["family", "neural", "seed"])
    return g.reset_index(drop=True)


def r2_fits(seed_points: "pd.DataFrame") -> dict:
    """Per family, the log-linear fit over every (seed, neural count) point (a count trained with
    more seeds weighs more); families with fewer than two distinct counts are left out.
    Each fit adds `seeds` per count, e.g. {25: 1, 100: 2}."""
    fits = {}
    for fam, g in seed_points.groupby("family", sort=False):
        if g.neural.nunique() >= 2:
            fits[fam] = loglinear_fit(g.neural, g.success) | dict(
                seeds={int(n): int(c) for n, c in g.groupby("neural").size().items()})
    return fits


def r7_table(pooled: "pd.DataFrame") -> "pd.DataFrame":
    """Each latent-path config beside the same data co-trained on IDM labels and the GT-only
    baseline (the paper: IDM and latent actions have "similar effects")."""
    import pandas as pd

    by = pooled.set_index("config")
    out = []
    for r in pooled[pooled.latent].itertuples():
        base = f"{r.family}-r{r.real}"
        row = dict(family=r.family, real_per_behaviour=r.real, neural=r.neural, latent=r.success,
                   latent_ci=f"[{r.ci_lo:.2f}, {r.ci_hi:.2f}]", episodes=r.episodes)
        for key, cfg in (("idm", f"{base}-n{r.neural}"), ("gt", f"{base}-n0")):
            row[key] = by.loc[cfg, "success"] if cfg in by.index else None
        out.append(row)
    return pd.DataFrame(out)
