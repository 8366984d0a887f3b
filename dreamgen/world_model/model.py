"""The denoiser and its flow-matching objective, in WAN image-to-video's conditioning layout.

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


def build_transformer(cfg: DenoiserConfig):
    """A randomly initialised WanTransformer3DModel taking (B, 2C+1, T, H, W), returning (B, C, T, H, W)."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, cfg.patch, cfg.patch), num_attention_heads=cfg.heads,
        attention_head_dim=cfg.width // cfg.heads, in_channels=2 * cfg.channels + 1,
        out_channels=cfg.channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_mult * cfg.width, num_layers=cfg.layers)


PREDICTIONS = ("x0", "velocity")


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


class FlowMatchingVideoModel(torch.nn.Module):
    """Wraps the transformer with the training objective; `loss(batch)` is what dreamgen.training calls.

    batch: latents (B, C, T, H, W) in [-1, 1] scale, text (B, L, D), keep_text (B,) 0/1,
           t (B,) in (0, 1), noise like latents.
    """

    def __init__(self, transformer, residual: bool = True, prediction: str = "x0", bf16: bool = False,
                 t_floor: float = 0.05, motion_weight: float = 0.0):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if motion_weight < 0:
            raise ValueError(f"motion_weight must be >= 0 (0 = plain MSE), got {motion_weight}")
        self.motion_weight = motion_weight  # extra loss weight on pixels that change from the first frame
        self.transformer = transformer
        self.residual = residual
        self.prediction = prediction
        self.bf16 = bf16
        self.t_floor = t_floor  # caps the 1/t weight of x0-prediction's velocity loss near t = 0

    def velocity(self, noisy: torch.Tensor, first: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
                 t_floor: float = 0.0):
        """Predicted velocity (B, C, T, H, W) for noisy targets at flow time t (B,)."""
        inp = torch.cat([noisy, condition(first, noisy.shape[2])], dim=1)
        with torch.autocast(noisy.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.transformer(inp, t * 1000, text, return_dict=False)[0].float()
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
