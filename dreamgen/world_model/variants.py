"""World-model variants: the base (web pretraining only), a LoRA adapter, a fully fine-tuned
denoiser, or another (smaller) world model.

A variant folder holds either a peft adapter (lora.save_adapter: adapter_config.json +
adapter_model.safetensors), a full fine-tune (`transformer/` in diffusers layout +
variant.json, kind "full") or another model (the same layout, kind "model": a denoiser of
another size, pretrained and fine-tuned on its own, that shares the base's text encoder,
scheduler and clip spec). Each records a fingerprint of the base it was trained from; adapters
and full fine-tunes load only onto that base with `load_variant(base_dir, variant_dir)`, so a
dream always says which base and which variant made it and a variant never silently loads onto
another base. A "model" variant replaces the denoiser and must agree with the base's pipeline
settings instead.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from dreamgen.world_model import lora
from dreamgen.world_model.pipeline import DreamGenVideoPipeline, load_pipeline

VARIANT = "variant.json"
KINDS = ("base", "lora", "full", "model")
# what a "model" variant must share with the base pipeline it is loaded into
PIPELINE_KEYS = ("image_size", "num_frames", "frame_stride", "residual", "max_text_tokens", "prediction",
                 "train_shift", "motion_weight", "loss", "train_times")
EXTRA_LORA = re.compile(r"^lora-r(?P<rank>\d+)-s(?P<steps>\d+)$")


def parse_extra_lora(name: str) -> tuple[int, int]:
    """(rank, steps) of an extra LoRA variant named lora-r<rank>-s<steps>, e.g. lora-r4-s300."""
    m = EXTRA_LORA.match(name)
    if not m or int(m["rank"]) < 1 or int(m["steps"]) < 1:
        raise ValueError(f"extra LoRA variant {name!r}: expected lora-r<rank>-s<steps> with both >= 1, "
                         "e.g. lora-r4-s300")
    return int(m["rank"]), int(m["steps"])


def pipeline_card(pipe: DreamGenVideoPipeline) -> dict:
    """The pipeline settings a denoiser was trained under (clip spec, objective, sampler shift)."""
    return {k: pipe.config.get(k) for k in PIPELINE_KEYS} | dict(shift=pipe.scheduler.config.shift,
                                                                 text_dim=pipe.text_encoder.config.hidden_size)


def save_full(pipe: DreamGenVideoPipeline, folder, base_print: str, meta: dict | None = None,
              kind: str = "full") -> Path:
    """Write a fine-tuned denoiser (transformer only: text encoder and scheduler are the base's).

    kind "full": a full fine-tune of the base (same architecture); "model": the denoiser of
    another world model (e.g. a smaller one, base_print being its own pretrained base's).
    """
    if kind not in ("full", "model"):
        raise ValueError(f"kind must be 'full' or 'model', got {kind!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.transformer.save_pretrained(folder / "transformer")
    (folder / VARIANT).write_text(json.dumps(dict(kind=kind, base=base_print, clip_spec=pipe.clip_spec.to_dict(),
                                                  pipeline=pipeline_card(pipe), meta=meta or {}),
                                             indent=1, default=str))
    return folder


def variant_kind(folder) -> str:
    """'lora', 'full' or 'model' for a saved variant folder; FileNotFoundError if it holds none."""
    folder = Path(folder)
    if (folder / lora.CONFIG).is_file():
        return "lora"
    if (folder / VARIANT).is_file():
        return json.loads((folder / VARIANT).read_text()).get("kind", "full")
    raise FileNotFoundError(f"{folder}: no world-model variant here (expected {lora.CONFIG} of a LoRA adapter or "
                            f"{VARIANT} of a full fine-tune); run the finetune_world_model stage first")


def load_variant(base_dir, variant_dir=None) -> tuple["DreamGenVideoPipeline | wan_stage.WanDreamer", dict]:
    """The base pipeline with a variant applied; returns (pipe, info with kind, base, variant).

    Raises FileNotFoundError for a missing base or variant, ValueError for a variant trained
    on another base model or clip spec. A WAN adapter (the paper profile) names its own base:
    it comes back as a wan_stage.WanDreamer and `base_dir` is not read.
    """
    from dreamgen.world_model import wan_stage

    if variant_dir is not None and wan_stage.is_wan_variant(variant_dir):
        return wan_stage.load_dreamer(variant_dir)
    pipe = load_pipeline(base_dir)
    here = lora.base_fingerprint(pipe.transformer)
    info = dict(kind="base", base_dir=str(base_dir), base=here, variant_dir=None)
    if variant_dir is None:
        return pipe, info
    kind = variant_kind(variant_dir)
    if kind == "lora":
        cfg = lora.load_adapter(pipe, variant_dir)
        return pipe, info | dict(kind="lora", variant_dir=str(variant_dir), rank=cfg["rank"], meta=cfg.get("meta", {}))
    cfg = json.loads((Path(variant_dir) / VARIANT).read_text())
    if kind == "model":
        return _load_model(pipe, info, variant_dir, cfg)
    if cfg["base"] != here:
        raise ValueError(f"{variant_dir}: fine-tuned from base model {cfg['base']}, but {base_dir} is {here}; "
                         "load the base it was fine-tuned from")
    if cfg["clip_spec"] != pipe.clip_spec.to_dict():
        raise ValueError(f"{variant_dir}: clip spec {cfg['clip_spec']} differs from the base's {pipe.clip_spec}")
    tr = type(pipe.transformer).from_pretrained(Path(variant_dir) / "transformer")
    plain = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731 (load-time extras differ)
    if plain(tr.config) != plain(pipe.transformer.config):
        raise ValueError(f"{variant_dir}: its transformer config differs from the base's")
    pipe.transformer = tr.eval().requires_grad_(False)
    return pipe, info | dict(kind="full", variant_dir=str(variant_dir), meta=cfg.get("meta", {}))


def _load_model(pipe: DreamGenVideoPipeline, info: dict, variant_dir, cfg: dict):
    """Swap in another world model's denoiser, if it was trained under the base pipeline's settings."""
    here = pipeline_card(pipe)
    theirs = cfg.get("pipeline", {})
    diff = sorted(k for k in set(here) | set(theirs) if here.get(k) != theirs.get(k))
    if diff:
        raise ValueError(f"{variant_dir}: a world model trained with other pipeline settings than the base at "
                         f"{info['base_dir']} ({', '.join(f'{k}: {theirs.get(k)} vs {here.get(k)}' for k in diff)}); "
                         "retrain it with the base's settings")
    tr = type(pipe.transformer).from_pretrained(Path(variant_dir) / "transformer")
    pipe.transformer = tr.eval().requires_grad_(False)
    return pipe, info | dict(kind="model", base=cfg["base"], variant_dir=str(variant_dir), meta=cfg.get("meta", {}))


def finetune(base_dir, kind: str, bank, train_cfg, ckpt_root, batch_size: int, p_drop_text: float,
             rank: int = 16, alpha: float | None = None, targets=lora.TARGETS, extra: dict | None = None,
             desc: str = "finetune"):
    """Fine-tune the base at `base_dir` on robot clips `bank`: kind 'lora' (peft adapter on `targets`,
    base frozen) or 'full' (every denoiser weight). Returns (pipe, TrainResult, base fingerprint, trainable parameters).

    Checkpoints go to ckpt_root/<hash of model, kind, rank, data, training settings>, so an
    interrupted run of the same configuration resumes and another one starts fresh.
    """
    from dreamgen.world_model.fit import checkpoint_dir, fit

    if kind not in ("lora", "full"):
        raise ValueError(f"kind must be 'lora' or 'full', got {kind!r}")
    pipe = load_pipeline(base_dir)
    base_print = lora.base_fingerprint(pipe.transformer)
    n_train = lora.add_lora(pipe, rank, alpha, targets) if kind == "lora" else None
    settings = dict(kind=kind, rank=rank if kind == "lora" else None, alpha=alpha, targets=list(targets),
                    base=base_print, train=train_cfg.identity(), batch_size=batch_size,
                    p_drop_text=p_drop_text, **(extra or {}))
    ckpt = checkpoint_dir(ckpt_root, pipe, settings)
    result, _ = fit(pipe, bank, train_cfg, ckpt, batch_size=batch_size, p_drop_text=p_drop_text,
                    desc=desc, train_all=kind == "full")  # the base's training recipe (time shift, motion weight)
    n_train = n_train if n_train is not None else sum(p.numel() for p in pipe.transformer.parameters())
    return pipe, result, base_print, n_train
