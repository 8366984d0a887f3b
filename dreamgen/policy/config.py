"""A policy's configuration (what it was trained for) and saving it; `models.load_policy` loads one.

The config travels with the weights, so evaluation can refuse an embodiment, image size or
action layout the policy was not trained for before running any episode.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

CONFIG_FILE, WEIGHTS_FILE = "policy.json", "policy.pt"
FAMILIES = ("dp", "gr00t")
ENCODERS = ("conv", "keypoints", "state")


class PolicyError(ValueError):
    """Input a policy cannot be trained on or evaluated with; the message says what and the fix."""


@dataclass(frozen=True)
class PolicyConfig:
    family: str                        # "dp" (diffusion policy) or "gr00t" (flow-matching transformer head)
    embodiment: str                    # the only embodiment it may drive
    action_names: tuple[str, ...]      # one control-rate action (A,)
    state_names: tuple[str, ...]       # proprioception (S,)
    image_size: int = 32               # every observation is area-resized to this
    chunk: int = 16                    # future actions predicted per query (the paper uses 16)
    text_dim: int = 384                # instruction embedding size (MiniLM)
    width: int = 64                    # feature width (U-Net base channels / transformer width)
    layers: int = 2                    # transformer blocks of the gr00t head
    train_timesteps: int = 100         # DDPM noise levels (dp)
    inference_steps: int = 8           # DDIM steps (dp) or Euler steps of the flow (gr00t)
    control_fps: int = 10
    encoder: str = "conv"              # "conv": image patches; "keypoints": patches + gripper-relative keypoints;
                                       # "state": the bench's frozen state estimator, read gripper-relative (backbone.py)
    keypoints: int = 16                # soft-argmax keypoints of the "keypoints" encoder
    backbone: dict = field(default_factory=dict)  # the "state" encoder's EstimatorConfig (its weights are in policy.pt)
    latent_codes: int = 0              # latent-action path: codebook size (0 = no latent head)
    latent_rows: int = 0               # latent actions per chunk (chunk / the neural rows' action chunk)
    extra: dict = field(default_factory=dict)   # provenance: arm, datasets, counts, ratio

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise PolicyError(f"unknown policy family {self.family!r}; use one of {FAMILIES}")
        if self.encoder not in ENCODERS:
            raise PolicyError(f"unknown policy encoder {self.encoder!r}; use one of {ENCODERS}")
        if self.image_size % 8:
            raise PolicyError(f"image_size must be a multiple of 8 (three stride-2 convolutions), got {self.image_size}")
        if self.chunk % 4:
            raise PolicyError(f"chunk must be a multiple of 4 (the U-Net halves it twice), got {self.chunk}")

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def state_dim(self) -> int:
        return len(self.state_names)


def save_policy(model, folder) -> Path:
    """Write policy.json (config, readable without torch) and policy.pt (weights)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.cfg), indent=2))
    torch.save(model.state_dict(), folder / WEIGHTS_FILE)
    return folder


def load_config(folder) -> PolicyConfig:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no policy here; train one with the train_policy stage")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PolicyError(f"{path}: not valid JSON ({e}); re-train the policy with the train_policy stage") from None
    raw["action_names"], raw["state_names"] = tuple(raw["action_names"]), tuple(raw["state_names"])
    return PolicyConfig(**raw)
