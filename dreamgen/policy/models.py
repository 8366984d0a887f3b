"""The two policy families, sharing one observation encoder.

Batch (every tensor on the same device):
    image       (B, 3, H, W) float in [0, 1], H = W = cfg.image_size
    text        (B, D) instruction embedding (mean-pooled MiniLM, D = cfg.text_dim)
    state       (B, S) proprioception, zeros where masked
    state_mask  (B, 1) 1 where the state is real, 0 where it is masked (neural data, optionally)
    actions     (B, chunk, A) the future actions to learn (training only)
    action_mask (B, chunk) 1 where an action is labelled (training only; optional, default all 1)
    latent      (B, chunk / k) latent action codes, -1 = none (latent-path pretraining batches only)
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dreamgen.actions.idm import _time_embedding  # the IDM's sinusoidal embedding of t in [0, 1]
from dreamgen.policy.config import WEIGHTS_FILE, PolicyConfig, PolicyError, load_config

TIME_DIM = 64  # size of _time_embedding's output


def latent_loss(head: nn.Module, feat: torch.Tensor, codes: torch.Tensor, cfg: PolicyConfig) -> tuple:
    """Cross-entropy of the latent-action head: feat (B, F), codes (B, rows) with -1 ignored."""
    if head is None:
        raise ValueError("this policy has no latent head (cfg.latent_codes = 0)")
    logits = head(feat).reshape(len(feat), cfg.latent_rows, cfg.latent_codes)
    loss = F.cross_entropy(logits.flatten(0, 1), codes.flatten(), ignore_index=-1)
    valid = codes >= 0
    acc = (logits.argmax(-1) == codes)[valid].float().mean()
    return loss, {"latent_acc": acc.item()}


def _latent_head(cfg: PolicyConfig, feat_dim: int) -> nn.Module | None:
    return nn.Linear(feat_dim, cfg.latent_rows * cfg.latent_codes) if cfg.latent_codes else None


def masked_mse(pred: torch.Tensor, target: torch.Tensor, batch: dict) -> torch.Tensor:
    """MSE over the labelled actions only: (B, chunk, A) tensors, batch["action_mask"] (B, chunk)."""
    mask = batch.get("action_mask")
    if mask is None:
        return F.mse_loss(pred, target)
    mask = mask[..., None].to(pred.dtype)
    return ((pred - target) ** 2 * mask).sum() / (mask.sum() * pred.shape[-1]).clamp(min=1)


class ObsEncoder(nn.Module):
    """image, text, state (+ mask) -> tokens (B, N, width): image patches ((H/8)^2), then with the
    "keypoints" encoder K keypoint tokens, then text and state (N = n_tokens).

    The state token is built from (state * mask, mask), so a masked state is an explicit
    "unknown" rather than a plausible pose at the origin (as the official code's zeros are).

    Keypoints (cfg.encoder = "keypoints"): K spatial soft-argmax heatmaps over a half-resolution
    feature map, as robomimic's and Diffusion Policy's spatial-softmax heads. Each keypoint's token
    holds its image position, its position relative to the gripper (the state's first two entries,
    which are the end effector's x, y in the same [-1, 1] frame as the image's columns and rows)
    and the features under it. Relative positions are what a grasp needs: on the simulator's true
    state a flow head solved 0 of 20 pick-and-place resets with absolute positions and 10 of 20
    with gripper-relative ones (benchmarks/probe_policy_state.py).
    """

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        w = cfg.width
        self.conv = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.GroupNorm(8, 32), nn.GELU(),
                                  nn.Conv2d(32, 64, 4, 2, 1), nn.GroupNorm(8, 64), nn.GELU(),
                                  nn.Conv2d(64, w, 4, 2, 1), nn.GroupNorm(8, w), nn.GELU())
        n_patches = (cfg.image_size // 8) ** 2
        self.patch_pos = nn.Parameter(torch.zeros(1, n_patches, w))
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, w), nn.GELU(), nn.Linear(w, w))
        self.state = nn.Sequential(nn.Linear(cfg.state_dim + 1, w), nn.GELU(), nn.Linear(w, w))
        self.n_keypoints = cfg.keypoints if cfg.encoder == "keypoints" else 0
        if self.n_keypoints:
            k, c = cfg.keypoints, 32
            self.kp_trunk = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1), nn.GroupNorm(8, c), nn.GELU(),
                                          nn.Conv2d(c, c, 3, 2, 1), nn.GroupNorm(8, c), nn.GELU(),
                                          nn.Conv2d(c, c, 3, 1, 1), nn.GroupNorm(8, c), nn.GELU())
            self.kp_heat = nn.Conv2d(c, k, 1)
            half = cfg.image_size // 2
            g = (torch.arange(half) + 0.5) / half * 2 - 1                     # cell centres in [-1, 1]
            self.register_buffer("kp_grid", torch.stack(torch.meshgrid(g, g, indexing="xy")).flatten(1),
                                 persistent=False)                             # (2, half^2): x = column, y = row
            self.kp_token = nn.Sequential(nn.Linear(c + 4, w), nn.GELU(), nn.Linear(w, w))
            self.kp_id = nn.Parameter(torch.randn(1, k, w) * 0.02)
        self.n_tokens = n_patches + self.n_keypoints + 2

    def keypoints(self, image: torch.Tensor, state: torch.Tensor, mask: torch.Tensor) -> tuple:
        """image (B, 3, H, W) in [-1, 1] -> (xy (B, K, 2) in [-1, 1], tokens (B, K, width))."""
        f = self.kp_trunk(image)                                              # (B, c, H/2, W/2)
        p = torch.softmax(self.kp_heat(f).flatten(2), -1)                     # (B, K, H/2 * W/2)
        xy = torch.einsum("bkn,cn->bkc", p, self.kp_grid)
        feat = torch.einsum("bkn,bcn->bkc", p, f.flatten(2))                  # what lies under each keypoint
        # x5: a grasp's tolerance (about 4 world units) is 0.08 in this frame
        rel = (xy - state[:, None, :2]) * mask[:, None] * 5
        return xy, self.kp_token(torch.cat([feat, xy, rel], -1)) + self.kp_id

    def forward(self, batch: dict) -> torch.Tensor:
        image = batch["image"] * 2 - 1
        patches = self.conv(image).flatten(2).transpose(1, 2) + self.patch_pos
        mask = batch["state_mask"]
        state = self.state(torch.cat([batch["state"] * mask, mask], -1))
        tokens = [patches]
        if self.n_keypoints:
            tokens.append(self.keypoints(image, batch["state"], mask)[1])
        return torch.cat([*tokens, self.text(batch["text"])[:, None], state[:, None]], 1)


def obs_encoder(cfg: PolicyConfig) -> nn.Module:
    """The observation encoder cfg.encoder names: ObsEncoder, or backbone.StateObsEncoder."""
    if cfg.encoder == "state":
        from dreamgen.policy.backbone import StateObsEncoder

        return StateObsEncoder(cfg)
    return ObsEncoder(cfg)


# --------------------------------------------------------------------------- Diffusion Policy

class CondResBlock1D(nn.Module):
    """Two conv(k=5) + GroupNorm + Mish layers, FiLM-modulated by the condition (Chi et al.)."""

    def __init__(self, cin: int, cout: int, cond_dim: int):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv1d(cin, cout, 5, padding=2), nn.GroupNorm(8, cout), nn.Mish())
        self.c2 = nn.Sequential(nn.Conv1d(cout, cout, 5, padding=2), nn.GroupNorm(8, cout), nn.Mish())
        self.film = nn.Linear(cond_dim, 2 * cout)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.c1(x)
        scale, bias = self.film(cond)[..., None].chunk(2, 1)
        return self.c2(h * (1 + scale) + bias) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """Noisy chunk (B, A, T), timestep feature and observation condition -> (B, A, T).

    diffusers' UNet1DModel takes no observation condition (only the timestep), so this is the
    Diffusion Policy paper's conditional U-Net in small: two resolutions (T, T/2) and a middle
    at T/4, FiLM conditioning in every block.
    """

    def __init__(self, action_dim: int, cond_dim: int, width: int):
        super().__init__()
        c1, c2 = width, 2 * width
        self.inp = nn.Conv1d(action_dim, c1, 1)
        self.down1, self.down2 = CondResBlock1D(c1, c1, cond_dim), CondResBlock1D(c1, c2, cond_dim)
        self.mid = CondResBlock1D(c2, c2, cond_dim)
        self.up2, self.up1 = CondResBlock1D(2 * c2, c1, cond_dim), CondResBlock1D(2 * c1, c1, cond_dim)
        self.out = nn.Conv1d(c1, action_dim, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h0 = self.down1(self.inp(x), cond)                    # (B, c1, T)
        h1 = self.down2(F.avg_pool1d(h0, 2), cond)            # (B, c2, T/2)
        m = self.mid(F.avg_pool1d(h1, 2), cond)               # (B, c2, T/4)
        u = self.up2(torch.cat([F.interpolate(m, scale_factor=2), h1], 1), cond)
        u = self.up1(torch.cat([F.interpolate(u, scale_factor=2), h0], 1), cond)
        return self.out(u)


class DiffusionPolicy(nn.Module):
    """Diffusion Policy in small: DDPM (epsilon prediction) training, DDIM sampling."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        from diffusers import DDIMScheduler, DDPMScheduler

        self.cfg = cfg
        self.obs = obs_encoder(cfg)
        w = cfg.width
        self.pool = nn.Sequential(nn.Linear(self.obs.n_tokens * w, 2 * w), nn.GELU())
        self.unet = ConditionalUnet1D(cfg.action_dim, 2 * w + TIME_DIM, w)
        # squaredcos + clipping as in Diffusion Policy; actions live in [-1, 1]
        self.train_sched = DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule="squaredcos_cap_v2",
                                         clip_sample=True, prediction_type="epsilon")
        self.infer_sched = DDIMScheduler.from_config(self.train_sched.config)
        self.latent_head = _latent_head(cfg, 2 * w)

    def _cond(self, batch: dict) -> torch.Tensor:
        return self.pool(self.obs(batch).flatten(1))

    def _eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, chunk, A), t (B,) integer timesteps -> predicted noise (B, chunk, A)."""
        temb = _time_embedding(t.float() / self.cfg.train_timesteps, TIME_DIM)
        return self.unet(x.transpose(1, 2), torch.cat([cond, temb], -1)).transpose(1, 2)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        if "latent" in batch:  # latent-action pretraining: observation -> latent codes
            return latent_loss(self.latent_head, self._cond(batch), batch["latent"], self.cfg)
        a = batch["actions"]
        noise = torch.randn_like(a)
        t = torch.randint(0, self.cfg.train_timesteps, (len(a),), device=a.device)
        noisy = self.train_sched.add_noise(a, noise, t)
        loss = masked_mse(self._eps(noisy, t, self._cond(batch)), noise, batch)
        return loss, {}

    @torch.no_grad()
    def predict(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Observation batch -> action chunk (B, chunk, A) in [-1, 1] after cfg.inference_steps DDIM steps."""
        cond = self._cond(batch)
        b, cfg = len(cond), self.cfg
        x = torch.randn(b, cfg.chunk, cfg.action_dim, generator=generator).to(cond.device)
        sched = self.infer_sched
        sched.set_timesteps(cfg.inference_steps)
        for t in sched.timesteps:
            eps = self._eps(x, torch.full((b,), int(t), device=cond.device), cond)
            x = sched.step(eps, t, x).prev_sample   # eta = 0: deterministic given the initial noise
        return x.clamp(-1, 1)


# --------------------------------------------------------------------------- GR00T-style

class FlowPolicy(nn.Module):
    """GR00T-style: observation tokens and noisy action tokens through one transformer; the
    action tokens' outputs are the flow velocity (rectified flow, as GR00T N1's action head)."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.obs = obs_encoder(cfg)
        self.act_in = nn.Linear(cfg.action_dim, w)
        self.act_pos = nn.Parameter(torch.zeros(1, cfg.chunk, w))
        self.time = nn.Sequential(nn.Linear(TIME_DIM, w), nn.GELU(), nn.Linear(w, w))
        layer = nn.TransformerEncoderLayer(w, max(1, w // 32), 2 * w, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, cfg.action_dim))
        self.latent_head = _latent_head(cfg, w)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """x (B, chunk, A) at flow times t (B,) given obs tokens (B, N, w) -> velocity (B, chunk, A)."""
        act = self.act_in(x) + self.act_pos + self.time(_time_embedding(t, TIME_DIM))[:, None]
        h = self.blocks(torch.cat([obs, act], 1))
        return self.out(h[:, obs.shape[1]:])

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        if "latent" in batch:  # latent-action pretraining: pooled observation tokens -> latent codes
            return latent_loss(self.latent_head, self.obs(batch).mean(1), batch["latent"], self.cfg)
        a = batch["actions"]
        z = torch.randn_like(a)
        t = torch.rand(len(a), device=a.device)
        xt = (1 - t[:, None, None]) * z + t[:, None, None] * a
        loss = masked_mse(self.velocity(xt, t, self.obs(batch)), a - z, batch)
        return loss, {}

    @torch.no_grad()
    def predict(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Observation batch -> action chunk (B, chunk, A) after cfg.inference_steps Euler steps."""
        obs = self.obs(batch)
        b, cfg = len(obs), self.cfg
        x = torch.randn(b, cfg.chunk, cfg.action_dim, generator=generator).to(obs.device)
        dt = 1.0 / cfg.inference_steps
        for i in range(cfg.inference_steps):
            x = x + dt * self.velocity(x, torch.full((b,), i * dt, device=obs.device), obs)
        return x.clamp(-1, 1)


def build(cfg: PolicyConfig) -> nn.Module:
    """An untrained policy of cfg's family."""
    return DiffusionPolicy(cfg) if cfg.family == "dp" else FlowPolicy(cfg)


def load_policy(folder) -> nn.Module:
    """The policy saved in folder (`config.save_policy`), in eval mode."""
    model = build(load_config(folder))
    path = Path(folder) / WEIGHTS_FILE
    try:
        state = torch.load(path, map_location="cpu")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no weights beside policy.json; train one with the train_policy stage") from None
    except Exception as e:  # torch raises pickle/zip errors of several kinds for a damaged file
        raise PolicyError(f"{path}: not a policy checkpoint ({type(e).__name__}); re-train the policy with the "
                          f"train_policy stage") from None
    model.load_state_dict(state)
    return model.eval()
