"""DreamGenVideoPipeline: image + instruction -> video, in diffusers' pipeline style.

    pipe = DreamGenVideoPipeline.from_pretrained("data/models/world_model/base")
    # or, without importing dreamgen (diffusers' custom-pipeline loader; the package must be installed):
    pipe = DiffusionPipeline.from_pretrained("data/models/world_model/base", trust_remote_code=True)
    clips = pipe(image, prompt, num_frames=8, guidance_scale=3.0, num_inference_steps=20,
                 generator=torch.Generator().manual_seed(0)).frames   # (B, T, H, W, 3) uint8

Components: a denoiser in the `transformer` slot (the mini model's frames-as-channels
UNet2DConditionModel, or a WanTransformer3DModel), a FlowMatchEulerDiscreteScheduler, the
all-MiniLM-L6-v2 tokenizer and text encoder, and an optional VAE (None = pixel space: the
"latents" are the frames scaled to [-1, 1]; an AutoencoderKL makes it a latent model, as the
paper profile's WAN VAE does). The clip spec (num_frames, frame_stride, image_size) lives in
the pipeline's config, so later stages can check that they read clips the way it was trained.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .clips import ClipSpec
from .model import DenoiserConfig, FlowMatchingVideoModel, UNetConfig, build_denoiser, is_unet
from .text import check_prompts, encode, load_text_encoder


@dataclass
class DreamGenVideoOutput(BaseOutput):
    frames: np.ndarray  # (B, T, H, W, 3) uint8; frame 0 is the given image


# diffusers' custom-pipeline mechanism: model_index.json names ["pipeline", class] and the folder holds
# pipeline.py, so `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` finds this class
# without the project's own import. The file only re-exports it from the installed package.
CUSTOM_MODULE = "pipeline"
CUSTOM_CODE = ('"""DreamGen\'s world-model pipeline, for diffusers\' custom-pipeline loader:\n'
               '    DiffusionPipeline.from_pretrained(this_folder, trust_remote_code=True)\n'
               'It re-exports the class from the dreamgen package (pip install -e <the DreamGen repository>)."""\n'
               'from dreamgen.world_model.pipeline import DreamGenVideoPipeline  # noqa: F401\n')


def _is_own_custom_folder(path) -> bool:
    """True for a folder this class saved: its pipeline.py is exactly our re-export (safe to run)."""
    path = Path(path)
    code = path / f"{CUSTOM_MODULE}.py"
    try:
        name = json.loads((path / "model_index.json").read_text()).get("_class_name")
        return name == [CUSTOM_MODULE, "DreamGenVideoPipeline"] and code.read_text() == CUSTOM_CODE
    except (OSError, ValueError):
        return False


class DreamGenVideoPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["vae"]

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """diffusers' save, plus pipeline.py and a model_index.json that point its generic loader here."""
        super().save_pretrained(save_directory, *args, **kwargs)
        folder = Path(save_directory)
        index = json.loads((folder / "model_index.json").read_text())
        index["_class_name"] = [CUSTOM_MODULE, type(self).__name__]
        (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        (folder / f"{CUSTOM_MODULE}.py").write_text(CUSTOM_CODE)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' loader. A folder this class saved runs only its own pipeline.py (a re-export of this
        class), so trusting it is implied; any other custom code still needs trust_remote_code=True."""
        if _is_own_custom_folder(pretrained_model_name_or_path):
            kwargs.setdefault("trust_remote_code", True)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def __init__(self, transformer, scheduler, tokenizer, text_encoder, vae=None, image_size: int = 32,
                 num_frames: int = 8, frame_stride: int = 4, residual: bool = True, max_text_tokens: int = 16,
                 prediction: str = "x0", train_shift: float | None = None, motion_weight: float = 0.0,
                 loss: str = "velocity", train_times: str = "shift"):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, tokenizer=tokenizer,
                              text_encoder=text_encoder, vae=vae)
        self.register_to_config(image_size=image_size, num_frames=num_frames, frame_stride=frame_stride,
                                residual=residual, max_text_tokens=max_text_tokens, prediction=prediction,
                                train_shift=train_shift, motion_weight=motion_weight, loss=loss,
                                train_times=train_times)

    # ---- spec and checks -------------------------------------------------------------------
    @property
    def training_recipe(self) -> dict:
        """How the denoiser was trained, so a fine-tune continues with the same objective:
        shift (the flow-time shift of training; None in older models = the sampler's), motion_weight,
        loss (the MSE's space) and times (how flow times are drawn)."""
        shift = self.config.get("train_shift")
        return dict(shift=self.scheduler.config.shift if shift is None else shift,
                    motion_weight=self.config.get("motion_weight") or 0.0,
                    loss=self.config.get("loss") or "velocity", times=self.config.get("train_times") or "shift")

    @property
    def clip_spec(self) -> ClipSpec:
        c = self.config
        return ClipSpec(c.num_frames, c.frame_stride, c.image_size)

    def check_clip_spec(self, expected: ClipSpec) -> None:
        """Raise ValueError if a consumer (IDM, dream stage) expects other clips than the model makes."""
        if self.clip_spec != expected:
            raise ValueError(f"world model clip spec {self.clip_spec} differs from the expected {expected}")

    def check_image(self, image) -> np.ndarray:
        """Initial frames as (B, S, S, 3) uint8; raises ValueError naming the wrong size or type."""
        if isinstance(image, (list, tuple)):
            image = np.stack([np.asarray(im) for im in image])
        image = np.asarray(image)
        if image.ndim == 3:
            image = image[None]
        s = self.config.image_size
        if image.ndim != 4 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected (B, {s}, {s}, 3) or ({s}, {s}, 3) uint8, got {image.shape} {image.dtype}")
        if image.shape[1:3] != (s, s):
            raise ValueError(f"image: frames are {image.shape[1]}x{image.shape[2]} but this world model makes "
                             f"{s}x{s}; resize with dreamgen.frames.resize_frames(frames, {s})")
        return image

    # ---- encoders ----------------------------------------------------------------------------
    def encode_prompt(self, prompts) -> torch.Tensor:
        """Instruction token states (B, L, D), zero-padded to max_text_tokens."""
        return encode(self.tokenizer, self.text_encoder, prompts, self.config.max_text_tokens)

    def encode_frames(self, frames) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 -> latents (B, C, T, h, w); pixel space scales to [-1, 1]."""
        x = torch.as_tensor(np.asarray(frames), device=self.device).float().div(127.5).sub(1)
        x = x.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)
        if self.vae is None:
            return x
        b, c, t, h, w = x.shape
        flat = x.transpose(1, 2).reshape(b * t, c, h, w).to(self.vae.dtype)
        z = self.vae.encode(flat).latent_dist.mode() * self.vae.config.scaling_factor
        return z.reshape(b, t, *z.shape[1:]).transpose(1, 2).float()

    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Latents (B, C, T, h, w) -> (B, T, H, W, 3) uint8."""
        x = latents
        if self.vae is not None:
            b, c, t, h, w = x.shape
            flat = (x.transpose(1, 2).reshape(b * t, c, h, w) / self.vae.config.scaling_factor).to(self.vae.dtype)
            img = self.vae.decode(flat).sample.float()
            x = img.reshape(b, t, *img.shape[1:]).transpose(1, 2)
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 4, 1).cpu().numpy()

    # ---- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, image, prompt, num_frames: int | None = None, guidance_scale: float = 3.0,
                 num_inference_steps: int = 20, generator=None, output_type: str = "np",
                 return_dict: bool = True, eta: float = 0.0, callback_on_step_end=None):
        """Dream clips from initial frames (B, S, S, 3) uint8 and one instruction per frame.

        generator: a torch.Generator, or a list of B (one seed per clip, for recorded seeds).
        guidance_scale: classifier-free guidance; 1 disables the unconditional branch.
        output_type: "np" for frames (B, T, S, S, 3) uint8, "latent" for (B, C, T, h, w).
        eta: stochastic sampling in [0, 1]. Each step re-mixes the noise estimate with fresh noise
            (fraction eta of it, variance kept): 0 is the scheduler's deterministic Euler step, 1 re-noises
            the clean estimate from scratch, which washes out earlier steps' errors but also their detail.
        callback_on_step_end: called as f(pipe, step, t, dict(latents=..., x0=...)) after each step, x0
            being the guided clean estimate (B, C, T, h, w) in the model's target space (the residual
            from the first frame when `residual`); see evaluate.denoising_trajectory.
        """
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta: the fraction of fresh noise per step must lie in [0, 1], got {eta}")
        image = self.check_image(image)
        b = len(image)
        prompts = check_prompts(prompt, b)
        t_frames = num_frames or self.config.num_frames
        if t_frames < 2:
            raise ValueError(f"num_frames: need at least 2 (the given frame and one more), got {t_frames}")
        if is_unet(self.transformer) and t_frames != self.config.num_frames:
            raise ValueError(f"num_frames: this world model's U-Net makes clips of exactly {self.config.num_frames} "
                             f"frames (they are its channels), got {t_frames}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps: need at least 1, got {num_inference_steps}")
        if isinstance(generator, list) and len(generator) != b:
            raise ValueError(f"generator: {len(generator)} generators for {b} clips")
        net = FlowMatchingVideoModel(self.transformer, residual=self.config.residual,
                                     prediction=self.config.prediction)
        first = self.encode_frames(image[:, None])[:, :, 0]  # (B, C, h, w)
        text = self.encode_prompt(prompts).to(self.device)
        shape = (b, first.shape[1], t_frames, *first.shape[2:])
        latents = randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)
        guided = guidance_scale != 1.0
        if guided:  # one batched pass for both branches
            first2, text2 = torch.cat([first, first]), torch.cat([text, torch.zeros_like(text)])
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        sigmas = self.scheduler.sigmas  # flow times, one per step and a final 0
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            tt = (t / 1000).expand(b).float()
            if guided:
                v_c, v_u = net.velocity(torch.cat([latents, latents]), first2, torch.cat([tt, tt]), text2).chunk(2)
                v = v_u + guidance_scale * (v_c - v_u)
            else:
                v = net.velocity(latents, first, tt, text)
            s, s_next = float(sigmas[i]), float(sigmas[i + 1])
            x0 = latents - s * v  # x_t = (1 - t) x0 + t eps and v = eps - x0
            if eta == 0.0:
                latents = self.scheduler.step(v, t, latents, return_dict=False)[0]
            else:  # the same update with the noise estimate partly re-drawn
                eps = latents + (1 - s) * v
                fresh = randn_tensor(latents.shape, generator=generator, device=self.device, dtype=latents.dtype)
                latents = (1 - s_next) * x0 + s_next * ((1 - eta ** 2) ** 0.5 * eps + eta * fresh)
            if callback_on_step_end is not None:
                callback_on_step_end(self, i, t, dict(latents=latents, x0=x0))
        if self.config.residual:
            latents = latents + first[:, :, None]
        latents[:, :, 0] = first  # the given frame is the first frame, exactly
        if output_type == "latent":
            return DreamGenVideoOutput(frames=latents) if return_dict else (latents,)
        frames = self.decode_latents(latents)
        frames[:, 0] = image  # no rounding drift on the condition frame
        return DreamGenVideoOutput(frames=frames) if return_dict else (frames,)


def build_pipeline(denoiser: DenoiserConfig | UNetConfig, spec: ClipSpec, residual: bool = True, shift: float = 3.0,
                   max_text_tokens: int = 16, text=None, vae=None, prediction: str = "x0",
                   train_shift: float | None = None, motion_weight: float = 0.0, loss: str = "velocity",
                   train_times: str = "shift") -> DreamGenVideoPipeline:
    """A new pipeline with a randomly initialised denoiser (a UNetConfig or a DenoiserConfig).

    shift: the sampler's timestep shift; train_shift: that of the training times (None = shift,
    1 = uniform); motion_weight: extra loss weight on changing pixels. The last two are recorded
    loss: the MSE's space ("velocity", or "x0" = the clean clip, needs prediction x0); train_times:
    "shift" (train_shift) or "logit_normal". All four are recorded in the config
    (`training_recipe`) so that fine-tuning trains with the same objective.
    text: (tokenizer, text_encoder); default all-MiniLM-L6-v2 from site-packages.
    vae: None for pixel space, or a diffusers AutoencoderKL whose latent_channels == denoiser.channels.
    """
    channels = 3 if vae is None else vae.config.latent_channels
    if denoiser.channels != channels:
        raise ValueError(f"denoiser.channels={denoiser.channels} but the {'pixels' if vae is None else 'VAE'} "
                         f"give {channels} channels")
    factor = 1 if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)
    if spec.image_size % (factor * denoiser.patch):
        raise ValueError(f"image_size {spec.image_size} is not divisible by the VAE factor {factor} x "
                         f"{'U-Net levels factor' if isinstance(denoiser, UNetConfig) else 'patch'} {denoiser.patch}")
    if loss == "x0" and prediction != "x0":
        raise ValueError("loss 'x0' needs prediction 'x0' (the denoiser must output the clean clip)")
    tokenizer, encoder = text or load_text_encoder()
    if encoder.config.hidden_size != denoiser.text_dim:
        raise ValueError(f"denoiser.text_dim={denoiser.text_dim} but the text encoder gives {encoder.config.hidden_size}")
    net = build_denoiser(denoiser, spec.num_frames, spec.image_size // factor)
    pipe = DreamGenVideoPipeline(net, FlowMatchEulerDiscreteScheduler(shift=shift),
                                 tokenizer, encoder, vae, image_size=spec.image_size, num_frames=spec.num_frames,
                                 frame_stride=spec.frame_stride, residual=residual, max_text_tokens=max_text_tokens,
                                 prediction=prediction, train_shift=train_shift, motion_weight=motion_weight,
                                 loss=loss, train_times=train_times)
    pipe.set_progress_bar_config(disable=True)  # one bar per denoising loop would flood notebooks
    return pipe


def load_pipeline(path: str | Path) -> DreamGenVideoPipeline:
    """Load a saved DreamGenVideoPipeline, with a clear error when the folder is not one."""
    path = Path(path)
    index = path / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{path}: no world model here (no model_index.json); run the "
                                "pretrain_world_model stage first")
    name = json.loads(index.read_text()).get("_class_name")
    name = name[-1] if isinstance(name, list) and name else name  # ["pipeline", class]: custom-pipeline form
    if name != DreamGenVideoPipeline.__name__:
        raise ValueError(f"{path}: incompatible checkpoint: it holds a {name}, not a DreamGenVideoPipeline")
    pipe = DreamGenVideoPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    tc = pipe.transformer.config
    if is_unet(pipe.transformer):
        if tc.in_channels != tc.out_channels * pipe.config.num_frames // (pipe.config.num_frames - 1):
            raise ValueError(f"{path}: incompatible checkpoint: U-Net in_channels {tc.in_channels} and out_channels "
                             f"{tc.out_channels} do not stack {pipe.config.num_frames} frames as channels")
    elif tc.in_channels != 2 * tc.out_channels + 1:
        raise ValueError(f"{path}: incompatible checkpoint: transformer in_channels {tc.in_channels} is not "
                         f"2 x out_channels {tc.out_channels} + 1 (the WAN I2V layout)")
    return pipe
