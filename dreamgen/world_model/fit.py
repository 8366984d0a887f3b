"""Training the world model's denoiser on a clip bank, through the project's one training loop.

The loop (dreamgen.training.train) checkpoints and resumes; here it runs in chunks of
`sample_every` steps so that samples can be drawn over training, and those samples are kept
next to the checkpoint, so a resumed run still shows the whole history.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dreamgen.training import TrainConfig, TrainResult, train

from .clips import ClipBank, sample_clips
from .model import FlowMatchingVideoModel, logit_normal_t, shift_t

SNAPSHOTS = "snapshots.npz"
MODEL_CARD = "model_config.json"


def encode_tasks(pipe, tasks: list[str], batch: int = 64) -> tuple[torch.Tensor, np.ndarray]:
    """Embeddings of each distinct instruction (U, L, D) and, per task, its row (N,)."""
    unique = sorted(set(tasks))
    rows = {t: i for i, t in enumerate(unique)}
    emb = torch.cat([pipe.encode_prompt(unique[i:i + batch]) for i in range(0, len(unique), batch)])
    return emb.cpu(), np.array([rows[t] for t in tasks])


def make_sampler(pipe, bank: ClipBank, batch_size: int, p_drop_text: float, shift: float,
                 times: str = "shift") -> Callable:
    """sample(rng, step) -> batch for FlowMatchingVideoModel.loss; all randomness from rng.
    times: "shift" (uniform times warped by `shift`) or "logit_normal"."""
    emb, row = encode_tasks(pipe, bank.tasks)

    def sample(rng: np.random.Generator, step: int) -> dict:
        clips, eps = sample_clips(bank, rng, batch_size)
        with torch.no_grad():
            latents = pipe.encode_frames(clips).cpu()
        if times == "logit_normal":
            t = logit_normal_t(torch.as_tensor(rng.standard_normal(batch_size), dtype=torch.float32))
        else:
            t = shift_t(torch.as_tensor(rng.random(batch_size), dtype=torch.float32), shift)
        return dict(latents=latents, text=emb[row[eps]],
                    keep_text=torch.as_tensor(rng.random(batch_size) >= p_drop_text, dtype=torch.float32),
                    t=t.clamp(1e-3, 1.0),
                    noise=torch.as_tensor(rng.standard_normal(latents.shape), dtype=torch.float32))
    return sample


def model_card(pipe) -> dict:
    """What must match for a checkpoint to be resumed: the denoiser's and the pipeline's config."""
    # Keys starting with "_" are diffusers' bookkeeping; `_use_default_values` is built from a set,
    # so its order changes from process to process and would break resuming.
    # Training-recipe keys that restate the default (train_shift = the sampler's shift, no motion
    # weight) are left out, so checkpoints trained before those keys existed still resume.
    transformer = {k: v for k, v in pipe.transformer.config.items() if not k.startswith("_")}
    default = lambda k, v: (k == "train_shift" and v in (None, pipe.scheduler.config.shift)) or \
        (k == "motion_weight" and not v) or (k == "loss" and v == "velocity") or \
        (k == "train_times" and v == "shift")  # noqa: E731
    return json.loads(json.dumps(dict(transformer=transformer,
                                      pipeline={k: v for k, v in pipe.config.items() if not k.startswith("_")
                                                and not isinstance(v, (list, tuple)) and not default(k, v)}),
                                 default=str))


def check_resumable(ckpt_dir: Path, card: dict) -> None:
    """Raise ValueError if ckpt_dir holds a checkpoint of another model configuration."""
    path = ckpt_dir / MODEL_CARD
    if path.is_file():
        old = json.loads(path.read_text())
        if old != card:
            diff = sorted(k for part in ("transformer", "pipeline") for k in set(old.get(part, {})) | set(card[part])
                          if old.get(part, {}).get(k) != card[part].get(k))
            raise ValueError(f"{ckpt_dir}: incompatible checkpoint (differs in {', '.join(diff)}); delete the "
                             "folder to start over, or restore the parameters it was trained with")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=1))


def fit(pipe, bank: ClipBank, cfg: TrainConfig, ckpt_dir, batch_size: int, p_drop_text: float = 0.1,
        shift: float | None = None, bf16: bool = False, sample_every: int = 0,
        snapshot: Callable[[int], np.ndarray] | None = None, desc: str = "world model", train_all: bool = True):
    """Train pipe.transformer in place; returns (TrainResult over the whole run, {step: snapshot}).

    snapshot(step) -> array: called every `sample_every` steps (e.g. dreamed clips); kept in
    ckpt_dir/snapshots.npz so that a resumed run keeps the earlier ones.
    train_all: False trains only the parameters that already require grad (LoRA adapters).
    shift: the flow-time shift of the training times; None = the pipeline's training recipe.
    The loss's motion weight, space and time sampling are always the recipe's (pipe.training_recipe).
    """
    from accelerate import Accelerator

    ckpt_dir = Path(ckpt_dir)
    check_resumable(ckpt_dir, model_card(pipe))
    if train_all:
        pipe.transformer.requires_grad_(True)
    elif not any(p.requires_grad for p in pipe.transformer.parameters()):
        raise ValueError("fit(train_all=False): nothing to train; add a LoRA adapter first (lora.add_lora)")
    recipe = pipe.training_recipe
    model = FlowMatchingVideoModel(pipe.transformer, residual=pipe.config.residual,
                                   prediction=pipe.config.prediction, bf16=bf16,
                                   motion_weight=recipe["motion_weight"], loss=recipe["loss"])
    sample = make_sampler(pipe, bank, batch_size, p_drop_text, recipe["shift"] if shift is None else shift,
                          times=recipe["times"])
    snap_path = ckpt_dir / SNAPSHOTS
    snaps = dict(np.load(snap_path)) if snap_path.is_file() else {}
    snaps = {int(k): v for k, v in snaps.items()}
    ends = list(range(sample_every, cfg.steps, sample_every)) if sample_every else []
    acc = Accelerator(cpu=not torch.cuda.is_available())
    seconds, first = 0.0, None
    for end in ends + [cfg.steps]:
        res = train(model, sample, cfg, ckpt_dir, desc=desc, accelerator=acc, stop_after=end)
        first = res.resumed_from if first is None else first
        seconds += res.seconds
        if snapshot is not None and end not in snaps and res.steps_done > res.resumed_from:
            model.eval()
            snaps[end] = snapshot(end)
            np.savez_compressed(snap_path, **{str(k): v for k, v in snaps.items()})
    if train_all:
        pipe.transformer.requires_grad_(False)
    pipe.transformer.eval()
    done = res.steps_done - first
    speed = done / max(seconds, 1e-9) if done else res.steps_per_s  # a finished checkpoint keeps its speed
    return TrainResult(res.history, res.steps_done, first, seconds, speed), snaps


def settings_dir(root, settings: dict) -> Path:
    """root/<hash of `settings`>: a run's checkpoint folder, so each configuration resumes only itself."""
    import hashlib

    blob = json.dumps(settings, sort_keys=True, default=str)
    return Path(root) / hashlib.sha1(blob.encode()).hexdigest()[:12]


def checkpoint_dir(root, pipe, extra: dict) -> Path:
    """root/<hash of the model card + training settings>: each configuration resumes only itself."""
    return settings_dir(root, dict(model_card(pipe), extra=extra))
