"""Stage parameters: the schema of each `params.yaml` section, its validation, and profiles.

`params.yaml` is the only configuration. Each stage reads its own section; a profile
(`profiles/<name>.yaml`) is a sparse override of it that may only change existing keys.

Command line:
    python -m dreamgen.params check [--params params.yaml]
    python -m dreamgen.params profile smoke [--set-args] [--params params.yaml]
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, get_args, get_origin

import yaml


class ParamError(ValueError):
    """One or more parameters are wrong; the message names each `section.key` and the fix."""


def key(help: str, *, lo: float | Callable[[], float] | None = None, hi: float | Callable[[], float] | None = None,
        choices: tuple | Callable[[], tuple] | None = None) -> Any:
    """A schema field: its help text and the range or choices it must respect.

    For a list-valued key they apply to each item. A bound or choices known only to another module
    (the world's behaviours, say) is given as a function without arguments, called when a value is checked.
    """
    return field(metadata=dict(help=help, lo=lo, hi=hi, choices=choices))


@functools.cache
def world_behaviours() -> tuple[str, ...]:
    """dreamgen.world.BEHAVIOURS, imported only when a value that names behaviours is checked."""
    from dreamgen.world import BEHAVIOURS

    return tuple(BEHAVIOURS)


@functools.cache
def world_environment_count() -> int:
    """len(dreamgen.world.ENVIRONMENTS), imported only when an environment index is checked."""
    from dreamgen.world import ENVIRONMENTS

    return len(ENVIRONMENTS)


def _last_environment() -> int:
    return world_environment_count() - 1


@dataclass(frozen=True)
class WorldParams:
    seed: int = key("seed of the gallery and of the expert-success episodes", lo=0)
    image_size: int = key("camera resolution in pixels (square)", lo=16, hi=256)
    supersample: int = key("render at this multiple of image_size, then average down", lo=1, hi=8)
    max_steps: int = key("control steps (10 Hz) before an episode is cut", lo=10, hi=1000)
    expert_noise: float = key("teleoperator noise scale; 0 is a clean scripted expert", lo=0.0, hi=5.0)
    episodes_per_cell: int = key("expert episodes per embodiment x behaviour", lo=1)
    min_expert_success: float = key("a behaviour below this expert success fails the stage", lo=0.0, hi=1.0)
    gallery_frames: int = key("frames per clip in the animated gallery", lo=2, hi=200)
    workers: int = key("processes for the expert-success episodes", lo=1, hi=64)
    spec_path: str = key("world spec + measured expert success, read by later stages")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")
    tables_dir: str = key("folder of this stage's tables")


@dataclass(frozen=True)
class CollectParams:
    seed: int = key("base seed of every collected episode", lo=0)
    spec_path: str = key("world spec written by the world stage")
    expert_noise: float = key("teleoperator noise scale", lo=0.0, hi=5.0)
    cotrain_per_behaviour: int = key("robot demos per behaviour, lab only (co-training results)", lo=1)
    pickplace_episodes: int = key("robot pick-and-place demos in the lab (generalization results)", lo=1)
    robot_b_per_behaviour: int = key("demos per behaviour of the second robot", lo=1)
    web_per_cell: int = key("web clips per web embodiment x behaviour x environment", lo=1)
    max_attempt_factor: float = key("give up after this many attempts per kept episode", lo=1.0, hi=10.0)
    workers: int = key("processes that simulate episodes", lo=1, hi=64)
    camera: str = key("camera name in the LeRobot video key observation.images.<camera>")
    data_dir: str = key("folder holding one LeRobot dataset per name")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")


@dataclass(frozen=True)
class TrainIdmParams:
    seed: int = key("seed of initialisation, batches and flow-matching noise", lo=0)
    dataset_path: str = key("robot teleoperation dataset the IDM learns from (LeRobot v2.1)")
    holdout_every: int = key("every n-th episode is held out for evaluation", lo=2, hi=1000)
    frame_stride: int = key("k: control steps between the IDM's two frames = actions it predicts", lo=1, hi=32)
    image_size: int = key("frames are area-downsampled to this size: the world model's, so dreams fit", lo=16, hi=512)
    backbone: str = key("vision backbone: a small CNN from scratch, the CNN plus spatial-softmax keypoints, or a "
                        "transformers model", choices=("cnn", "keypoints", "hf"))
    backbone_model: str = key("transformers model id or local folder for backbone hf (empty for cnn)")
    width: int = key("feature and head width", lo=8, hi=4096)
    flow_steps: int = key("Euler steps when sampling an action chunk", lo=1, hi=100)
    label_samples: int = key("action chunks drawn per frame pair and averaged when labelling (1 = one draw)",
                             lo=1, hi=64)
    steps: int = key("optimizer steps", lo=1)
    batch_size: int = key("windows per step", lo=1)
    lr: float = key("AdamW learning rate", lo=0.0, hi=1.0)
    ckpt_every: int = key("checkpoint every this many steps (a stopped run resumes from it)", lo=1)
    replay_episodes: int = key("held-out episodes replayed in the simulator (0: all)", lo=0)
    spec_path: str = key("world spec: the camera and episode settings to replay in")
    model_dir: str = key("folder of the trained IDM (config + weights + training state)")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")


@dataclass(frozen=True)
class TrainLamParams:
    seed: int = key("seed of initialisation and batches", lo=0)
    robot_dataset_path: str = key("robot videos (their actions are used only to show what codes mean)")
    web_dataset_path: str = key("web videos: no actions, which latent actions do not need")
    max_web_episodes: int = key("web clips used (0: all); memory and loading time", lo=0)
    holdout_every: int = key("every n-th episode is held out for evaluation", lo=2, hi=1000)
    frame_stride: int = key("control steps between the two frames; the same as the IDM's", lo=1, hi=32)
    image_size: int = key("frames are area-downsampled to this size; the same as the IDM's", lo=8, hi=512)
    codebook_size: int = key("number of latent actions (the paper used 8)", lo=2, hi=1024)
    code_dim: int = key("size of a code vector", lo=1, hi=1024)
    width: int = key("channels of encoder and decoder", lo=8, hi=1024)
    steps: int = key("optimizer steps", lo=1)
    batch_size: int = key("frame pairs per step", lo=1)
    lr: float = key("AdamW learning rate", lo=0.0, hi=1.0)
    ckpt_every: int = key("checkpoint every this many steps (a stopped run resumes from it)", lo=1)
    model_dir: str = key("folder of the trained latent action model")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")


@dataclass(frozen=True)
class LabelParams:
    seed: int = key("seed of the flow-matching noise when labelling", lo=0)
    idm_dir: str = key("trained IDM (train_idm.model_dir)")
    lam_dir: str = key("trained latent action model (train_lam.model_dir)")
    heldout_dataset_path: str = key("real dataset whose held-out episodes are labelled too (the IDM's)")
    holdout_every: int = key("the held-out split; must equal train_idm.holdout_every", lo=2, hi=1000)
    dreamed_paths: list[str] = key("dreamed-video datasets to label (fps = 10 / frame_stride)")
    spec_path: str = key("world spec: the camera and episode settings to replay in")
    out_dir: str = key("folder of the neural-trajectory datasets")
    idm_real_path: str = key("every episode of heldout_dataset_path labelled by the IDM as dreams are (strided): "
                             "the data of the policies' -idm sanity arms; outside out_dir (DVC outs may not nest)")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")


@dataclass(frozen=True)
class PretrainWorldModelParams:
    seed: int = key("seed of initialisation, batches, noise and evaluation samples", lo=0)
    web_dataset_path: str = key("web video corpus the base model learns from (no robot in it)")
    robot_dataset_path: str = key("robot videos whose first frames give the zero-shot prompts (not trained on)")
    max_web_episodes: int = key("use at most this many web clips, spread over the corpus; 0 = all", lo=0)
    holdout_every: int = key("every this-many-th web clip is held out for evaluation", lo=2)
    num_frames: int = key("frames per clip, the first being the condition", lo=2, hi=64)
    frame_stride: int = key("control steps between clip frames; the IDM labels pairs this far apart", lo=1, hi=20)
    image_size: int = key("frame size the model sees; the world's frames are area-downsampled to it", lo=8, hi=256)
    arch: str = key("denoiser: 'unet' (a conv UNet2DConditionModel over the frames stacked as channels, the mini "
                    "model) or 'wan' (a small WanTransformer3DModel, the paper's class)", choices=("unet", "wan"))
    unet_blocks: list[int] = key("U-Net channels per resolution level (arch unet); each level halves the frame",
                                 lo=8, hi=1024)
    unet_layers_per_block: int = key("resnet layers per U-Net level (arch unet)", lo=1, hi=8)
    small_unet_blocks: list[int] = key("U-Net channels per level of the smaller model (arch unet)", lo=8, hi=1024)
    patch: int = key("spatial patch size of the transformer (tokens = (image_size/patch)^2 per frame)", lo=1, hi=16)
    width: int = key("transformer width (heads x head size)", lo=8)
    heads: int = key("attention heads", lo=1)
    layers: int = key("transformer blocks", lo=1, hi=64)
    small_width: int = key("width of the smaller world model trained by the same recipe (the bench's 'small' "
                           "variant)", lo=8)
    small_heads: int = key("attention heads of the smaller model", lo=1)
    small_layers: int = key("transformer blocks of the smaller model", lo=1, hi=64)
    residual: bool = key("model the clip minus its first frame, so that nothing moving is the easy default")
    prediction: str = key("what the transformer outputs: the clean clip (x0) or the flow velocity",
                          choices=("x0", "velocity"))
    shift: float = key("timestep shift of sampling; > 1 spends more Euler steps near pure noise", lo=0.1, hi=20.0)
    train_shift: float = key("timestep shift of the training times; 1 = uniform in (0, 1), fine-tunes inherit it",
                             lo=0.1, hi=20.0)
    motion_weight: float = key("extra loss weight on pixels that change from the first frame; 0 = plain MSE; "
                               "fine-tunes inherit it", lo=0.0, hi=100.0)
    loss: str = key("space of the training MSE: the flow velocity, or the clean clip itself (x0, needs prediction "
                    "x0); fine-tunes inherit it", choices=("velocity", "x0"))
    train_times: str = key("how training draws flow times: 'shift' (uniform warped by train_shift) or "
                           "'logit_normal' (most in the middle); fine-tunes inherit it",
                           choices=("shift", "logit_normal"))
    p_drop_text: float = key("probability of dropping the instruction in training (classifier-free guidance)", lo=0.0, hi=1.0)
    max_text_tokens: int = key("instruction tokens the model attends to", lo=4, hi=128)
    steps: int = key("optimizer steps", lo=1)
    batch_size: int = key("clips per step", lo=1)
    lr: float = key("AdamW learning rate", lo=1e-6, hi=1.0)
    lr_schedule: str = key("learning-rate schedule: constant, or cosine decay to 0 after warm-up",
                           choices=("constant", "cosine"))
    warmup: int = key("warm-up steps of the cosine schedule (must be < steps)", lo=0)
    ckpt_every: int = key("checkpoint every this many steps (an interrupted run resumes)", lo=1)
    sample_every: int = key("dream the fixed evaluation clips every this many steps", lo=1)
    guidance_scale: float = key("classifier-free guidance scale when dreaming", lo=1.0, hi=20.0)
    inference_steps: int = key("Euler steps of the flow when dreaming", lo=1, hi=200)
    robot_eval_clips: int = key("robot episodes used as zero-shot prompts", lo=1)
    threads: int = key("torch CPU threads; 0 = all cores", lo=0, hi=256)
    ckpt_dir: str = key("training checkpoints, one folder per configuration, kept across runs to resume")
    model_dir: str = key("the base world model (DreamGenVideoPipeline.save_pretrained)")
    small_model_dir: str = key("the smaller base world model, saved the same way")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")

    def cross_problems(self) -> list[str]:
        """What the keys get wrong together (validate adds the stage name)."""
        out = []
        if self.loss == "x0" and self.prediction != "x0":
            out.append("loss: 'x0' needs the denoiser to output the clean clip. Fix: set prediction to x0, or loss "
                       "to velocity")
        if self.arch == "unet":
            factor = 2 ** (len(self.unet_blocks) - 1)
            for name in ("unet_blocks", "small_unet_blocks"):
                blocks = getattr(self, name)
                if len(blocks) < 2:
                    out.append(f"{name}: {blocks} needs at least 2 levels. Fix: e.g. [32, 64, 64]")
                elif any(b % 8 for b in blocks):
                    out.append(f"{name}: {blocks}: every width must be a multiple of 8 (GroupNorm groups and "
                               "attention heads). Fix: round them to multiples of 8")
            if len(self.small_unet_blocks) != len(self.unet_blocks):
                out.append(f"small_unet_blocks: {len(self.small_unet_blocks)} levels, but unet_blocks has "
                           f"{len(self.unet_blocks)}. Fix: give both the same number of levels")
            if self.image_size % factor:
                out.append(f"image_size: {self.image_size} does not halve {len(self.unet_blocks) - 1} times for the "
                           f"U-Net's levels. Fix: use a multiple of {factor}")
        return out


@dataclass(frozen=True)
class FinetuneWorldModelParams:
    seed: int = key("seed of adapters' initialisation, batches, noise and evaluation dreams", lo=0)
    base_dir: str = key("the base world model (pretrain_world_model's model_dir)")
    dataset_paths: list[str] = key("robot teleoperation datasets, one fine-tune each; experiment = name minus 'robot_'")
    holdout_every: int = key("every n-th robot episode is held out to measure dream quality", lo=2, hi=1000)
    lora_rank: int = key("LoRA rank r of every adapted projection", lo=1, hi=1024)
    lora_alpha: float = key("LoRA alpha: the update is scaled by alpha / r", lo=0.0)
    lora_targets: list[str] = key("module names (suffixes) of the denoiser that get adapters")
    lora_steps: int = key("optimizer steps of each LoRA fine-tune", lo=1)
    lora_lr: float = key("AdamW learning rate of LoRA weights", lo=0.0, hi=1.0)
    full_experiments: list[str] = key("experiments that also get a full fine-tune, for the comparison ([]: none)")
    full_steps: int = key("optimizer steps of each full fine-tune", lo=1)
    full_lr: float = key("AdamW learning rate of a full fine-tune", lo=0.0, hi=1.0)
    extra_loras: list[str] = key("more LoRA variants for the bench ranking, named lora-r<rank>-s<steps>, trained on "
                                 "full_experiments too ([]: none)")
    small_base_dir: str = key("the smaller base world model (pretrain_world_model's small_model_dir)")
    small_experiments: list[str] = key("experiments on which the smaller model is fully fine-tuned (full_steps, "
                                       "full_lr) into the variant 'small' ([]: none)")
    lr_schedule: str = key("learning-rate schedule of every fine-tune: constant, or cosine decay to 0",
                           choices=("constant", "cosine"))
    batch_size: int = key("clips per step", lo=1)
    p_drop_text: float = key("unconditional training fraction (classifier-free guidance)", lo=0.0, hi=1.0)
    ckpt_every: int = key("checkpoint every this many steps (a stopped run resumes from it)", lo=1)
    guidance_scale: float = key("classifier-free guidance of the evaluation dreams", lo=0.0, hi=20.0)
    inference_steps: int = key("Euler steps of the flow when dreaming", lo=1, hi=1000)
    sampler_etas: list[float] = key("sampler stochasticity (fresh-noise fraction per step) compared on the lab "
                                    "LoRA's dreams; 0 is the deterministic sampler every stage uses", lo=0.0, hi=1.0)
    idm_dir: str = key("IDM whose pair features give the Frechet distance (train_idm's model_dir)")
    spec_path: str = key("world spec: the camera and episode settings in which the held-out resets are retaken "
                         "with other teleoperation noise (the ceiling of a dream's score)")
    wan_model: str = key("'' fine-tunes the mini model of stage 03; a WAN2.1 image-to-video pipeline (diffusers "
                         "folder, or a Hub model id already in the local cache) gets the LoRA adapters instead "
                         "(the paper profile)")
    wan_size: int = key("square frame size WAN trains and dreams at, a multiple of 16 (used with wan_model)", lo=16)
    wan_num_frames: int = key("frames per WAN clip, 1 + 4 n, frame_stride apart as the mini model's (used with "
                              "wan_model)", lo=5)
    wan_dtype: str = key("dtype of WAN's transformer and text encoder (used with wan_model)",
                         choices=("float32", "bfloat16"))
    threads: int = key("torch CPU threads; 0 = all cores", lo=0, hi=256)
    ckpt_dir: str = key("training checkpoints, one folder per configuration, kept across runs to resume")
    out_dir: str = key("variants: out_dir/<experiment>/lora (peft adapter) and .../full (full fine-tune)")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")

    def cross_problems(self) -> list[str]:
        """What the keys get wrong together (validate adds the stage name)."""
        out = []
        if self.wan_model:
            for name in ("full_experiments", "extra_loras", "small_experiments"):
                if getattr(self, name):
                    out.append(f"{name}: {getattr(self, name)!r}, but the WAN path (wan_model) trains LoRA "
                               f"adapters only. Fix: set {name} to []")
        if self.wan_size % 16:
            out.append(f"wan_size: {self.wan_size} is not a multiple of 16. Fix: use e.g. "
                       f"{16 * -(-self.wan_size // 16)}")
        if (self.wan_num_frames - 1) % 4:
            out.append(f"wan_num_frames: {self.wan_num_frames} is not 1 + 4 n (WAN's VAE compresses time by 4). "
                       f"Fix: use {1 + 4 * max(1, (self.wan_num_frames - 1) // 4)}")
        return out


@dataclass(frozen=True)
class DreamParams:
    seed: int = key("base seed of simulator resets (initial frames) and of dream noise", lo=0)
    spec_path: str = key("world spec written by the world stage")
    base_dir: str = key("the base world model")
    variants_dir: str = key("finetune_world_model's out_dir")
    experiments: list[str] = key("experiments to dream for; each reads variants_dir/<experiment>/<variant>")
    variant: str = key("which fine-tune dreams: lora or full", choices=("lora", "full"))
    n_seen: int = key("dreams per trained (behaviour, environment) pair", lo=0)
    n_new_behaviour: int = key("dreams per behaviour the robot data never showed (in its environment)", lo=0)
    n_unseen_environment: int = key("dreams per trained behaviour in each environment it was never shown in", lo=0)
    paraphrase_every: int = key("every n-th dream of a cell asks with a held-out paraphrase (0: never)", lo=0)
    segments: int = key("clips chained per dream (each starts at the last frame of the one before)", lo=1, hi=16)
    guidance_scale: float = key("classifier-free guidance scale", lo=0.0, hi=20.0)
    inference_steps: int = key("Euler steps of the flow", lo=1, hi=1000)
    batch_size: int = key("clips dreamed at once", lo=1, hi=4096)
    idm_dir: str = key("IDM whose pair features give the Frechet distance")
    workers: int = key("processes that simulate the resets and the expert references", lo=1, hi=64)
    threads: int = key("torch CPU threads; 0 = all cores", lo=0, hi=256)
    out_dir: str = key("dreamed videos: out_dir/<experiment>, LeRobot v2.1, no actions yet")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")


@dataclass(frozen=True)
class TrainPolicyParams:
    seed: int = key("base seed; each arm adds its own seed (the -s<k> of its name)", lo=0)
    arm: str = key("the arm this run trains; `python -m dreamgen.run train_policy --arm NAME` sets it")
    arms: list[str] = key("every arm, <family>-r<real demos per behaviour>-n<neural trajectories>-s<seed>"
                          "[-lam|-idm]; dvc.yaml trains one per item (foreach)")
    real_dataset_path: str = key("real robot teleoperation dataset (control rate, LeRobot v2.1)")
    neural_dataset_path: str = key("neural trajectories (label stage output: strided, chunked actions)")
    idm_real_dataset_path: str = key("real episodes labelled by the IDM (label.idm_real_path); -idm arms train on "
                                     "them instead of the true actions of the same real episodes")
    ratio: float = key("neural share of each batch when an arm has both sources (0.5 = the paper's 1:1)",
                       lo=0.0, hi=1.0)
    mask_neural_state: bool = key("zero the state of neural windows and flag it masked, as the official code")
    image_size: int = key("policy input size; every frame (real, dreamed, simulator) is area-resized to it",
                          lo=8, hi=256)
    encoder: str = key("observation encoder: 'state' (the bench's frozen state estimator, read relative to the "
                       "gripper; dreamgen/policy/backbone.py), 'conv' (image patches) or 'keypoints' (patches plus "
                       "spatial soft-argmax keypoints relative to the gripper)", choices=("state", "conv", "keypoints"))
    estimator_dir: str = key("the 'state' encoder's backbone: the bench's state estimator (bench.model_dir/estimator)")
    keypoints: int = key("keypoints of the 'keypoints' encoder", lo=1, hi=256)
    chunk: int = key("control-rate actions predicted per query (the paper uses 16)", lo=4, hi=64)
    width: int = key("feature width: U-Net base channels / transformer width", lo=8, hi=4096)
    layers: int = key("transformer blocks of the gr00t-style action head", lo=1, hi=64)
    train_timesteps: int = key("DDPM noise levels of the diffusion policy", lo=2, hi=1000)
    inference_steps: int = key("DDIM steps (dp) or Euler steps of the flow (gr00t) per action chunk", lo=1, hi=100)
    steps: int = key("optimizer steps per arm", lo=1)
    latent_steps: int = key("latent-action pretraining steps of -lam arms (before `steps` on real actions)", lo=0)
    batch_size: int = key("windows per step", lo=1)
    lr: float = key("AdamW learning rate", lo=0.0, hi=1.0)
    ckpt_every: int = key("checkpoint every this many steps (a stopped run resumes from it)", lo=1)
    threads: int = key("torch CPU threads; 0 = all cores", lo=0, hi=256)
    models_dir: str = key("one folder per arm: models_dir/<arm> (config, weights, training state)")
    metrics_dir: str = key("one DVC metrics file per arm: metrics_dir/<arm>.json")
    figures_dir: str = key("one folder of figures per arm: figures_dir/<arm>")


@dataclass(frozen=True)
class EvaluateParams:
    seed: int = key("base seed of the shared initial states (far from the collected episodes' seeds)", lo=0)
    arms: list[str] = key("arms to evaluate (train_policy.arms or a subset)")
    models_dir: str = key("train_policy.models_dir")
    spec_path: str = key("world spec: camera and episode settings")
    behaviours: list[str] = key("behaviours evaluated (empty: all of the world's)", choices=world_behaviours)
    environments: list[int] = key("environments evaluated (0 = the lab the demos come from)",
                                  lo=0, hi=_last_environment)
    episodes_per_cell: int = key("episodes per behaviour x environment for every policy", lo=1)
    execute: int = key("actions executed from each predicted chunk before re-planning", lo=1, hi=64)
    expert_noise: float = key("noise of the scripted-expert row (the teleoperator that made the data)",
                              lo=0.0, hi=5.0)
    r1_neural: int = key("neural count of R1's GT + neural arms", lo=1)
    r2_real: int = key("real demos per behaviour of the R2 scaling arms", lo=1)
    workers: int = key("processes playing episodes", lo=1, hi=64)
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures and rollout videos")
    tables_dir: str = key("folder of this stage's tables")



@dataclass(frozen=True)
class BenchParams:
    seed: int = key("seed of the judge-training episodes, initialisation, batches and test clips", lo=0)
    spec_path: str = key("world spec: the camera and episode settings the judges' frames are rendered with")
    real_dataset_path: str = key("real robot dataset whose held-out episodes test the judges")
    holdout_every: int = key("every n-th real episode is held out (the other stages' split)", lo=2, hi=1000)
    image_size: int = key("judge frame size: the world model's (dreams are judged as they are)", lo=8, hi=256)
    num_frames: int = key("frames per judged clip: the world model's clip length", lo=2, hi=64)
    frame_stride: int = key("control steps between clip frames: the world model's", lo=1, hi=32)
    train_per_behaviour: int = key("simulated expert episodes per behaviour to train the judges on", lo=1)
    val_per_behaviour: int = key("held-out simulated episodes per behaviour for the validity check", lo=1)
    calib_per_behaviour: int = key("held-out simulated episodes per behaviour that set the PA thresholds and the "
                                   "IF slack", lo=1)
    corrupt_per_behaviour: int = key("episodes per corruption kind x object behaviour (teleport, recolour, "
                                     "vanish, interpenetrate)", lo=1)
    estimator_width: int = key("state estimator channels", lo=4, hi=1024)
    estimator_steps: int = key("state estimator optimizer steps", lo=1)
    classifier_width: int = key("clip-instruction classifier hidden units", lo=4, hi=1024)
    classifier_steps: int = key("clip-instruction classifier optimizer steps", lo=1)
    success_width: int = key("pixel success judge channels", lo=4, hi=1024)
    success_steps: int = key("pixel success judge optimizer steps", lo=1)
    batch_size: int = key("frames per estimator step, clips per classifier step", lo=2)
    lr: float = key("AdamW learning rate of both judges", lo=0.0, hi=1.0)
    ckpt_every: int = key("checkpoint every this many steps (a stopped run resumes from it)", lo=1)
    pa_clip_pass: float = key("share of clean calibration clips that pass every PA rule", lo=0.5, hi=1.0)
    real_clips: int = key("held-out real episodes judged (0: all)", lo=0)
    workers: int = key("processes that simulate the judges' episodes", lo=1, hi=64)
    threads: int = key("torch CPU threads; 0 = all cores", lo=0, hi=256)
    dream_paths: list[str] = key("dreamed-video datasets to score and rank (fps = 10 / frame_stride)")
    vlm_model: str = key("Qwen2.5-VL model id or folder for the paper's IF/PA judge; empty: mini judges only")
    vlm_frames: int = key("frames sampled evenly from each video for the VLM judge", lo=1, hi=64)
    model_dir: str = key("folder of the trained judges (estimator, classifier, PA thresholds)")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")
    tables_dir: str = key("folder of this stage's tables")
    # Ranking world-model variants and the link to policy success (paper Table 2, R8)
    base_dir: str = key("zero-shot base world model (the variant named 'base')")
    variants_dir: str = key("fine-tuned world-model variants: <variants_dir>/<experiment>/<name>")
    idm_dir: str = key("inverse dynamics model that labels every variant's dreams")
    rank_experiment: str = key("experiment whose variants are ranked (its robot data defines the splits)")
    rank_variants: list[str] = key("variants to rank: 'base' and folder names under variants_dir/experiment")
    rank_prompts_per_split: int = key("prompts per split (seen, new behaviour, unseen environment), the same "
                                      "for every variant", lo=1)
    rank_seed: int = key("seed of the prompts' resets and of the dream noise, far from the dream stage's", lo=0)
    rank_segments: int = key("chained clips per dream (1 + segments x (clip - 1) frames = num_frames)", lo=1, hi=16)
    rank_guidance_scale: float = key("classifier-free guidance of the dreams, as the dream stage", lo=0.0, hi=50.0)
    rank_inference_steps: int = key("denoising steps per dreamed clip", lo=1, hi=1000)
    rank_batch_size: int = key("clips dreamed at once", lo=1)
    rank_policy_steps: int = key("optimizer steps of each variant's neural-only policy (same for all)", lo=1)
    rank_policy_batch_size: int = key("windows per policy step", lo=1)
    rank_policy_lr: float = key("policy AdamW learning rate", lo=0.0, hi=1.0)
    rank_policy_image_size: int = key("policy frame size", lo=8, hi=256)
    rank_policy_width: int = key("policy feature width", lo=4, hi=4096)
    rank_policy_layers: int = key("transformer blocks of the GR00T-style head", lo=1, hi=64)
    rank_policy_inference_steps: int = key("Euler steps per predicted action chunk", lo=1, hi=1000)
    rank_eval_seed: int = key("base seed of the closed-loop initial states, shared by every variant's policy", lo=0)
    rank_eval_episodes: int = key("closed-loop episodes per dreamed (behaviour, environment) cell", lo=1)
    rank_execute: int = key("actions executed per chunk before re-planning", lo=1, hi=64)
    rank_n_boot: int = key("bootstrap resamples of the variants for the correlation intervals", lo=10)
    filter_variant: str = key("variant whose dreams are also filtered by the judges before labelling "
                              "(empty: no filtering arm)")
    filter_min_pa: float = key("keep a dream only if its PA is at least this", lo=0.0, hi=1.0)
    filter_if: bool = key("also require the state judge's IF = 1 to keep a dream")
    rank_dir: str = key("folder of the ranking's dreams, neural trajectories and policies")

STAGES: dict[str, type] = {"world": WorldParams, "collect": CollectParams,
                           "pretrain_world_model": PretrainWorldModelParams,
                           "finetune_world_model": FinetuneWorldModelParams, "dream": DreamParams,
                           "train_idm": TrainIdmParams, "train_lam": TrainLamParams, "label": LabelParams,
                           "bench": BenchParams,
                           "train_policy": TrainPolicyParams, "evaluate": EvaluateParams}


def _type_ok(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if get_origin(kind) is list:
        (item,) = get_args(kind)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    return isinstance(value, kind)


def _kind_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def _resolved(bound: Any) -> Any:
    return bound() if callable(bound) else bound


def _value_problems(where: str, value: Any, m: Any) -> list[str]:
    """The choices and range of a key whose type is right; a list's apply to each item, named by position."""
    lists = isinstance(value, list)
    items = value if lists else [value]
    choices = _resolved(m["choices"]) if m["choices"] is not None and items else None
    lo = _resolved(m["lo"]) if m["lo"] is not None and items else None
    hi = _resolved(m["hi"]) if m["hi"] is not None and items else None
    problems = []
    for i, v in enumerate(items):
        what = f"{v!r} at index {i}" if lists else repr(v)
        if choices is not None and v not in choices:
            close = difflib.get_close_matches(str(v), [str(c) for c in choices], n=1)
            problems.append(f"{where}: {what} is not one of {list(choices)}. Fix: "
                            + (f"use {close[0]!r}, or " if close else "") + "pick one of them")
        elif lo is not None and v < lo or hi is not None and v > hi:
            span = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
            problems.append(f"{where}: {what} is out of range. Fix: use "
                            f"{'values' if lists else 'a value'} in {span} ({m['help']})")
    return problems


def validate(stage: str, values: dict[str, Any]) -> Any:
    """Check a stage's section against its schema and return it as the stage's dataclass.

    Raises ParamError listing every problem as `stage.key: what is wrong. Fix: ...`.
    """
    if stage not in STAGES:
        raise ParamError(f"{stage}: no such stage; known stages: {', '.join(STAGES)}")
    if not isinstance(values, dict):
        raise ParamError(f"{stage}: the section is {_kind_of(values)}, not a mapping of keys. Fix: give "
                         f"its `key: value` lines, indented under `{stage}:`")
    schema = {f.name: f for f in dataclasses.fields(STAGES[stage])}
    hints = {f.name: (eval(f.type) if isinstance(f.type, str) else f.type) for f in schema.values()}
    problems = []
    for name in values:
        if name not in schema:
            problems.append(f"{stage}.{name}: unknown key. Fix: remove it or correct its spelling; "
                            f"known keys: {', '.join(schema)}")
    for name, f in schema.items():
        if name not in values:
            problems.append(f"{stage}.{name}: missing. Fix: add it to params.yaml ({f.metadata['help']})")
            continue
        value, kind, m = values[name], hints[name], f.metadata
        if not _type_ok(value, kind):
            problems.append(f"{stage}.{name}: expected {_kind_name(kind)}, got {type(value).__name__} "
                            f"{value!r}. Fix: give a {_kind_name(kind)} ({m['help']})")
            continue
        problems += _value_problems(f"{stage}.{name}", value, m)
    if not problems:  # keys that must agree with each other, once each one is right alone
        checked = STAGES[stage](**values)
        problems = [f"{stage}.{p}" for p in getattr(checked, "cross_problems", list)()]
    if problems:
        raise ParamError("invalid parameters:\n  " + "\n  ".join(problems))
    return checked


def from_namespace(stage: str, namespace: dict[str, Any]) -> Any:
    """Validate the stage's parameters as a notebook holds them, as globals of its kernel."""
    names = [f.name for f in dataclasses.fields(STAGES[stage])]
    return validate(stage, {n: namespace[n] for n in names if n in namespace})


def _read_yaml(path: str | Path) -> Any:
    """The parsed content of a YAML file; a missing file or a syntax error is a ParamError that says where."""
    path = Path(path)
    try:
        data = path.read_bytes()  # bytes: yaml detects the encoding and reports a bad byte's position
    except FileNotFoundError:
        raise ParamError(f"{path}: no such file. Fix: check the path (run from the repository root, "
                         f"or give --params PATH)") from None
    except OSError as err:
        raise ParamError(f"{path}: cannot be read ({err.strerror}). Fix: give the path of a readable "
                         f"YAML file") from None
    try:
        return yaml.safe_load(data)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        if mark is None:
            raise ParamError(f"{path}: invalid YAML: {' '.join(str(err).split())}. Fix: fix the YAML "
                             f"syntax of {path}") from None
        line, column = mark.line + 1, mark.column + 1
        what = err.problem or err.context or "syntax error"
        if err.context and err.problem and err.context_mark is not None:
            what += f" ({err.context}, which starts at line {err.context_mark.line + 1})"
        lines = data.decode("utf-8", "replace").splitlines()
        shown = f"; line {line} reads {lines[line - 1]!r}" if 0 < line <= len(lines) else ""
        raise ParamError(f"{path}:{line}:{column}: invalid YAML: {what}{shown}. Fix: fix the YAML syntax at "
                         f"line {line}, column {column} of {path}") from None
    except yaml.reader.ReaderError as err:  # bytes that are not UTF-8 text, or a control character
        # the position counts characters of the decoded text, or bytes when decoding failed
        before = (data.decode("utf-8", "replace") if err.encoding == "unicode" else data)[:err.position]
        line = before.count("\n" if isinstance(before, str) else b"\n") + 1
        column = len(before) - max(before.rfind("\n" if isinstance(before, str) else b"\n"), -1)
        raise ParamError(f"{path}:{line}:{column}: invalid YAML: character {err.character:#x} is not allowed "
                         f"({err.reason}). Fix: fix the YAML syntax at line {line}, column {column} of {path}: "
                         f"save it as UTF-8 text without control characters") from None
    except yaml.YAMLError as err:
        flat = " ".join(str(err).split())
        raise ParamError(f"{path}: invalid YAML: {flat}. Fix: fix the YAML syntax of {path}") from None


def _kind_of(value: Any) -> str:
    if value is None:
        return "empty"
    kind = type(value).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} ({value!r:.60})"


def _check_sections(sections: dict, where: str | Path) -> None:
    """Every section of a params or profile mapping must itself be a mapping of keys."""
    problems = [f"{where}: section {name!r} is {_kind_of(values)}, not a mapping of keys. Fix: indent its "
                f"`key: value` lines under `{name}:`"
                for name, values in sections.items() if not isinstance(values, dict)]
    if problems:
        raise ParamError("\n".join(problems))


def load_params(path: str | Path = "params.yaml") -> dict[str, dict[str, Any]]:
    """params.yaml as {stage: {key: value}}; raises ParamError naming the file and the fix if it cannot be."""
    params = _read_yaml(path)
    if not isinstance(params, dict):
        raise ParamError(f"{path}: the top level is {_kind_of(params)}, not a mapping of stage sections. "
                         f"Fix: write one `stage:` section per stage at the top level, e.g. `world:` "
                         f"followed by its indented `key: value` lines")
    _check_sections(params, path)
    return params


def load_profile(path: str | Path) -> dict[str, dict[str, Any]]:
    """A profile file as {section: {key: value}} ({} if it is empty); raises ParamError like load_params."""
    override = _read_yaml(path)
    if override is None:
        return {}
    if not isinstance(override, dict):
        raise ParamError(f"{path}: the top level is {_kind_of(override)}, not a mapping of sections. "
                         f"Fix: write `section:` lines at the top level, each followed by the indented "
                         f"`key: value` lines it overrides")
    return override


def stage_section(params: dict, stage: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    if stage not in params:
        raise ParamError(f"{stage}: no section in {path}. Fix: add a `{stage}:` section "
                         f"(sections present: {', '.join(params)})")
    return params[stage]


def apply_profile(base: dict, override: dict, where: str = "profile") -> dict:
    """A copy of `base` with `override`'s values; an override key that `base` lacks is an error."""
    if not isinstance(override or {}, dict):
        raise ParamError(f"{where}: the top level is {_kind_of(override)}, not a mapping of sections. "
                         f"Fix: a profile maps sections to the keys it overrides")
    _check_sections(override or {}, where)
    merged = {s: dict(v) for s, v in base.items()}
    problems = []
    for section, values in (override or {}).items():
        if section not in base:
            problems.append(f"{where}: section {section!r} is not in params.yaml")
            continue
        for name, value in values.items():
            if name not in base[section]:
                problems.append(f"{where}: {section}.{name} is not a key of params.yaml")
            merged[section][name] = value
    if problems:
        raise ParamError("\n".join(problems) + "\nFix: a profile may only change existing keys")
    return merged


def set_args(override: dict) -> list[str]:
    """`dvc exp run` arguments that apply a profile: ['-S', 'world.seed=1', ...]."""
    out = []
    for section, values in override.items():
        for name, value in values.items():
            out += ["-S", f"{section}.{name}={json.dumps(value)}"]  # JSON is valid YAML
    return out


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dreamgen.params", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["check", "profile"])
    ap.add_argument("name", nargs="?", help="profile name (profiles/<name>.yaml)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--set-args", action="store_true",
                    help="print `dvc exp run` -S arguments instead of rewriting params.yaml")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        if args.command == "profile":
            if not args.name:
                ap.error("profile needs a name, e.g. smoke or paper")
            prof = Path(args.params).parent / "profiles" / f"{args.name}.yaml"
            if not prof.is_file():
                known = sorted(p.stem for p in prof.parent.glob("*.yaml"))
                raise ParamError(f"no profile file {prof}. Fix: pick one of {', '.join(known) or '(none)'}, "
                                 f"or add {prof}")
            override = load_profile(prof)
            params = apply_profile(params, override, str(prof))
            if args.set_args:
                print(" ".join(set_args(override)))
                return 0
        for stage, section in params.items():
            validate(stage, section)
        if args.command == "profile":
            Path(args.params).write_text(yaml.safe_dump(params, sort_keys=False))
            print(f"wrote profile {args.name} into {args.params} (undo: git checkout {args.params})")
        else:
            print(f"{args.params}: all sections valid")
    except ParamError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main())
