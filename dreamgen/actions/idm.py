"""Inverse-dynamics model (IDM): two frames k control steps apart -> the k actions between them
(flow matching) and the proprioceptive state at both frames (regression).

As in DreamGen's official IDM, in small: the official model sees frames 8 apart and predicts a
16-action chunk with a flow-matching head on a SigLIP-2 backbone. Ours predicts exactly the
k = frame_stride actions between its two frames, and, unlike the official code (which writes
zeros), the states too, so policies that read state can train on neural trajectories.

Shapes: frames (B, 2, 3, H, W) float in [0, 1]; actions (B, k, A); states (B, 2, S).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONFIG_FILE, WEIGHTS_FILE = "idm.json", "idm.pt"


@dataclass(frozen=True)
class IDMConfig:
    """Everything a labeller needs to know to refuse input the IDM was not trained for."""

    embodiment: str
    image_size: int
    frame_stride: int                 # k: control steps between the two frames = actions predicted
    control_fps: int                  # rate of the actions (the world's control rate)
    action_names: tuple[str, ...]
    state_names: tuple[str, ...]
    width: int = 256                  # feature and head width
    backbone: str = "cnn"             # "cnn" or "keypoints" (from scratch), or "hf" (a transformers vision model)
    backbone_path: str = ""           # model id or local path for backbone="hf"
    flow_steps: int = 10              # Euler steps when sampling the action chunk
    label_samples: int = 1            # chunks drawn per frame pair and averaged: the conditional mean's estimate
    train_dataset: str = ""           # provenance: what it was trained on
    extra: dict = field(default_factory=dict)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def state_dim(self) -> int:
        return len(self.state_names)


# --------------------------------------------------------------------------- backbones

class ConvEncoder(nn.Module):
    """Both frames and their difference stacked as 9 channels -> (B, width).

    The difference channel hands the network the motion directly, which a from-scratch CNN
    otherwise has to discover.
    """

    def __init__(self, image_size: int, width: int):
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16 for the CNN IDM, got {image_size}")
        chans = [9, 32, 64, 128, 128]
        layers = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.GroupNorm(8, b), nn.GELU()]
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * (image_size // 16) ** 2, width), nn.GELU())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x0, x1 = frames[:, 0], frames[:, 1]
        return self.net(torch.cat([x0, x1, x1 - x0], 1) * 2 - 1)


class SpatialSoftmax(nn.Module):
    """Feature maps (B, K, H, W) -> the expected (x, y) of each map's softmax, (B, K, 2) in [-1, 1]:
    a position read off to a fraction of a pixel (Levine et al. 2016; diffusion_policy's image encoder)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, h, w = x.shape
        p = torch.softmax(x.flatten(2), -1).reshape(b, k, h, w)
        ys = torch.linspace(-1, 1, h, device=x.device)
        xs = torch.linspace(-1, 1, w, device=x.device)
        return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)


class KeypointEncoder(nn.Module):
    """ConvEncoder's features plus K keypoints per frame from a full-resolution conv stack.

    The displacement between the frames decides the action chunk's sum, and at 32x32 a chunk
    moves the arm by a pixel or two: strided convolutions that pool it away lose what matters.
    Here a shared stack keeps half the resolution (one stride-2 layer) and a spatial softmax reads
    each keypoint's position in both frames; their difference is handed to the head directly.
    """

    def __init__(self, image_size: int, width: int, keypoints: int = 32):
        super().__init__()
        self.global_ = ConvEncoder(image_size, width)
        self.maps = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.GroupNorm(8, 32), nn.GELU(),
                                  nn.Conv2d(32, 32, 3, 1, 1), nn.GroupNorm(8, 32), nn.GELU(),
                                  nn.Conv2d(32, keypoints, 1))
        self.softmax = SpatialSoftmax()
        self.proj = nn.Sequential(nn.Linear(width + 6 * keypoints, width), nn.GELU())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b = frames.shape[0]
        kp = self.softmax(self.maps(frames.flatten(0, 1) * 2 - 1)).reshape(b, 2, -1)  # (B, 2, K*2)
        return self.proj(torch.cat([self.global_(frames), kp[:, 0], kp[:, 1], (kp[:, 1] - kp[:, 0]) * 10], -1))


class HFVisionEncoder(nn.Module):
    """A transformers vision backbone (SigLIP / SigLIP-2) applied to each frame -> (B, width).

    Loaded with `transformers.AutoModel.from_pretrained(model_id_or_path)`; a full SigLIP model
    contributes its vision tower. SigLIP-2 takes patch sequences, so frames are patchified the
    way its image processor does (rows of p*p*C, row-major over the patch grid).
    """

    def __init__(self, path: str, width: int):
        super().__init__()
        from transformers import AutoModel

        model = AutoModel.from_pretrained(path)
        self.vision = model.vision_model if hasattr(model, "text_model") else model
        cfg = self.vision.config
        self.naflex = "siglip2" in cfg.model_type
        self.patch = cfg.patch_size
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5), persistent=False)
        self.proj = nn.Sequential(nn.Linear(3 * cfg.hidden_size, width), nn.GELU())

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / 0.5  # SigLIP's normalisation: [0, 1] -> [-1, 1]
        if not self.naflex:
            return self.vision(pixel_values=x).pooler_output
        b, c, h, w = x.shape
        p = self.patch
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, p * p * c)
        shapes = torch.tensor([[h // p, w // p]] * b, device=x.device)
        mask = torch.ones(patches.shape[:2], dtype=torch.long, device=x.device)
        return self.vision(pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=shapes).pooler_output

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b = frames.shape[0]
        f = self._embed(frames.flatten(0, 1)).reshape(b, 2, -1)
        return self.proj(torch.cat([f[:, 0], f[:, 1], f[:, 1] - f[:, 0]], -1))


def _time_embedding(t: torch.Tensor, dim: int = 64) -> torch.Tensor:
    """Sinusoidal embedding of flow time t (B,) in [0, 1] -> (B, dim)."""
    freqs = torch.exp(torch.linspace(0, math.log(1000.0), dim // 2, device=t.device))
    angles = t[:, None] * freqs[None] * math.pi
    return torch.cat([angles.sin(), angles.cos()], -1)


# --------------------------------------------------------------------------- model

class InverseDynamics(nn.Module):
    """IDM: frames (B, 2, 3, H, W) -> action chunk (B, k, A) by flow matching, states (B, 2, S)."""

    def __init__(self, cfg: IDMConfig):
        super().__init__()
        self.cfg = cfg
        w, k, a, s = cfg.width, cfg.frame_stride, cfg.action_dim, cfg.state_dim
        if cfg.backbone == "cnn":
            self.encoder = ConvEncoder(cfg.image_size, w)
        elif cfg.backbone == "keypoints":
            self.encoder = KeypointEncoder(cfg.image_size, w)
        elif cfg.backbone == "hf":
            if not cfg.backbone_path:
                raise ValueError("backbone='hf' needs backbone_path (a transformers model id or local folder)")
            self.encoder = HFVisionEncoder(cfg.backbone_path, w)
        else:
            raise ValueError(f"unknown IDM backbone {cfg.backbone!r}; use 'cnn', 'keypoints' or 'hf'")
        self.state_head = nn.Sequential(nn.Linear(w, w), nn.GELU(), nn.Linear(w, 2 * s))
        self.flow_head = nn.Sequential(nn.Linear(k * a + 64 + w, w), nn.GELU(), nn.Linear(w, w), nn.GELU(),
                                       nn.Linear(w, k * a))

    def velocity(self, x: torch.Tensor, t: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """Flow velocity for noisy chunks x (B, k*A) at times t (B,)."""
        return self.flow_head(torch.cat([x, _time_embedding(t), feat], -1))

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Rectified flow on the chunk: x_t = (1-t) z + t a, target velocity a - z; plus state MSE."""
        feat = self.encoder(batch["frames"])
        a = batch["actions"].flatten(1)
        z = torch.randn_like(a)
        t = torch.rand(len(a), device=a.device)
        xt = (1 - t[:, None]) * z + t[:, None] * a
        flow = F.mse_loss(self.velocity(xt, t, feat), a - z)
        state = F.mse_loss(self.state_head(feat), batch["states"].flatten(1))
        return flow + state, {"flow": flow.item(), "state": state.item()}

    @torch.no_grad()
    def predict(self, frames: torch.Tensor, generator: torch.Generator | None = None,
                samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (B, 2, 3, H, W) -> actions (B, k, A) clipped to [-1, 1], states (B, 2, S).

        samples: chunks drawn per pair and averaged (None = cfg.label_samples). One draw is a
        sample of the teleoperator's noisy actions; executed open loop, its noise adds up along
        the trajectory. The average of n draws estimates the conditional mean instead.
        """
        cfg = self.cfg
        n = samples or cfg.label_samples
        feat = self.encoder(frames)
        b = len(frames)
        feat_n = feat.repeat_interleave(n, 0)  # (B * n, width), draws of one pair adjacent
        x = torch.randn(b * n, cfg.frame_stride * cfg.action_dim, generator=generator).to(frames.device)
        dt = 1.0 / cfg.flow_steps
        for i in range(cfg.flow_steps):
            t = torch.full((b * n,), i * dt, device=frames.device)
            x = x + dt * self.velocity(x, t, feat_n)
        actions = x.clamp(-1, 1).reshape(b, n, cfg.frame_stride, cfg.action_dim).mean(1)
        return actions, self.state_head(feat).reshape(b, 2, cfg.state_dim)


def save_idm(model: InverseDynamics, folder) -> Path:
    """Write idm.json (config, read without torch) and idm.pt (weights) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.cfg), indent=2))
    torch.save(model.state_dict(), folder / WEIGHTS_FILE)
    return folder


def load_idm_config(folder) -> IDMConfig:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no IDM config here; train one with the train_idm stage")
    raw = json.loads(path.read_text())
    raw["action_names"], raw["state_names"] = tuple(raw["action_names"]), tuple(raw["state_names"])
    return IDMConfig(**raw)


def load_idm(folder) -> InverseDynamics:
    model = InverseDynamics(load_idm_config(folder))
    model.load_state_dict(torch.load(Path(folder) / WEIGHTS_FILE, map_location="cpu"))
    return model.eval()


# --------------------------------------------------------------------------- data

@dataclass
class Windows:
    """Every (t, t+k) frame pair of a set of episodes, for training and evaluation.

    frames:  (N, H, W, 3) uint8, all episodes' frames concatenated
    first:   (M,) index into frames of each window's first frame (second = first + k)
    actions: (M, k, A) the true actions t .. t+k-1
    states:  (M, 2, S) the true states at t and t+k
    """

    frames: np.ndarray
    first: np.ndarray
    actions: np.ndarray
    states: np.ndarray
    k: int

    def __len__(self) -> int:
        return len(self.first)


def make_windows(episodes, k: int) -> Windows:
    """Windows of every episode (an episode of T frames gives T - k windows)."""
    frames, first, actions, states, offset = [], [], [], [], 0
    for ep in episodes:
        if ep.actions is None or ep.states is None:
            raise ValueError("IDM training needs episodes with actions and states (not web videos)")
        t = np.arange(len(ep) - k)
        frames.append(ep.frames)
        first.append(offset + t)
        actions.append(np.stack([ep.actions[i:i + k] for i in t]) if len(t) else np.zeros((0, k, ep.actions.shape[1])))
        states.append(np.stack([ep.states[t], ep.states[t + k]], 1))
        offset += len(ep)
    return Windows(np.concatenate(frames), np.concatenate(first), np.concatenate(actions).astype(np.float32),
                   np.concatenate(states).astype(np.float32), k)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float() / 255.0


def augment(frames: torch.Tensor, rng: np.random.Generator, max_shift: int = 4, jitter: float = 0.1) -> torch.Tensor:
    """Random shift (the same for both frames, so the motion between them is kept) and colour jitter.

    frames (B, 2, 3, H, W) in [0, 1]. Shifts stand in for camera jitter; per-channel gain and
    offset for lighting, which the world's environments vary.
    """
    b, _, c, h, w = frames.shape
    if max_shift:
        padded = F.pad(frames.flatten(1, 2), [max_shift] * 4, mode="replicate").reshape(b, 2, c, h + 2 * max_shift, -1)
        dy, dx = rng.integers(0, 2 * max_shift + 1, (2, b))
        frames = torch.stack([padded[i, :, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    if jitter:
        gain = torch.from_numpy(rng.uniform(1 - jitter, 1 + jitter, (b, 1, c, 1, 1))).float()
        bias = torch.from_numpy(rng.uniform(-jitter, jitter, (b, 1, c, 1, 1))).float() / 2
        frames = (frames * gain + bias).clamp(0, 1)
    return frames


def batch_sampler(windows: Windows, batch_size: int, aug: bool = True):
    """sample(rng, step) -> batch dict for `dreamgen.training.train`."""

    def sample(rng: np.random.Generator, step: int) -> dict:
        idx = rng.integers(0, len(windows), batch_size)
        first = windows.first[idx]
        frames = to_tensor(np.stack([windows.frames[first], windows.frames[first + windows.k]], 1))
        if aug:
            frames = augment(frames, rng)
        return {"frames": frames, "actions": torch.from_numpy(windows.actions[idx]),
                "states": torch.from_numpy(windows.states[idx])}

    return sample


def holdout_split(n: int, every: int) -> tuple[list[int], list[int]]:
    """Train and held-out episode indices: every `every`-th episode (index % every == every - 1)
    is held out. Collected datasets are ordered by behaviour, so "the last 10%" would hold out
    one behaviour only; every 10th spreads the held-out set over all of them."""
    held = [i for i in range(n) if i % every == every - 1]
    return [i for i in range(n) if i % every != every - 1], held
