"""The policies' shared vision backbone: the bench's frozen state estimator, read gripper-relative.

GR00T's policies see through a pretrained vision-language backbone. Here the backbone is the
state estimator the bench stage trains once on simulator-labelled frames (32x32, every
environment; `dreamgen.bench.nets.StateEstimator`): a frame goes in, the object-centric world
state (`dreamgen.bench.state`: per colour an object, a zone and a button; the end effector, the
drawer, the beads and the stain) comes out. The policy ("state" encoder) never trains it; it
reads its estimate as tokens:

- one token per colour slot: the slot's entries (presences as probabilities), the object's,
  zone's and button's positions relative to the gripper, and the slot's role in the instruction
  (the colour named first, named later, or not named), plus a learned embedding of the colour;
- one token of the global entries (drawer, beads, stain, held, opening).

Why relative and why roles: on the simulator's true state, a flow head solved 0 of 20
pick-and-place resets reading absolute positions and 10 of 20 reading positions relative to
the gripper (`benchmarks/probe_policy_state.py`). Roles are what a vision-language backbone
grounds: "the red cube" names a slot. They are read from the instruction's colour words
(`dreamgen.bench.state.instruction_colours`), as the bench's IF judge reads them.

Because the estimator is frozen, its estimate of every training window is computed once
(`estimate`), and an arm trains on these cached vectors: thousands of steps in a minute.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dreamgen.bench import state as ST
from dreamgen.policy.config import PolicyError

NC, PC = len(ST.COLOUR_NAMES), len(ST.PER_COLOUR)
N_GLOBAL = ST.DIM - NC * PC
_XY = [(ST.PER_COLOUR.index(f"{k}_x"), ST.PER_COLOUR.index(f"{k}_y"), ST.PER_COLOUR.index(k))
       for k in ("obj", "zone", "button")]                  # (x, y, presence) columns inside a colour block
_EE = (ST.INDEX["ee_x"], ST.INDEX["ee_y"])
SLOT_FEATURES = PC + 2 * len(_XY) + 2                       # entries, relative positions, roles
REL_SCALE = 10.0  # state units are world / 100; x10 puts a grasp's tolerance (about 4 units) at 0.4


def load_estimator(folder) -> nn.Module:
    """The bench's saved StateEstimator, frozen; PolicyError naming the fix if there is none."""
    from dreamgen.bench import nets

    folder = Path(folder)
    try:
        model = nets.load(folder)
    except FileNotFoundError:
        raise PolicyError(f"{folder}: no state estimator here; the 'state' policy encoder reads the bench's "
                          f"(run the bench stage, or point train_policy.estimator_dir at bench.model_dir/estimator)") from None
    if not isinstance(model, nets.StateEstimator):
        raise PolicyError(f"{folder}: holds a {type(model).__name__}, not a StateEstimator; point "
                          f"train_policy.estimator_dir at bench.model_dir/estimator")
    return freeze(model)


def freeze(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def estimator_config(folder) -> dict:
    """The estimator's config as a dict (stored in PolicyConfig.backbone, so load_policy can rebuild it)."""
    return asdict(load_estimator(folder).cfg)


def build_estimator(backbone: dict) -> nn.Module:
    from dreamgen.bench import nets

    return freeze(nets.StateEstimator(nets.EstimatorConfig(**backbone)))


def roles(texts) -> np.ndarray:
    """(N, NC, 2) float32: for each instruction, which colour slot it names first and which later."""
    out = np.zeros((len(texts), NC, 2), np.float32)
    for n, text in enumerate(texts):
        for j, c in enumerate(c for c in ST.instruction_colours(text) if c in ST.COLOUR_NAMES):
            out[n, ST.COLOUR_NAMES.index(c), min(j, 1)] = 1.0
    return out


@torch.no_grad()
def estimate(estimator: nn.Module, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """uint8 (N, S, S, 3) -> estimated states (N, D) float32, probabilities for presences and flags."""
    if len(images) == 0:
        return np.zeros((0, ST.DIM), np.float32)
    return estimator.estimate(images, batch=batch)


def probabilities(estimator: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """image (B, 3, S, S) in [0, 1] -> estimated states (B, D), as `estimate`, inside a graph."""
    out = estimator(image)
    return torch.where(estimator.binary, torch.sigmoid(out), out)


def slot_inputs(est: torch.Tensor, state: torch.Tensor, mask: torch.Tensor, role: torch.Tensor,
                proprio_ee: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """est (B, D), state (B, S), mask (B, 1), role (B, NC, 2) -> (slots (B, NC, SLOT_FEATURES), global (B, N_GLOBAL)).

    Relative positions use the gripper's position from the proprioception when it holds it
    (proprio_ee: a Cartesian robot, state x, y in [-1, 1]) and the state is real, else the
    estimator's own end-effector estimate.
    """
    b = len(est)
    blocks = est[:, :NC * PC].reshape(b, NC, PC)
    ee = est[:, list(_EE)]                                                  # (B, 2) in state units (0..1)
    if proprio_ee:
        ee = torch.where(mask > 0, (state[:, :2] + 1) / 2, ee)
    # positions of absent things are whatever the head output: gate them by presence
    gated, rel = blocks.clone(), []
    for ix, iy, ip in _XY:
        present = blocks[:, :, ip:ip + 1]
        gated[:, :, [ix, iy]] = blocks[:, :, [ix, iy]] * present
        rel.append((blocks[:, :, [ix, iy]] - ee[:, None]) * present * REL_SCALE)
    return torch.cat([gated, *rel, role], -1), est[:, NC * PC:]


class StateObsEncoder(nn.Module):
    """batch -> tokens (B, NC + 3, width): colour slots, global entries, text, state.

    Reads batch["features"] (the cached estimate, (B, D)) when present, else runs the frozen
    estimator on batch["image"] (closed-loop evaluation). batch["roles"] (B, NC, 2) is required.
    """

    def __init__(self, cfg):
        super().__init__()
        if not cfg.backbone:
            raise PolicyError("the 'state' encoder needs the estimator's config (PolicyConfig.backbone); build the "
                              "config with dreamgen.policy.pipeline.policy_config(..., estimator_dir=...)")
        if cfg.backbone.get("image_size") != cfg.image_size:
            raise PolicyError(f"the state estimator reads {cfg.backbone.get('image_size')} px frames, the policy "
                              f"{cfg.image_size} px; set train_policy.image_size to bench.image_size")
        w = cfg.width
        self.estimator = build_estimator(cfg.backbone)
        self.proprio_ee = tuple(cfg.state_names[:2]) == ("x", "y")
        self.slot = nn.Sequential(nn.Linear(SLOT_FEATURES, w), nn.GELU(), nn.Linear(w, w))
        self.colour = nn.Parameter(torch.randn(1, NC, w) * 0.02)
        self.glob = nn.Sequential(nn.Linear(N_GLOBAL, w), nn.GELU(), nn.Linear(w, w))
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, w), nn.GELU(), nn.Linear(w, w))
        self.state = nn.Sequential(nn.Linear(cfg.state_dim + 1, w), nn.GELU(), nn.Linear(w, w))
        self.n_tokens = NC + 3

    def train(self, mode: bool = True):
        super().train(mode)
        self.estimator.eval()  # frozen: always in inference mode
        return self

    def forward(self, batch: dict) -> torch.Tensor:
        if "roles" not in batch:
            raise PolicyError("the 'state' encoder needs batch['roles'] (dreamgen.policy.backbone.roles of the "
                              "instructions); build batches with dreamgen.policy.windows.obs_batch(..., roles=...)")
        est = batch.get("features")
        if est is None:
            with torch.no_grad():
                est = probabilities(self.estimator, batch["image"])
        mask = batch["state_mask"]
        slots, glob = slot_inputs(est, batch["state"], mask, batch["roles"], self.proprio_ee)
        state = self.state(torch.cat([batch["state"] * mask, mask], -1))
        return torch.cat([self.slot(slots) + self.colour, self.glob(glob)[:, None], self.text(batch["text"])[:, None],
                          state[:, None]], 1)
