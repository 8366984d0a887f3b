"""The video world model: image + instruction -> video (DreamGen steps 1-2).

clips     ClipSpec (num_frames, frame_stride, image_size), ClipBank, load_bank, resize_frames
text      the offline all-MiniLM-L6-v2 instruction encoder
model     UNetConfig (frames-as-channels UNet2DConditionModel, the mini model), DenoiserConfig
          (WanTransformer3DModel), build_denoiser, FlowMatchingVideoModel
pipeline  DreamGenVideoPipeline (diffusers style), build_pipeline, load_pipeline
fit       fit(): flow-matching training through dreamgen.training, with samples over training
evaluate  dream(), continuation_report(): MAE vs real and vs copy-first-frame, motion check,
          frames_in_place
lora      LoRA adapters with peft, saved apart from the base and checked against it on load
"""
from .clips import ClipBank, ClipSpec, clip_indices, load_bank, resize_frames, sample_clips, split_holdout
from .evaluate import continuation_report, copy_first, dream, frames_in_place, motion_check, per_frame_mae
from .fit import fit
from .model import DenoiserConfig, FlowMatchingVideoModel, UNetConfig, build_denoiser, build_transformer, condition,\
    denoiser_configs
from .pipeline import DreamGenVideoOutput, DreamGenVideoPipeline, build_pipeline, load_pipeline
from .text import load_text_encoder
from . import lora  # LoRA adapters: add_lora, save_adapter, load_adapter

__all__ = ["ClipBank", "ClipSpec", "clip_indices", "load_bank", "resize_frames", "sample_clips", "split_holdout",
           "continuation_report", "copy_first", "dream", "frames_in_place", "motion_check", "per_frame_mae", "fit", "DenoiserConfig",
           "FlowMatchingVideoModel", "UNetConfig", "build_denoiser", "build_transformer", "condition", "denoiser_configs", "DreamGenVideoOutput",
           "DreamGenVideoPipeline", "build_pipeline", "load_pipeline", "load_text_encoder"]
