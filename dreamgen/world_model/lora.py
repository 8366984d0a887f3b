"""LoRA adapters (peft) on the world model's transformer: the robot fine-tuning of DreamGen step 1.

An adapter folder holds `adapter_model.safetensors` (the LoRA weights only, small) and
`adapter_config.json` (rank, targets, and a fingerprint of the base model it was trained on),
so it is saved apart from the base model and refuses to load onto another one.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # attention projections, as diffusers' WAN LoRAs do


def base_fingerprint(transformer) -> str:
    """A short hash of the base transformer's config and weights (LoRA layers excluded)."""
    config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}  # not load-time extras
    h = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode())
    # with an adapter in place peft renames base weights `x.base_layer.weight`; hash the plain names
    for name, p in sorted((k.replace(".base_layer", ""), v) for k, v in transformer.state_dict().items()):
        if "lora_" not in name:
            h.update(name.encode())
            # the exact bytes: a float sum's last bits depend on the thread count
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def add_lora(pipe, rank: int, alpha: float | None = None, targets=TARGETS, name: str = "default") -> int:
    """Freeze the base transformer and add a trainable LoRA adapter; returns its parameter count."""
    from peft import LoraConfig

    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    tr = pipe.transformer
    tr.requires_grad_(False)
    tr.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=list(targets),
                              init_lora_weights=True), adapter_name=name)
    return sum(p.numel() for p in tr.parameters() if p.requires_grad)


def write_adapter(transformer, folder, card: dict, caller: str = "save_adapter", adder: str = "add_lora") -> Path:
    """Write `transformer`'s LoRA weights (adapter_model.safetensors) and adapter_config.json:
    rank, alpha, targets, then the `card` keys (base fingerprint, meta, ...). The shared part of
    save_adapter and wan.save_wan_lora; `caller` and `adder` name them and the function that adds
    the adapter in the error for a transformer without one."""
    from safetensors.torch import save_file

    if not getattr(transformer, "_hf_peft_config_loaded", False):
        raise ValueError(f"{caller}: the transformer has no LoRA adapter; add one first ({adder})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state(transformer), folder / WEIGHTS)
    lcfg = transformer.peft_config["default"]
    fields = dict(rank=lcfg.r, alpha=lcfg.lora_alpha, targets=sorted(lcfg.target_modules), **card)
    (folder / CONFIG).write_text(json.dumps(fields, indent=1, default=str))
    return folder


def adapter_state(transformer) -> dict:
    """The LoRA weights of `transformer`'s adapter (peft names, no base weights), detached on the CPU."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(transformer).items()}


def set_adapter_state(transformer, state: dict, where, name: str = "default") -> None:
    """Load LoRA weights `state` (adapter_state's names) into `transformer`'s adapter `name`;
    ValueError naming `where` if they do not fit it."""
    from peft.utils import set_peft_model_state_dict

    result = set_peft_model_state_dict(transformer, state, adapter_name=name)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"{where}: adapter weights do not fit this model: {unexpected[:3]}...")


def read_adapter_config(folder, what: str = "LoRA adapter") -> dict:
    """An adapter folder's config; FileNotFoundError, naming the stage to run, if it holds no adapter."""
    folder = Path(folder)
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"{folder}: no {what} here (expected {WEIGHTS} and {CONFIG}); run the "
                                "finetune_world_model stage first")
    return json.loads((folder / CONFIG).read_text())


def attach_adapter(transformer, folder, cfg: dict, name: str = "default") -> None:
    """Add the adapter `cfg` describes (rank, alpha, targets) to `transformer`, load its weights
    from `folder` and freeze everything; ValueError if the weights do not fit."""
    from peft import LoraConfig
    from safetensors.torch import load_file

    transformer.add_adapter(LoraConfig(r=cfg["rank"], lora_alpha=cfg["alpha"], target_modules=cfg["targets"]),
                            adapter_name=name)
    set_adapter_state(transformer, load_file(Path(folder) / WEIGHTS), folder, name)
    transformer.requires_grad_(False)


def save_adapter(pipe, folder, base_print: str, meta: dict | None = None) -> Path:
    """Write the adapter's weights and config (with the base fingerprint and `meta`) to `folder`."""
    return write_adapter(pipe.transformer, folder, dict(base=base_print, clip_spec=pipe.clip_spec.to_dict(),
                                                        meta=meta or {}))


def load_adapter(pipe, folder, name: str = "default") -> dict:
    """Load an adapter saved by save_adapter onto `pipe` (its base model); returns its config.

    Raises FileNotFoundError for a missing adapter and ValueError for one trained on another
    base model or clip spec.
    """
    cfg = read_adapter_config(folder)
    here = base_fingerprint(pipe.transformer)
    if cfg["base"] != here:
        raise ValueError(f"{folder}: adapter was trained on base model {cfg['base']}, but this base model is "
                         f"{here}; load the base it was fine-tuned from")
    if cfg["clip_spec"] != pipe.clip_spec.to_dict():
        raise ValueError(f"{folder}: adapter clip spec {cfg['clip_spec']} differs from the model's {pipe.clip_spec}")
    attach_adapter(pipe.transformer, folder, cfg, name)
    return cfg
