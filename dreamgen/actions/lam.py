"""Latent action model (LAPA-style): a VQ bottleneck between two frames k steps apart.

Encoder (x_{t+k} - x_t) -> z -> nearest code c of a small codebook (the paper: 8 codes);
decoder (x_t, c) -> x_{t+k}. The code is the only path for what changed, so it must carry the
motion; no action labels are needed, so web videos train it as well as robot videos.
The encoder sees only the difference image: given x_t too, it spent the codes on the scene
(web environments got codes, every robot pair one code) instead of on the motion.

Shapes: frames (B, 2, 3, H, W) float in [0, 1]; codes (B,) int64.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dreamgen.actions.idm import augment, to_tensor

CONFIG_FILE, WEIGHTS_FILE = "lam.json", "lam.pt"


@dataclass(frozen=True)
class LAMConfig:
    image_size: int
    frame_stride: int            # control steps between the two frames (same contract as the IDM)
    control_fps: int
    codebook_size: int = 8
    code_dim: int = 16
    width: int = 64
    commitment: float = 0.25     # beta of the VQ-VAE commitment loss
    restart_every: int = 100     # re-seed unused codes from the batch every this many steps
    temperature: float = 0.1     # softness of the code assignment in the usage-entropy term
    entropy_weight: float = 0.1  # weight of that term; 0.01 still collapsed to one code in 1000 steps
    recon_weight: float = 100.0  # the pixel MSE is ~0.005: unscaled, the VQ and entropy terms steered the encoder alone
    change_weight: float = 5.0   # extra loss weight on pixels that change between the frames (~9% of them)
    change_threshold: float = 0.05  # a pixel "changes" when some channel moves by more than this
    train_datasets: tuple[str, ...] = ()


def _down(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(a, b, 4, 2, 1), nn.GroupNorm(8, b), nn.GELU())


def _up(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(a, b, 4, 2, 1), nn.GroupNorm(8, b), nn.GELU())


class LatentActionModel(nn.Module):
    def __init__(self, cfg: LAMConfig):
        super().__init__()
        if cfg.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 for the LAM, got {cfg.image_size}")
        self.cfg = cfg
        w, d, s = cfg.width, cfg.code_dim, cfg.image_size // 8
        self.encoder = nn.Sequential(_down(3, w), _down(w, 2 * w), _down(2 * w, 2 * w), nn.Flatten(),
                                     nn.Linear(2 * w * s * s, d))
        self.codebook = nn.Parameter(torch.randn(cfg.codebook_size, d) * 0.1)
        self.register_buffer("usage", torch.zeros(cfg.codebook_size))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        # Decoder: a small U-Net over x_t with the code injected at the bottleneck.
        self.d1, self.d2, self.d3 = _down(3, w), _down(w, 2 * w), _down(2 * w, 2 * w)
        self.film = nn.Linear(d, 4 * w)
        self.u3, self.u2 = _up(2 * w, 2 * w), _up(4 * w, w)
        self.u1 = nn.ConvTranspose2d(2 * w, 3, 4, 2, 1)
        nn.init.zeros_(self.u1.weight), nn.init.zeros_(self.u1.bias)  # start as copy-the-frame

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, 2, 3, H, W) -> continuous latents z (B, code_dim), from x_{t+k} - x_t only."""
        return self.encoder((frames[:, 1] - frames[:, 0]) * 4)  # x4: most differences are small

    def code_vectors(self) -> torch.Tensor:
        """The codebook on the unit sphere (codebook_size, D): cosine VQ cannot collapse by shrinking."""
        return F.normalize(self.codebook, dim=-1)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codes (B,) of latents z (B, D), by cosine similarity."""
        return (F.normalize(z, dim=-1) @ self.code_vectors().T).argmax(1)

    def decode(self, x0: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """x0 (B, 3, H, W), code vectors q (B, D) -> predicted later frame (B, 3, H, W) in [0, 1]."""
        h1 = self.d1(x0 * 2 - 1)
        h2 = self.d2(h1)
        h3 = self.d3(h2)
        gain, bias = self.film(q)[:, :, None, None].chunk(2, 1)
        h3 = h3 * (1 + gain) + bias
        y = self.u3(h3)
        y = self.u2(torch.cat([y, h2], 1))
        delta = self.u1(torch.cat([y, h1], 1))
        return (x0 + delta).clamp(0, 1)  # a residual: the unchanged background costs nothing

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        frames = batch["frames"]
        z = F.normalize(self.encode(frames), dim=-1)
        logits = z @ self.code_vectors().T / self.cfg.temperature
        codes = logits.argmax(1)
        q = self.code_vectors()[codes]
        vq = F.mse_loss(q, z.detach()) + self.cfg.commitment * F.mse_loss(z, q.detach())
        # With 8 codes the decoder first learns to ignore the code and the VQ collapses onto one
        # (measured: perplexity 1.0 after 1500 steps without this term). Each pair should pick a
        # code confidently, and the batch should use them all: E[H(p)] - H(E[p]).
        p = logits.softmax(-1)
        mean_p = p.mean(0)
        entropy = -(p * p.clamp_min(1e-9).log()).sum(-1).mean() + (mean_p * mean_p.clamp_min(1e-9).log()).sum()
        q_st = z + (q - z).detach()  # straight-through: decoder gradients reach the encoder
        x0, x1 = frames[:, 0], frames[:, 1]
        # Most pixels do not move, and predicting them from x_t alone already wins most of the
        # loss; weighting the moving ones makes the code (the only source of motion) worth using.
        moved = ((x1 - x0).abs().amax(1, keepdim=True) > self.cfg.change_threshold).float()
        weight = 1 + self.cfg.change_weight * moved
        recon = (((self.decode(x0, q_st) - x1) ** 2) * weight).mean() / weight.mean()
        self._restart_dead_codes(z.detach(), codes)
        return self.cfg.recon_weight * recon + vq + self.cfg.entropy_weight * entropy, {"recon": recon.item(), "vq": vq.item(),
                                                               "entropy": entropy.item()}

    @torch.no_grad()
    def _restart_dead_codes(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        """With 8 codes a VQ easily collapses onto a few; unused ones restart at batch latents."""
        self.usage += torch.bincount(codes, minlength=self.cfg.codebook_size).float()
        self.calls += 1
        if int(self.calls) % self.cfg.restart_every == 0:
            dead = torch.nonzero(self.usage == 0).flatten()
            if len(dead):
                pick = torch.randint(0, len(z), (len(dead),), device=z.device)
                self.codebook.data[dead] = z[pick] + 0.01 * torch.randn_like(z[pick])
            self.usage.zero_()

    @torch.no_grad()
    def codes(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, 2, 3, H, W) -> codes (B,)."""
        return self.quantize(self.encode(frames))

    @torch.no_grad()
    def predict(self, x0: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The later frame the decoder expects from x0 (B, 3, H, W) under codes (B,)."""
        return self.decode(x0, self.code_vectors()[codes])


def save_lam(model: LatentActionModel, folder) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.cfg), indent=2))
    torch.save(model.state_dict(), folder / WEIGHTS_FILE)
    return folder


def load_lam_config(folder) -> LAMConfig:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no latent action model here; train one with the train_lam stage")
    raw = json.loads(path.read_text())
    raw["train_datasets"] = tuple(raw["train_datasets"])
    return LAMConfig(**raw)


def load_lam(folder) -> LatentActionModel:
    model = LatentActionModel(load_lam_config(folder))
    model.load_state_dict(torch.load(Path(folder) / WEIGHTS_FILE, map_location="cpu"))
    return model.eval()


# --------------------------------------------------------------------------- data

@dataclass
class FramePairs:
    """Every (t, t+k) pair of a set of videos: frames (N, H, W, 3) uint8, first (M,) indices."""

    frames: np.ndarray
    first: np.ndarray
    k: int

    def __len__(self) -> int:
        return len(self.first)


def make_pairs(videos, k: int) -> FramePairs:
    """videos: iterable of (T, H, W, 3) uint8 arrays at the control rate."""
    frames, first, offset = [], [], 0
    for v in videos:
        frames.append(v)
        first.append(offset + np.arange(max(len(v) - k, 0)))
        offset += len(v)
    return FramePairs(np.concatenate(frames), np.concatenate(first), k)


def pair_sampler(pairs: FramePairs, batch_size: int, aug: bool = True):
    def sample(rng: np.random.Generator, step: int) -> dict:
        first = pairs.first[rng.integers(0, len(pairs), batch_size)]
        frames = to_tensor(np.stack([pairs.frames[first], pairs.frames[first + pairs.k]], 1))
        # Shifts only: colour jitter would change x_{t+k} in ways the code would have to carry.
        return {"frames": augment(frames, rng, max_shift=2, jitter=0.0) if aug else frames}

    return sample


@torch.no_grad()
def evaluate_lam(model: LatentActionModel, pairs: FramePairs, batch_size: int = 256) -> dict:
    """Held-out prediction error against copying the earlier frame, and codebook use.

    Returns mse (decoder with the pair's own code), mse_copy (x_t as the guess of x_{t+k}),
    mse_wrong_code (a random other code: how much the code matters), usage (fraction of codes
    used), perplexity (exp of the code entropy; at most codebook_size), codes (M,).
    """
    n_codes = model.cfg.codebook_size
    codes, sq, sq_copy, sq_wrong = [], 0.0, 0.0, 0.0
    gen = torch.Generator().manual_seed(0)
    for s in range(0, len(pairs), batch_size):
        first = pairs.first[s:s + batch_size]
        frames = to_tensor(np.stack([pairs.frames[first], pairs.frames[first + pairs.k]], 1))
        c = model.codes(frames)
        wrong = (c + torch.randint(1, n_codes, c.shape, generator=gen)) % n_codes
        x0, x1 = frames[:, 0], frames[:, 1]
        sq += float(((model.predict(x0, c) - x1) ** 2).mean((1, 2, 3)).sum())
        sq_wrong += float(((model.predict(x0, wrong) - x1) ** 2).mean((1, 2, 3)).sum())
        sq_copy += float(((x0 - x1) ** 2).mean((1, 2, 3)).sum())
        codes.append(c.numpy())
    codes = np.concatenate(codes)
    p = np.bincount(codes, minlength=n_codes) / len(codes)
    entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
    m = len(pairs)
    return dict(mse=sq / m, mse_copy=sq_copy / m, mse_wrong_code=sq_wrong / m, usage=float((p > 0).mean()),
                perplexity=float(np.exp(entropy)), code_freq=p.tolist(), codes=codes)


@torch.no_grad()
def video_codes(model: LatentActionModel, frames: np.ndarray, step: int, batch_size: int = 256) -> np.ndarray:
    """Latent actions of a video (T, H, W, 3): code of each pair (t, t+step), -1 where t+step runs
    past the end. step = frame_stride for a control-rate video, 1 for a strided (dreamed) one."""
    t = np.arange(max(len(frames) - step, 0))
    out = np.full(len(frames), -1, np.int64)
    for s in range(0, len(t), batch_size):
        i = t[s:s + batch_size]
        out[i] = model.codes(to_tensor(np.stack([frames[i], frames[i + step]], 1))).numpy()
    return out
