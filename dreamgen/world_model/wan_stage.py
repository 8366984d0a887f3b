"""WAN2.1 image-to-video inside the pipeline's stages: the paper profile's world model.

Stage 04 fine-tunes a LoRA adapter on a WanImageToVideoPipeline (a diffusers folder or a Hub
model id already in the local cache: `finetune_world_model.wan_model`); stage 05 and every
other stage that loads a variant with `variants.load_variant` get a `WanDreamer` back for it.

The mini profile's clips are `num_frames` frames `frame_stride` control steps apart at
`image_size` pixels, the size the IDM labels. WAN keeps the spacing but needs 1 + 4 n frames
and its own frame size (`size`, a multiple of 16): frames are resized up for it and its dreams
back down, so the dreamed datasets, the labeller and every quality measure stay as they are.

    pipe, result, base_print, n = finetune_wan("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", bank, train_cfg,
                                               ckpt_root, batch_size=1, p_drop_text=0.1, size=480, rank=32)
    save_wan_variant(pipe, folder, base_print, meta, WanSettings("Wan-AI/...", 480, "bfloat16"), ClipSpec(33, 4, 32))
    dreamer, info = load_dreamer(folder)
    clips = wm.dream(dreamer, images, prompts, seeds, guidance_scale=5.0, steps=40)   # (N, 33, 32, 32, 3)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dreamgen.frames import resize_frames
from dreamgen.training import train
from dreamgen.world_model import lora, wan
from dreamgen.world_model.clips import ClipBank, ClipSpec, sample_clips
from dreamgen.world_model.fit import settings_dir

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class WanSettings:
    """What a WAN variant needs to be loaded again: the base model, its frame size, its dtype."""
    model: str          # diffusers folder or Hub model id of the WanImageToVideoPipeline
    size: int           # square frame size WAN trains and dreams at (a multiple of 16)
    dtype: str = "float32"  # of the transformer and text encoder: "float32" or "bfloat16"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"WAN dtype {self.dtype!r}: expected one of {sorted(DTYPES)}")
        if self.size < 16 or self.size % 16:
            raise ValueError(f"WAN frame size {self.size}: use a multiple of 16 (480 for WAN2.1-480P)")


def check_num_frames(num_frames: int) -> None:
    """WAN's VAE compresses time by 4: a clip has 1 + 4 n frames."""
    if num_frames < 5 or (num_frames - 1) % 4:
        raise ValueError(f"WAN clips have 1 + 4 n frames (5, 9, ..., 33, 81), got {num_frames}")


def resize_video(frames: np.ndarray, size: int) -> np.ndarray:
    """Square frames (..., H, H, 3) uint8 -> (..., size, size, 3) uint8.

    An integer downscale is dreamgen.frames.resize_frames' area mean (the mini profile's own
    resize, so real clips match theirs); anything else is antialiased bilinear.
    """
    frames = np.asarray(frames)
    h = frames.shape[-3]
    if h == size or (h > size and h % size == 0):
        return resize_frames(frames, size)
    if frames.dtype != np.uint8 or frames.shape[-1] != 3 or frames.shape[-2] != h:
        raise ValueError(f"frames must be (..., H, H, 3) uint8, got {frames.shape} {frames.dtype}")
    lead = frames.shape[:-3]
    x = torch.from_numpy(frames.reshape(-1, h, h, 3)).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return x.reshape(*lead, size, size, 3)


class WanLoraObjective(torch.nn.Module):
    """pipe.transformer's LoRA adapter as a model of dreamgen.training.train.

    loss(batch) is wan.wan_loss on batch = dict(frames (B, T, S, S, 3) uint8, prompts, seed); its
    state_dict holds the adapter's weights only, so a checkpoint of a 14B base stays megabytes.
    """

    def __init__(self, pipe, p_drop_text: float):
        super().__init__()
        self.transformer = pipe.transformer
        self.pipe = pipe  # not an nn.Module: the VAE and encoders stay out of parameters() and checkpoints
        self.p_drop_text = p_drop_text

    def loss(self, batch: dict):
        g = torch.Generator().manual_seed(int(batch["seed"]))
        return wan.wan_loss(self.pipe, batch["frames"], batch["prompts"], g, self.p_drop_text), {}

    def state_dict(self, *args, **kwargs):
        return lora.adapter_state(self.transformer)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        lora.set_adapter_state(self.transformer, state, "WAN training checkpoint")


def sample_batch(bank: ClipBank, rng: np.random.Generator, batch: int, size: int) -> dict:
    """A training batch for WanLoraObjective: clips cut as in the mini profile (sample_clips),
    resized to WAN's frame size, their instructions and a seed for the loss's noise."""
    clips, eps = sample_clips(bank, rng, batch)
    return dict(frames=resize_video(clips, size), prompts=[bank.tasks[i] for i in eps],
                seed=int(rng.integers(2 ** 62)))


def finetune_wan(settings: WanSettings, bank: ClipBank, train_cfg, ckpt_root, batch_size: int, p_drop_text: float,
                 rank: int, alpha: float | None = None, targets=wan.TARGETS, extra: dict | None = None,
                 desc: str = "finetune wan", accelerator=None):
    """LoRA fine-tune of the WAN pipeline `settings.model` on the clips of `bank` (any frame size:
    each batch is resized to settings.size; bank.spec.num_frames must be 1 + 4 n).

    Runs through dreamgen.training (accelerate, progress bar, checkpoints every
    train_cfg.ckpt_every steps, resuming) in ckpt_root/<hash of base, adapter, data and
    training settings>. Returns (pipe, TrainResult, base fingerprint, trainable parameters).
    """
    from accelerate import Accelerator

    check_num_frames(bank.spec.num_frames)
    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    pipe = wan.load_wan_i2v(settings.model, torch_dtype=DTYPES[settings.dtype])
    pipe.to(acc.device)  # the VAE and encoders too: they make each batch's conditioning
    pipe.transformer.enable_gradient_checkpointing()  # a 14B transformer's activations would not fit otherwise
    base_print = wan.wan_fingerprint(pipe.transformer)
    torch.manual_seed(train_cfg.seed)  # the adapter's random init: a rerun of the same seed starts from the same one
    n_train = wan.add_wan_lora(pipe, rank, alpha, targets)
    for p in pipe.transformer.parameters():  # train the adapter in float32 over a bf16 base, as diffusers does
        if p.requires_grad:
            p.data = p.data.float()
    run = dict(base=base_print, settings=asdict(settings), spec=bank.spec.to_dict(), rank=rank, alpha=alpha,
               targets=sorted(targets), train=train_cfg.identity(), batch_size=batch_size, p_drop_text=p_drop_text,
               **(extra or {}))
    ckpt = settings_dir(ckpt_root, run)
    objective = WanLoraObjective(pipe, p_drop_text)
    result = train(objective, lambda rng, step: sample_batch(bank, rng, batch_size, settings.size), train_cfg, ckpt,
                   desc=desc, accelerator=acc)
    pipe.transformer.requires_grad_(False)
    return pipe, result, base_print, n_train


def save_wan_variant(pipe, folder, base_print: str, meta: dict, settings: WanSettings, clip: ClipSpec) -> Path:
    """The adapter (wan.save_wan_lora) plus what loading it needs: the WAN settings and the clip
    spec of its dreams (frames, spacing and the output size the IDM labels)."""
    return wan.save_wan_lora(pipe, folder, meta=dict(meta, wan=asdict(settings), clip_spec=clip.to_dict(),
                                                     base_fingerprint=base_print))


@dataclass
class WanDreamer:
    """Dreams like a DreamGenVideoPipeline for the stages (`clip_spec`, `dream`): initial frames
    (N, S, S, 3) at clip_spec.image_size in, clips (N, num_frames, S, S, 3) out, WAN in between
    at `size` pixels."""
    pipe: object
    clip_spec: ClipSpec
    size: int
    accelerator: object = None

    def dream(self, images: np.ndarray, prompts: list[str], seeds: list[int], guidance_scale: float,
              steps: int) -> np.ndarray:
        images = np.asarray(images)
        s = self.clip_spec.image_size
        if images.ndim != 4 or images.shape[1:] != (s, s, 3) or images.dtype != np.uint8:
            raise ValueError(f"initial frames: expected (N, {s}, {s}, 3) uint8, the size this variant's dreams are "
                             f"measured and labelled at, got {images.shape} {images.dtype}; resize with "
                             "dreamgen.frames.resize_frames")
        up = resize_video(images, self.size)
        clips = wan.wan_generate(self.pipe, up, prompts, seeds, self.clip_spec.num_frames, self.size, self.size,
                                 steps, guidance_scale, accelerator=self.accelerator)
        return resize_video(clips, self.clip_spec.image_size)


def is_wan_variant(folder) -> bool:
    """True when `folder` holds an adapter saved by save_wan_variant."""
    path = Path(folder) / lora.CONFIG
    return path.is_file() and json.loads(path.read_text()).get("kind") == wan.KIND


def load_dreamer(folder, adapter: bool = True, accelerator=None) -> tuple[WanDreamer, dict]:
    """The WAN base a variant was trained on, with its adapter (or without: the zero-shot base),
    as a WanDreamer; returns (dreamer, info) like variants.load_variant.

    FileNotFoundError for a missing adapter or base model, ValueError for an adapter of
    another base.
    """
    cfg = lora.read_adapter_config(folder, "WAN LoRA adapter")
    meta = cfg.get("meta", {})
    if cfg.get("kind") != wan.KIND or "wan" not in meta:
        raise ValueError(f"{folder}: not a WAN variant of the pipeline (save it with save_wan_variant)")
    settings = WanSettings(**meta["wan"])
    pipe = wan.load_wan_i2v(settings.model, torch_dtype=DTYPES[settings.dtype])
    pipe.to(accelerator.device if accelerator is not None else "cuda" if torch.cuda.is_available() else "cpu")
    # without the adapter the base is taken on the adapter's word (fingerprinting 14B weights takes a minute);
    # with it, load_wan_lora checks the fingerprint
    info = dict(kind="base", base_dir=settings.model, base=meta["base_fingerprint"], variant_dir=None, meta=meta)
    if adapter:
        cfg = wan.load_wan_lora(pipe, folder)
        info |= dict(kind="lora", variant_dir=str(folder), rank=cfg["rank"])
    return WanDreamer(pipe, ClipSpec(**meta["clip_spec"]), settings.size, accelerator), info
