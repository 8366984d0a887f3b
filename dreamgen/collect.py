"""Simulating many expert episodes in parallel: success tables and teleoperation datasets.

A `Job` names one seeded episode; `run_jobs` plays jobs in worker processes and yields their
episodes in job order, so results do not depend on the number of workers.
"""
from __future__ import annotations

import functools
import multiprocessing as mp
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

from tqdm import tqdm

from dreamgen.episode import Episode


@dataclass(frozen=True)
class WorldConfig:
    """The camera and episode settings every stage must share to see the same world."""

    image_size: int
    supersample: int
    max_steps: int


@dataclass(frozen=True)
class Job:
    embodiment: str
    behaviour: str
    environment: int
    seed: int
    paraphrase: bool = False
    noise_stream: int | None = None  # None: the recorded episodes' stream; another value: another take


@functools.lru_cache(maxsize=4)
def _env(world: WorldConfig):
    # One simulator per process and config: building it (sprites, textures) is not free.
    from dreamgen.world import TabletopEnv

    return TabletopEnv(image_size=world.image_size, supersample=world.supersample,
                       max_steps=world.max_steps)


def _play(args: tuple[WorldConfig, Job, float, bool]) -> Episode:
    from dreamgen.world import run_expert_episode

    world, job, noise, render = args
    stream = {} if job.noise_stream is None else dict(noise_stream=job.noise_stream)
    return run_expert_episode(_env(world), seed=job.seed, embodiment=job.embodiment,
                              behaviour=job.behaviour, environment=job.environment,
                              noise=noise, paraphrase=job.paraphrase, render=render, **stream)


def run_jobs(jobs: Iterable[Job], world: WorldConfig, noise: float, render: bool = True,
             workers: int = 1, desc: str | None = None) -> Iterator[Episode]:
    """Play each job with the scripted expert; yield episodes in job order."""
    jobs = list(jobs)
    args = [(world, j, noise, render) for j in jobs]
    bar = dict(total=len(jobs), desc=desc, disable=desc is None, mininterval=10, ascii=True)
    if workers <= 1:
        yield from tqdm(map(_play, args), **bar)
        return
    # fork shares the imported modules; chunks keep inter-process traffic small.
    with mp.get_context("fork").Pool(workers) as pool:
        yield from tqdm(pool.imap(_play, args, chunksize=4), **bar)


def retake(metas: list[dict], world: WorldConfig, noise_stream: int, workers: int = 1) -> list[Episode]:
    """The expert again from each recorded episode's reset (its meta: embodiment, behaviour,
    environment, seed, noise, paraphrase), with another teleoperation-noise stream: what a second
    take of the same demonstration looks like. A dream of that reset can be held to it."""
    noises = {float(m["noise"]) for m in metas}
    if len(noises) > 1:
        raise ValueError(f"retake: the episodes were recorded at different noise levels {sorted(noises)}; "
                         "retake each level apart")
    jobs = [Job(m["embodiment"], m["behaviour"], int(m["environment"]), int(m["seed"]),
                bool(m.get("paraphrase", False)), noise_stream) for m in metas]
    return list(run_jobs(jobs, world, noises.pop() if noises else 1.0, workers=workers))


def expert_success(embodiments: list[str], behaviours: list[str], n_environments: int,
                   episodes_per_cell: int, seed: int, world: WorldConfig, noise: float,
                   workers: int = 1) -> list[dict]:
    """Success of the noisy expert per embodiment x behaviour, environments taken in turn.

    Returns one row per episode: embodiment, behaviour, environment, seed, success, steps.
    """
    jobs = [Job(e, b, k % n_environments, seed + 1000 * (i * len(behaviours) + j) + k)
            for i, e in enumerate(embodiments) for j, b in enumerate(behaviours)
            for k in range(episodes_per_cell)]
    rows = []
    for job, ep in zip(jobs, run_jobs(jobs, world, noise, render=False, workers=workers,
                                      desc="expert episodes")):
        rows.append(dict(asdict(job), success=bool(ep.meta["success"]), steps=int(ep.meta["steps"])))
    return rows


def collect_successes(cells: list[tuple[str, str, int, int]], seed: int, world: WorldConfig,
                      noise: float, max_attempt_factor: float, workers: int = 1,
                      desc: str | None = None, stats: dict | None = None) -> Iterator[Episode]:
    """Yield `count` successful rendered episodes for each (embodiment, behaviour, environment, count).

    Failed attempts are dropped and retried with fresh seeds, up to `max_attempt_factor`
    times the wanted count per cell; `stats` (if given) receives attempts and failures.
    Seeds are `seed + 10_000 * cell + k`, so a cell's episodes do not depend on other cells.
    """
    stats = {} if stats is None else stats
    stats.update(attempts=0, failures=0, short_cells=[])
    pending = [(c, k) for c, (_, _, _, n) in enumerate(cells) for k in range(n)]
    kept = {c: 0 for c in range(len(cells))}
    next_k = {c: n for c, (_, _, _, n) in enumerate(cells)}
    while pending:
        jobs = [Job(*cells[c][:3], seed=seed + 10_000 * c + k) for c, k in pending]
        retry = []
        for (c, _), ep in zip(pending, run_jobs(jobs, world, noise, True, workers, desc)):
            stats["attempts"] += 1
            if ep.meta["success"]:
                kept[c] += 1
                yield ep
                continue
            stats["failures"] += 1
            if next_k[c] < max_attempt_factor * cells[c][3]:
                retry.append((c, next_k[c]))
                next_k[c] += 1
        pending = retry
    stats["short_cells"] = [cells[c][:3] for c, n in kept.items() if n < cells[c][3]]


def success_rate_table(rows: list[dict]):
    """Per embodiment x behaviour success rates (pandas DataFrame, embodiments as rows)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    return df.pivot_table(index="embodiment", columns="behaviour", values="success",
                          aggfunc="mean", sort=False)

