"""One generic training loop for every model of the project (IDM, latent actions, ...).

A model exposes `loss(batch) -> (loss tensor, dict of floats to log)`; a `sample(rng, step)`
function draws a batch (so the data pipeline stays with the model's module). The loop runs
through `accelerate.Accelerator` (CPU, one GPU or many), shows tqdm progress, checkpoints
every `ckpt_every` steps and resumes from the last checkpoint in `ckpt_dir` when one is there.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: notebooks here have no widget front end

STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    steps: int          # optimizer steps in total (resuming continues up to this)
    lr: float
    seed: int
    ckpt_every: int     # save the training state every this many steps (and at the end)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 50
    schedule: str = "constant"  # "cosine": linear warm-up, then a cosine decay to 0 at `steps`
    warmup: int = 0             # warm-up steps of the cosine schedule

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0 <= self.warmup < max(self.steps, 1):
            raise ValueError(f"TrainConfig.warmup must be in [0, steps={self.steps}), got {self.warmup}")

    def identity(self) -> dict:
        """The fields that name a training run (for checkpoint folders).

        Under a constant learning rate a run of N steps is exactly the first N steps of a longer
        one (batches are drawn from (seed, step)), so `steps` is left out: raising `steps`
        resumes the shorter run's checkpoint instead of starting over. A cosine run's every
        step depends on its length, so there `steps` names the run. `ckpt_every` and
        `log_every` change nothing trained. The schedule's fields appear only when not at their
        defaults, so folders from before they existed keep their names.
        """
        out = asdict(self)
        del out["ckpt_every"], out["log_every"]
        if self.schedule == "constant":
            del out["steps"]
            if self.warmup == 0:
                del out["schedule"], out["warmup"]
        return out


SCHEDULES = ("constant", "cosine")


def lr_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of optimizer step `step` (0-based): a pure function of the step, so a
    resumed run follows the same schedule as an uninterrupted one."""
    if cfg.schedule == "constant":
        return cfg.lr
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    done = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * 0.5 * (1 + np.cos(np.pi * min(done, 1.0)))


@dataclass
class TrainResult:
    history: list[dict]     # one row per logged step: step, loss and the model's logs
    steps_done: int
    resumed_from: int       # 0 for a fresh run
    seconds: float
    steps_per_s: float      # of this call's steps; or, when nothing was left to train, of the run that trained them


def train(model: torch.nn.Module, sample: Callable[[np.random.Generator, int], dict],
          cfg: TrainConfig, ckpt_dir, desc: str = "train", accelerator=None,
          stop_after: int | None = None) -> TrainResult:
    """Train `model` in place with AdamW; return its loss history.

    sample(rng, step) -> batch: a dict of tensors (B, ...) on the CPU; the loop moves them.
    ckpt_dir: holds `train_state.pt` (model, optimizer, step, history, rng); a run finds it
              and continues from there, so an interrupted stage loses at most ckpt_every steps.
    stop_after: stop (after checkpointing) once this many steps are done in total, as if
                interrupted; for tests of resuming.
    The rng of step s is derived from (seed, s), so a resumed run draws the same batches as an
    uninterrupted one.
    """
    from accelerate import Accelerator

    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    torch.manual_seed(cfg.seed)
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, before = 0, [], 0.0
    state_path = ckpt_dir / STATE_FILE
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = state["step"], state["history"]
        if start > cfg.steps:
            raise ValueError(f"{state_path} holds a run already {start} steps long, past steps={cfg.steps}: "
                             f"raise steps to at least {start}, or delete {ckpt_dir} to train {cfg.steps} from scratch")
        before = state.get("train_seconds", 0.0)  # training time of the earlier calls, for the speed report
        torch.set_rng_state(state["torch_rng"])
    model, opt = acc.prepare(model, opt)
    core = acc.unwrap_model(model)

    def save(step: int) -> None:
        if acc.is_main_process:
            tmp = state_path.with_suffix(".tmp")
            torch.save(dict(model=core.state_dict(), optimizer=opt.state_dict(), step=step,
                            history=history, torch_rng=torch.get_rng_state(), config=asdict(cfg),
                            train_seconds=before + time.perf_counter() - t0), tmp)
            tmp.replace(state_path)  # a crash mid-write never leaves a broken checkpoint

    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    model.train()
    t0, running = time.perf_counter(), {}
    bar = tqdm(range(start, end), desc=desc, initial=start, total=cfg.steps, mininterval=10, ascii=True,
               disable=not acc.is_main_process)
    for step in bar:
        rng = np.random.default_rng([cfg.seed, step, acc.process_index])
        batch = {k: v.to(acc.device) if torch.is_tensor(v) else v for k, v in sample(rng, step).items()}
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        loss, logs = core.loss(batch)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        if cfg.grad_clip:
            acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        for k, v in dict(loss=loss.item(), **logs).items():
            running.setdefault(k, []).append(float(v))
        if (step + 1) % cfg.log_every == 0 or step + 1 == end:
            row = {"step": step + 1, **{k: float(np.mean(v)) for k, v in running.items()}}
            history.append(row)
            running = {}
            bar.set_postfix(loss=f"{row['loss']:.4f}")
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == end:
            save(step + 1)
    seconds = time.perf_counter() - t0
    model.eval()
    if end == start and before:  # nothing left to train: report the speed of the run that did
        return TrainResult(history, end, start, seconds, end / before)
    return TrainResult(history, end, start, seconds, (end - start) / max(seconds, 1e-9))
