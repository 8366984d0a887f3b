"""The paper profile's world model: WAN2.1 image-to-video through diffusers, LoRA through peft.

    pipe = load_wan_i2v("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", torch_dtype=torch.bfloat16)
    add_wan_lora(pipe, rank=32, alpha=32)
    opt = torch.optim.AdamW([p for p in pipe.transformer.parameters() if p.requires_grad], lr=1e-4)
    loss = wan_lora_step(pipe, frames, prompts, opt, torch.Generator().manual_seed(0))  # frames (B, T, H, W, 3)
    save_wan_lora(pipe, "data/models/world_model/lora_wan", meta=dict(steps=1))
    clips = wan_generate(pipe, images, prompts, seeds, num_frames=33, height=480, width=832, steps=40,
                         guidance_scale=5.0, accelerator=accelerator)       # (N, T, H, W, 3) uint8

The same jobs as the mini profile's DreamGenVideoPipeline (pipeline.py) and peft adapters
(lora.py), on diffusers' own `WanImageToVideoPipeline`, so a paper run changes weights and
configs, not the method. Training conditions the transformer exactly as the pipeline's
sampling loop does (see `wan_lora_step`), so an adapter trained here is used unchanged by
`pipe(...)`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .lora import TARGETS, attach_adapter, read_adapter_config, write_adapter
from .text import check_prompts

PIPELINE_CLASS = "WanImageToVideoPipeline"
KIND = "wan_i2v_lora"
MAX_TEXT_TOKENS = 512  # WanImageToVideoPipeline.__call__'s default; training must pad prompts the same way


# ---- loading ---------------------------------------------------------------------------------
def _looks_like_repo_id(s: str) -> bool:
    """'org/name' with no local-path markers: something the Hugging Face cache may hold."""
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "~", "/"))


def load_wan_i2v(path_or_id, torch_dtype: torch.dtype = torch.float32, local_files_only: bool = True,
                 vae_dtype: torch.dtype = torch.float32):
    """A diffusers WanImageToVideoPipeline from a local folder or a Hub model id.

    torch_dtype: for the transformer and text encoder (bf16 on GPUs); the VAE and the CLIP image
    encoder load in `vae_dtype` (float32, as diffusers' WAN example does: the WAN VAE is
    sensitive to precision). local_files_only=True never touches the network: a model id must
    already be in the Hugging Face cache.

    Raises FileNotFoundError (what is missing and how to get it) and ValueError for a folder
    that holds another kind of pipeline or a transformer that is not WAN I2V-shaped.
    """
    from diffusers import WanImageToVideoPipeline

    s = str(path_or_id)
    path = Path(s).expanduser()
    get = ("download it once with `huggingface-cli download Wan-AI/Wan2.1-I2V-14B-480P-Diffusers "
           "--local-dir <folder>` and point the world model path at that folder")
    if path.exists():
        index = path / "model_index.json"
        if not index.is_file():
            raise FileNotFoundError(f"{path}: no WAN image-to-video model here (no model_index.json); {get}")
        name = json.loads(index.read_text()).get("_class_name")
        if name != PIPELINE_CLASS:
            raise ValueError(f"{path}: holds a {name}, not a {PIPELINE_CLASS}; point the world model path at a "
                             "WAN2.1 image-to-video pipeline in diffusers layout")
    elif not _looks_like_repo_id(s):
        raise FileNotFoundError(f"{s}: no such folder (and not a Hub model id like 'org/name'); {get}")
    dtypes = {"default": torch_dtype, "vae": vae_dtype, "image_encoder": vae_dtype}
    try:
        pipe = WanImageToVideoPipeline.from_pretrained(s, dtype=dtypes, local_files_only=local_files_only)
    except OSError as err:  # huggingface_hub's "not in the cache" errors are OSErrors
        where = "the local Hugging Face cache" if local_files_only else "the Hub"
        raise FileNotFoundError(f"{s}: no WAN image-to-video model in {where} ({err.__class__.__name__}); {get}, "
                                "or pass local_files_only=False on a machine with internet") from err
    check_wan_i2v(pipe, s)
    pipe.set_progress_bar_config(disable=True)  # one bar per clip would flood notebooks
    return pipe


def check_wan_i2v(pipe, where: str = "pipeline") -> None:
    """Raise ValueError unless `pipe` is WAN2.1-style I2V: one transformer whose input is
    [noisy latents, temporal mask, image-condition latents] = 2 x z_dim + scale_factor_temporal channels."""
    tr = pipe.transformer
    if tr is None:
        raise ValueError(f"{where}: the pipeline has no `transformer`")
    if getattr(pipe, "transformer_2", None) is not None or pipe.config.get("expand_timesteps", False):
        raise ValueError(f"{where}: a WAN2.2 pipeline (two experts or expanded timesteps); this path supports "
                         "WAN2.1 image-to-video only")
    z, mask = pipe.vae.config.z_dim, pipe.vae_scale_factor_temporal
    if tr.config.in_channels != 2 * z + mask or tr.config.out_channels != z:
        raise ValueError(f"{where}: incompatible checkpoint: transformer in/out channels {tr.config.in_channels}/"
                         f"{tr.config.out_channels}, but WAN I2V with a {z}-channel VAE needs {2 * z + mask}/{z}")
    if tr.config.image_dim is not None and getattr(pipe, "image_encoder", None) is None:
        raise ValueError(f"{where}: the transformer expects CLIP image embeddings (image_dim="
                         f"{tr.config.image_dim}) but the pipeline has no image_encoder")


# ---- LoRA ------------------------------------------------------------------------------------
def wan_fingerprint(transformer) -> str:
    """A short hash of the base transformer's config and exact weights (LoRA layers excluded).

    Floating weights are hashed as float32 bytes, so one bf16 checkpoint loaded in bf16 or in
    fp32 gives the same print (the upcast is exact); never float sums, whose last bits depend
    on the thread count. Reads every weight once: about a minute for a 14B model.
    """
    config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}  # not load-time extras
    h = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode())
    # with an adapter in place peft renames base weights `x.base_layer.weight`; hash the plain names
    for name, p in sorted((k.replace(".base_layer", ""), v) for k, v in transformer.state_dict().items()):
        if "lora_" in name:
            continue
        p = p.detach()
        p = p.float() if p.is_floating_point() else p
        h.update(name.encode())
        h.update(p.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def add_wan_lora(pipe, rank: int, alpha: float | None = None, targets: Sequence[str] = TARGETS) -> int:
    """Freeze every weight of the pipeline and add a trainable peft LoRA adapter to pipe.transformer
    on the modules named `targets` (default: the attention projections to_q/to_k/to_v/to_out.0 of
    self-, text- and image-cross-attention). Returns the adapter's trainable parameter count."""
    from peft import LoraConfig

    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    for name in ("transformer", "text_encoder", "image_encoder", "vae"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.requires_grad_(False)
    pipe.transformer.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=list(targets),
                                            init_lora_weights=True), adapter_name="default")
    n = sum(p.numel() for p in pipe.transformer.parameters() if p.requires_grad)
    if n == 0:
        raise ValueError(f"add_wan_lora: no module of the transformer matches targets {list(targets)}")
    return n


def save_wan_lora(pipe, folder, meta: dict | None = None) -> Path:
    """Write the adapter's weights (adapter_model.safetensors, LoRA weights only) and
    adapter_config.json (rank, alpha, targets, kind, base fingerprint, `meta`) to `folder`."""
    return write_adapter(pipe.transformer, folder, dict(kind=KIND, base=wan_fingerprint(pipe.transformer),
                                                        meta=meta or {}), caller="save_wan_lora",
                         adder="add_wan_lora")


def load_wan_lora(pipe, folder) -> dict:
    """Load an adapter saved by save_wan_lora onto `pipe`, frozen; returns its config.

    Raises FileNotFoundError for a missing adapter and ValueError for one of another kind or
    trained on another base transformer.
    """
    cfg = read_adapter_config(folder, "WAN LoRA adapter")
    if cfg.get("kind") != KIND:
        raise ValueError(f"{folder}: a {cfg.get('kind', 'mini-profile')} adapter, not a {KIND} one; it belongs "
                         "to another world model")
    here = wan_fingerprint(pipe.transformer)
    if cfg["base"] != here:
        raise ValueError(f"{folder}: adapter was trained on base transformer {cfg['base']}, but this one is "
                         f"{here}; load the base it was fine-tuned from")
    attach_adapter(pipe.transformer, folder, cfg)
    return cfg


# ---- conditioning, as WanImageToVideoPipeline builds it ------------------------------------------
def encode_text(pipe, prompts: Sequence[str], max_sequence_length: int = MAX_TEXT_TOKENS) -> torch.Tensor:
    """UMT5 token states (B, L, D), zero past each prompt's end, in the transformer's dtype.

    The pipeline's own encode_prompt when `ftfy` is installed; without it diffusers' prompt
    cleaning fails (it calls ftfy unconditionally), so the same steps run here minus ftfy's
    mojibake repair, which leaves plain instructions unchanged.
    """
    from diffusers.utils import is_ftfy_available

    prompts = list(prompts)
    dtype = pipe.transformer.dtype
    if is_ftfy_available():
        emb, _ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False,
                                    max_sequence_length=max_sequence_length, device=pipe._execution_device)
        return emb.to(dtype)
    import html

    from diffusers.pipelines.wan.pipeline_wan_i2v import whitespace_clean

    clean = [whitespace_clean(html.unescape(html.unescape(p)).strip()) for p in prompts]
    tok = pipe.tokenizer(clean, padding="max_length", max_length=max_sequence_length, truncation=True,
                         add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    device = next(pipe.text_encoder.parameters()).device
    with torch.no_grad():
        hidden = pipe.text_encoder(tok.input_ids.to(device), tok.attention_mask.to(device)).last_hidden_state
    # the pipeline cuts each prompt at its length and zero-pads: the same as masking
    hidden = hidden * tok.attention_mask.to(device)[..., None].to(hidden.dtype)
    return hidden.to(pipe._execution_device, dtype)


def check_frames(pipe, frames) -> np.ndarray:
    """Training clips as (B, T, H, W, 3) uint8 that WAN can encode; ValueError naming what is off."""
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: expected (B, T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    _check_size(pipe, frames.shape[1], frames.shape[2], frames.shape[3], "frames")
    return frames


def _check_size(pipe, num_frames: int, height: int, width: int, what: str) -> None:
    k = pipe.vae_scale_factor_temporal
    if num_frames < 1 or (num_frames - 1) % k:
        raise ValueError(f"{what}: {num_frames} frames, but the WAN VAE compresses time by {k}: use 1 + {k} x n "
                         f"frames (e.g. {1 + k * max(1, (num_frames - 1) // k)})")
    m = max(16, pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1])
    if height % m or width % m:
        raise ValueError(f"{what}: {height}x{width} frames, but this WAN model needs height and width divisible "
                         f"by {m}; resize with dreamgen.frames.resize_frames")


def _normalise(pipe, z: torch.Tensor) -> torch.Tensor:
    """VAE latents (B, z, t, h, w) -> the transformer's latent space, as the pipeline does."""
    cfg = pipe.vae.config
    mean = torch.tensor(cfg.latents_mean, device=z.device, dtype=z.dtype).view(1, cfg.z_dim, 1, 1, 1)
    std = torch.tensor(cfg.latents_std, device=z.device, dtype=z.dtype).view(1, cfg.z_dim, 1, 1, 1)
    return (z - mean) / std


def flow_shift(pipe) -> float:
    """The scheduler's timestep shift (FlowMatchEuler `shift`, UniPC `flow_shift`); training
    samples sigmas with the same shift so it spends its steps where sampling does."""
    cfg = pipe.scheduler.config
    return float(cfg.get("flow_shift", None) or cfg.get("shift", None) or 1.0)


def flow_pair(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rectified flow for latents (B, C, t, h, w) at noise levels sigma (B,): the noisy latents
    (1 - sigma) x0 + sigma noise (the scheduler's scale_noise) and the velocity noise - x0 that
    FlowMatchEulerDiscreteScheduler.step integrates from sigma = 1 down to 0."""
    sig = sigma.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - sig) * x0 + sig * noise, noise - x0


@torch.no_grad()
def wan_condition(pipe, frames: np.ndarray, prompts: Sequence[str],
                  max_sequence_length: int = MAX_TEXT_TOKENS) -> dict:
    """Everything the transformer sees besides the noisy latents, for clips (B, T, H, W, 3) uint8.

    Returns latents (B, z, t, h, w) normalised clean video latents (VAE mode, t = 1 + (T-1)/4);
    condition (B, 4 + z, t, h, w): the temporal mask (1 on the first frame's 4 sub-frames) and
    the latents of [first frame, T-1 zero frames], from the pipeline's own prepare_latents;
    text (B, L, D); image (B, L_img, D_img) CLIP penultimate states or None when the
    transformer has no image_dim.
    """
    from PIL import Image

    b, t, h, w, _ = frames.shape
    device, dtype = pipe._execution_device, pipe.transformer.dtype
    video = torch.as_tensor(frames, device=device).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1)
    z = pipe.vae.encode(video.to(pipe.vae.dtype)).latent_dist.mode()  # (B, z, t, h, w)
    latents = _normalise(pipe, z.float())
    firsts = [Image.fromarray(f) for f in frames[:, 0]]
    image = pipe.video_processor.preprocess(firsts, height=h, width=w).to(device, torch.float32)  # (B, 3, H, W)
    # prepare_latents handles one initial image per call (it repeats its condition batch_size
    # times), so each clip gets its own call; `latents` is a placeholder it passes through
    placeholder = torch.zeros(1, device=device)
    condition = torch.cat([pipe.prepare_latents(image[i:i + 1], 1, pipe.vae.config.z_dim, h, w, t, torch.float32,
                                                device, None, placeholder)[1] for i in range(b)])
    img = pipe.encode_image(firsts, device) if pipe.transformer.config.image_dim is not None else None
    return dict(latents=latents, condition=condition.to(dtype), text=encode_text(pipe, prompts, max_sequence_length),
                image=None if img is None else img.to(dtype))


def wan_loss(pipe, frames, prompts: Sequence[str], generator: torch.Generator, p_drop_text: float = 0.0,
             max_sequence_length: int = MAX_TEXT_TOKENS) -> torch.Tensor:
    """The rectified-flow loss of pipe.transformer on clips (B, T, H, W, 3) uint8 with one
    instruction each (a scalar tensor with gradients to the trainable weights).

    x0 = normalised VAE latents, eps ~ N(0, I), sigma = shift u / (1 + (shift - 1) u) with
    u ~ U(0, 1); x_sigma = (1 - sigma) x0 + sigma eps; the transformer sees
    [x_sigma, mask, image-condition latents] at timestep 1000 sigma with the text and CLIP
    image states, and regresses the velocity eps - x0 (what FlowMatchEulerDiscreteScheduler
    integrates). p_drop_text replaces the instruction with "" (the pipeline's default negative
    prompt) for classifier-free guidance. All randomness comes from `generator` (CPU).
    """
    check_wan_i2v(pipe)
    frames = check_frames(pipe, frames)
    prompts = check_prompts(prompts, len(frames))
    # a freshly loaded transformer has requires_grad everywhere: without this check a forgotten
    # add_wan_lora would silently fine-tune every base weight
    if not getattr(pipe.transformer, "_hf_peft_config_loaded", False) or not any(
            p.requires_grad for p in pipe.transformer.parameters()):
        raise ValueError("wan_lora_step: the transformer has no trainable LoRA adapter; add one first (add_wan_lora)")
    b = len(frames)
    drop = torch.rand(b, generator=generator) < p_drop_text
    prompts = ["" if d else p for p, d in zip(prompts, drop.tolist())]
    cond = wan_condition(pipe, frames, prompts, max_sequence_length)
    x0 = cond["latents"]
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    u = torch.rand(b, generator=generator)
    s = flow_shift(pipe)
    sigma = (s * u / (1 + (s - 1) * u)).to(x0.device)
    noisy, target = flow_pair(x0, noise, sigma)
    tr = pipe.transformer
    pred = tr(hidden_states=torch.cat([noisy, cond["condition"].float()], dim=1).to(tr.dtype),
              timestep=sigma * pipe.scheduler.config.num_train_timesteps,
              encoder_hidden_states=cond["text"], encoder_hidden_states_image=cond["image"], return_dict=False)[0]
    loss = torch.nn.functional.mse_loss(pred.float(), target)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"wan_lora_step: loss is {loss.item()}; lower the learning rate or use float32")
    return loss


def wan_lora_step(pipe, frames, prompts: Sequence[str], optimizer, generator: torch.Generator,
                  p_drop_text: float = 0.0, max_sequence_length: int = MAX_TEXT_TOKENS,
                  accelerator=None, max_grad_norm: float | None = 1.0) -> float:
    """One training step of pipe.transformer's trainable weights (the LoRA adapter after
    add_wan_lora) on `wan_loss`; returns the loss. The pipeline's stages train through
    dreamgen.training instead (wan_stage.finetune_wan), which adds checkpoints and resuming.
    """
    tr = pipe.transformer
    tr.train()
    loss = wan_loss(pipe, frames, prompts, generator, p_drop_text, max_sequence_length)
    params = [p for p in tr.parameters() if p.requires_grad]
    if accelerator is not None:
        accelerator.backward(loss)
    else:
        loss.backward()
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    tr.eval()
    return float(loss.detach())


# ---- generation --------------------------------------------------------------------------------
def _shard(n: int, accelerator) -> list[int]:
    """This process's indices of n items: contiguous blocks in process order, as label.shard does."""
    if accelerator is None or accelerator.num_processes == 1:
        return list(range(n))
    with accelerator.split_between_processes(list(range(n))) as part:
        return list(part)


def _gather(results: list, accelerator) -> list:
    """Every process's (index, clip) pairs."""
    if accelerator is None or accelerator.num_processes == 1:
        return results
    from accelerate.utils import gather_object

    return gather_object(results)


def wan_generate(pipe, images, prompts: Sequence[str], seeds: Sequence[int], num_frames: int, height: int,
                 width: int, steps: int, guidance_scale: float, accelerator=None, negative_prompt: str = "",
                 max_sequence_length: int = MAX_TEXT_TOKENS) -> np.ndarray:
    """Dream one clip per (initial frame, instruction, seed): images (N, H, W, 3) uint8 ->
    clips (N, num_frames, height, width, 3) uint8.

    Items are split over accelerate processes (contiguous blocks) and gathered back in item
    order on every process (write them from the main one). Clip i depends only on its own
    image, prompt and seed (a CPU torch.Generator), so results do not depend on how many
    processes share the work. One clip per pipeline call: WanImageToVideoPipeline takes one
    initial image per call.
    """
    from PIL import Image

    check_wan_i2v(pipe)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images: expected (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    n = len(images)
    prompts = check_prompts(prompts, n)
    seeds = [int(s) for s in seeds]
    if len(seeds) != n:
        raise ValueError(f"seeds: {len(seeds)} seeds for {n} initial frames; give one per clip")
    if steps < 1:
        raise ValueError(f"steps: need at least 1, got {steps}")
    _check_size(pipe, num_frames, height, width, "wan_generate")
    guided = guidance_scale > 1  # the pipeline's own rule for classifier-free guidance
    negative = encode_text(pipe, [negative_prompt or ""], max_sequence_length) if guided else None
    out = []
    for i in _shard(n, accelerator):
        with torch.no_grad():
            # prompt embeddings are passed in, so the pipeline never runs its ftfy-dependent cleaning
            video = pipe(image=Image.fromarray(images[i]), prompt_embeds=encode_text(pipe, [prompts[i]],
                                                                                     max_sequence_length),
                         negative_prompt_embeds=negative, height=height, width=width, num_frames=num_frames,
                         num_inference_steps=steps, guidance_scale=guidance_scale,
                         generator=torch.Generator().manual_seed(seeds[i]), output_type="np").frames
        clip = (np.clip(np.asarray(video[0], np.float32), 0, 1) * 255).round().astype(np.uint8)  # (T, H, W, 3)
        out.append((i, clip))
    pairs = sorted(_gather(out, accelerator), key=lambda p: p[0])
    return np.stack([c for _, c in pairs]) if pairs else np.zeros((0, num_frames, height, width, 3), np.uint8)
