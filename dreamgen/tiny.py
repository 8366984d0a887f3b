"""Tiny, randomly initialised versions of the paper profile's pretrained models, built offline.

The paper profile loads WAN2.1 image-to-video, Qwen2.5-VL and SigLIP-2 by model id or local
path. Nothing here may download weights, so the tests (on CPU) and the device check
(`benchmarks/gpu_paper_path.py`, on a GPU) exercise the same code paths on these stand-ins of
the same classes. Their outputs mean nothing; only shapes, dtypes, devices and plumbing do.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

# tiny WAN I2V: VAE latent channels; the transformer takes 2 Z + 4 (noisy, mask, image condition)
WAN_Z = 4


def tiny_wan_i2v(tokenizer_dir: str | Path | None = None):
    """A WanImageToVideoPipeline a few hundred kilobytes large (dimensions follow diffusers' own
    WAN I2V tests): 32x32 frames -> 4x4 latents, 1 + 4 n frames -> n + 1 latent frames.

    tokenizer_dir: a Hugging Face tokenizer folder (default: the bundled all-MiniLM-L6-v2 one);
    the text encoder is a one-layer UMT5 over that vocabulary.
    """
    from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline,
                           WanTransformer3DModel)
    from transformers import (AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config,
                              UMT5EncoderModel)

    if tokenizer_dir is None:
        from dreamgen.world_model.text import text_model_dir

        tokenizer_dir = text_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=32, num_layers=1,
                                               num_heads=4, relative_attention_num_buckets=8)).eval()
    # a non-trivial latent normalisation, so that a wrong mean/std would show
    vae = AutoencoderKLWan(base_dim=3, z_dim=WAN_Z, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True], latents_mean=[0.1, -0.2, 0.0, 0.3],
                           latents_std=[1.5, 0.5, 1.0, 2.0]).eval()
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                        in_channels=2 * WAN_Z + 4, out_channels=WAN_Z, text_dim=32, freq_dim=256,
                                        ffn_dim=32, num_layers=2, cross_attn_norm=True,
                                        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=4).eval()
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                                                     num_attention_heads=2, image_size=8, intermediate_size=16,
                                                     patch_size=2)).eval()
    pipe = WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                   scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                   image_processor=CLIPImageProcessor(crop_size=8, size=8),
                                   image_encoder=image_encoder, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_qwen_judge(frames: int = 4):
    """A VLMJudge over a two-layer Qwen2.5-VL with a word-level tokenizer of the judge prompts."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers import Qwen2VLImageProcessor

    from dreamgen.bench import vlm

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    words = sorted(set(re.findall(r"\w+|[^\w\s]", vlm.IF_PROMPT + vlm.PA_PROMPT + vlm.SYSTEM +
                                  " system user assistant put the red cube in blue bowl open drawer 0 1 8")))
    vocab = {t: i for i, t in enumerate(["[UNK]"] + specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(s, special=True) for s in specials])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="<|endoftext|>")
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         bos_token_id=1, eos_token_id=3, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[0], window_size=28),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    return vlm.VLMJudge(model, tokenizer, Qwen2VLImageProcessor(), frames=frames)


def tiny_siglip(arch: str, image_size: int):
    """A one-layer SigLIP ("siglip") or SigLIP-2 ("siglip2") vision model with 8-pixel patches;
    save_pretrained it and give the folder as the IDM's backbone_path."""
    import transformers

    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, patch_size=8)
    torch.manual_seed(0)
    if arch == "siglip":
        return transformers.SiglipVisionModel(transformers.SiglipVisionConfig(image_size=image_size, **small))
    if arch == "siglip2":
        return transformers.Siglip2VisionModel(
            transformers.Siglip2VisionConfig(num_patches=(image_size // 8) ** 2, **small))
    raise ValueError(f"arch: {arch!r}; expected 'siglip' or 'siglip2'")


def square_clips(n: int, frames: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, frames, size, size, 3) uint8: a grey background with a bright square moving right,
    2 pixels a frame (needs size >= 10 + 2 frames): video with motion to train the tiny models on."""
    rng = np.random.default_rng(seed)
    x = np.full((n, frames, size, size, 3), 60, np.uint8) + rng.integers(0, 20, (n, 1, 1, 1, 3), dtype=np.uint8)
    for i in range(n):
        for t in range(frames):
            x[i, t, 8:16, 2 + 2 * t:10 + 2 * t] = 220
    return x
