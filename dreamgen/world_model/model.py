"""The denoiser and its flow-matching objective.

Two denoisers fill the pipeline's `transformer` slot:
- `UNetConfig` (the default mini model): a diffusers UNet2DConditionModel that sees the clip as
  channels, `cat(first frame, noisy frames 1..T-1)` (B, C * T, H, W) -> clean frames 1..T-1
  (B, C * (T - 1), H, W). A conv U-Net has the local bias that a thin arm of a few pixels needs;
  the patch transformer below did not draw the arm at this scale (notebook 04).
- `DenoiserConfig`: a WanTransformer3DModel, the paper profile's WAN2.1 class, in WAN
  image-to-video's conditioning layout.

Input to the transformer, channel-wise (B, C + 1 + C, T, H, W), as WanImageToVideoPipeline
builds it: the noisy latents, a mask that is 1 on the first frame, and the first frame's
latent followed by zeros. The instruction enters through cross-attention; dropping it (zeros)
in training gives the unconditional branch of classifier-free guidance.

Flow matching (rectified flow, the objective of WAN and of diffusers'
FlowMatchEulerDiscreteScheduler): x_t = (1 - t) x_0 + t eps, the model predicts v = eps - x_0.
With `residual`, x_0 is the clip minus its first frame (repeated), so "nothing moves" is the
zero target and the model spends its capacity on what changes.

With prediction "x0" the transformer outputs the clean clip and the velocity is derived,
v = (x_t - x0_hat) / t (the "x-prediction" that pixel-space transformers with large patches
prefer, Li & He 2025): the last Euler step then lands exactly on the model's clean estimate,
where velocity prediction leaves its error times the last step size as speckle noise.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DenoiserConfig:
    """A small WanTransformer3DModel; the paper profile's WAN2.1 is the same class, larger."""
    channels: int = 3           # latent channels (3 = pixel space)
    patch: int = 4              # spatial patch size (temporal patch 1)
    width: int = 128            # heads * head_dim
    heads: int = 4
    layers: int = 4
    ffn_mult: int = 4
    text_dim: int = 384         # all-MiniLM-L6-v2 hidden size
    freq_dim: int = 64          # sinusoidal timestep features

    def __post_init__(self) -> None:
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError(f"DenoiserConfig: width {self.width} must split into {self.heads} even-sized heads")


@dataclass(frozen=True)
class UNetConfig:
    """A small UNet2DConditionModel over the frames stacked as channels (frames-as-channels, as DIAMOND does)."""
    channels: int = 3                       # latent channels (3 = pixel space)
    blocks: tuple[int, ...] = (32, 64, 64)  # channels per resolution level; levels after the first attend to text
    layers_per_block: int = 1
    head_dim: int = 8                       # attention head size of the text cross-attention
    norm_groups: int = 8                    # GroupNorm groups; must divide every block width
    text_dim: int = 384                     # all-MiniLM-L6-v2 hidden size

    def __post_init__(self) -> None:
        if len(self.blocks) < 2:
            raise ValueError(f"UNetConfig: blocks {self.blocks} needs at least 2 levels")
        bad = [b for b in self.blocks if b % self.norm_groups or b % self.head_dim]
        if bad:
            raise ValueError(f"UNetConfig: block widths {bad} are not multiples of norm_groups {self.norm_groups} "
                             f"and head_dim {self.head_dim}")

    @property
    def patch(self) -> int:
        """The spatial factor the image size must divide by (each level halves it)."""
        return 2 ** (len(self.blocks) - 1)


def build_unet(cfg: UNetConfig, num_frames: int, image_size: int):
    """A randomly initialised UNet2DConditionModel taking (B, C * T, S, S), returning (B, C * (T - 1), S, S)."""
    from diffusers import UNet2DConditionModel

    n = len(cfg.blocks)
    return UNet2DConditionModel(
        sample_size=image_size, in_channels=cfg.channels * num_frames, out_channels=cfg.channels * (num_frames - 1),
        block_out_channels=tuple(cfg.blocks), layers_per_block=cfg.layers_per_block,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=cfg.text_dim, attention_head_dim=cfg.head_dim, norm_num_groups=cfg.norm_groups)


def is_unet(denoiser) -> bool:
    """True for the frames-as-channels U-Net, False for the WAN transformer layout."""
    return hasattr(denoiser.config, "cross_attention_dim")


def build_denoiser(cfg: "DenoiserConfig | UNetConfig", num_frames: int, image_size: int):
    """The denoiser a config describes."""
    if isinstance(cfg, UNetConfig):
        return build_unet(cfg, num_frames, image_size)
    return build_transformer(cfg)


def denoiser_configs(params) -> tuple["UNetConfig | DenoiserConfig", "UNetConfig | DenoiserConfig"]:
    """(model, smaller model) denoiser configs from the pretrain_world_model parameters (arch and sizes)."""
    if params.arch == "unet":
        return tuple(UNetConfig(blocks=tuple(b), layers_per_block=params.unet_layers_per_block)
                     for b in (params.unet_blocks, params.small_unet_blocks))
    return (DenoiserConfig(patch=params.patch, width=params.width, heads=params.heads, layers=params.layers),
            DenoiserConfig(patch=params.patch, width=params.small_width, heads=params.small_heads,
                           layers=params.small_layers))


def describe(cfg: "UNetConfig | DenoiserConfig") -> str:
    """A short name of a denoiser's size, for tables: '32/64/64 x1' or '128 x 4'."""
    if isinstance(cfg, UNetConfig):
        return "/".join(map(str, cfg.blocks)) + f" x{cfg.layers_per_block}"
    return f"{cfg.width} x {cfg.layers}"


def build_transformer(cfg: DenoiserConfig):
    """A randomly initialised WanTransformer3DModel taking (B, 2C+1, T, H, W), returning (B, C, T, H, W)."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, cfg.patch, cfg.patch), num_attention_heads=cfg.heads,
        attention_head_dim=cfg.width // cfg.heads, in_channels=2 * cfg.channels + 1,
        out_channels=cfg.channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_mult * cfg.width, num_layers=cfg.layers)


PREDICTIONS = ("x0", "velocity")
LOSSES = ("velocity", "x0")           # the space of the MSE: flow velocity, or the clean clip itself
TIMES = ("shift", "logit_normal")     # how training draws flow times


def condition(first: torch.Tensor, num_frames: int) -> torch.Tensor:
    """WAN I2V condition (B, 1 + C, T, H, W) from the first frame's latent (B, C, H, W)."""
    b, c, h, w = first.shape
    mask = torch.zeros(b, 1, num_frames, h, w, dtype=first.dtype, device=first.device)
    mask[:, :, 0] = 1
    cond = torch.zeros(b, c, num_frames, h, w, dtype=first.dtype, device=first.device)
    cond[:, :, 0] = first
    return torch.cat([mask, cond], dim=1)


def shift_t(u: torch.Tensor, shift: float) -> torch.Tensor:
    """The timestep shift of FlowMatchEulerDiscreteScheduler: draws t near 1 (pure noise) more often."""
    return shift * u / (1 + (shift - 1) * u)


def logit_normal_t(z: torch.Tensor) -> torch.Tensor:
    """Flow times sigmoid(z) for standard-normal z (SD3's logit-normal sampling): most weight in the
    middle, where the arm's position is decided, little at the ends where the target is trivial."""
    return torch.sigmoid(z)


class FlowMatchingVideoModel(torch.nn.Module):
    """Wraps the transformer with the training objective; `loss(batch)` is what dreamgen.training calls.

    batch: latents (B, C, T, H, W) in [-1, 1] scale, text (B, L, D), keep_text (B,) 0/1,
           t (B,) in (0, 1), noise like latents.
    """

    def __init__(self, transformer, residual: bool = True, prediction: str = "x0", bf16: bool = False,
                 t_floor: float = 0.05, motion_weight: float = 0.0, loss: str = "velocity"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if loss == "x0" and prediction != "x0":
            raise ValueError("loss 'x0' needs prediction 'x0' (the network must output the clean clip)")
        self.loss_space = loss
        if motion_weight < 0:
            raise ValueError(f"motion_weight must be >= 0 (0 = plain MSE), got {motion_weight}")
        self.motion_weight = motion_weight  # extra loss weight on pixels that change from the first frame
        self.transformer = transformer
        self.residual = residual
        self.prediction = prediction
        self.bf16 = bf16
        self.t_floor = t_floor  # caps the 1/t weight of x0-prediction's velocity loss near t = 0

    def raw(self, noisy: torch.Tensor, first: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The denoiser's output (B, C, T, H, W): the clean clip (prediction x0) or the velocity."""
        with torch.autocast(noisy.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if not is_unet(self.transformer):
                inp = torch.cat([noisy, condition(first, noisy.shape[2])], dim=1)
                return self.transformer(inp, t * 1000, text, return_dict=False)[0].float()
            b, c, n, h, w = noisy.shape
            inp = torch.cat([first, noisy[:, :, 1:].reshape(b, c * (n - 1), h, w)], dim=1)
            out = self.transformer(inp, t * 1000, encoder_hidden_states=text, return_dict=False)[0].float()
        out = out.reshape(b, c, n - 1, h, w)
        # Frame 0 is given: its clean value is known exactly (0 as a residual), its velocity follows.
        head = torch.zeros_like(first) if self.residual else first
        if self.prediction == "velocity":  # v = eps - x0, with x_t = (1 - t) x0 + t eps
            tt = t.clamp(min=1e-6)[:, None, None, None]
            head = (noisy[:, :, 0] - (1 - tt) * head) / tt - head
        return torch.cat([head[:, :, None].to(out.dtype), out], dim=2)

    def velocity(self, noisy: torch.Tensor, first: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
                 t_floor: float = 0.0):
        """Predicted velocity (B, C, T, H, W) for noisy targets at flow time t (B,)."""
        out = self.raw(noisy, first, t, text)
        if self.prediction == "velocity":
            return out
        return (noisy - out) / t.clamp(min=max(t_floor, 1e-6))[:, None, None, None, None]

    def loss(self, batch: dict):
        x = batch["latents"]
        first = x[:, :, 0]
        x0 = x - first[:, :, None] if self.residual else x
        t = batch["t"]
        tt = t[:, None, None, None, None]
        noisy = (1 - tt) * x0 + tt * batch["noise"]
        text = batch["text"] * batch["keep_text"][:, None, None]
        if self.loss_space == "x0":  # a plain MSE on the clean clip, every flow time weighted alike
            err = (self.raw(noisy, first, t, text) - x0) ** 2
            if not self.motion_weight:
                return err.mean(), {}
            w = motion_weights(x, self.motion_weight)
            return (err * w).mean() / w.mean(), {}
        v = self.velocity(noisy, first, t, text, t_floor=self.t_floor)
        if not self.motion_weight:
            return F.mse_loss(v, batch["noise"] - x0), {}
        w = motion_weights(x, self.motion_weight)
        return ((v - (batch["noise"] - x0)) ** 2 * w).mean() / w.mean(), {}


MOVING = 0.1  # change from the first frame, in [-1, 1] units (13/255), that counts as motion


def motion_weights(x: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-pixel loss weights (B, 1, T, H, W): 1 + weight where the clip (B, C, T, H, W) differs from its
    first frame. The robot and the objects it moves cover a few percent of the pixels, so a plain
    MSE is won mostly by keeping the background still; this puts the loss where the behaviour is."""
    moving = (x - x[:, :, :1]).abs().amax(dim=1, keepdim=True) > MOVING
    return 1.0 + weight * moving.float()


def config_dict(cfg: DenoiserConfig) -> dict:
    return asdict(cfg)
