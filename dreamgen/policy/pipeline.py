"""The steps the train_policy stage calls: build an arm's data, check it, train, save."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dreamgen import data
from dreamgen.policy import backbone as B
from dreamgen.policy import windows as W
from dreamgen.policy.config import PolicyConfig, PolicyError, save_policy
from dreamgen.policy.models import build
from dreamgen.training import TrainConfig, train


@dataclass
class ArmData:
    """An arm's training windows and where they came from."""

    real: W.Windows
    neural: W.Windows | None
    real_text: np.ndarray          # (n_texts, D) embeddings of real.texts
    neural_text: np.ndarray | None
    ratio: float                   # effective neural share of an action-training batch
    real_episodes: list[int]
    neural_episodes: list[int]
    latent: bool = False           # latent-action path: neural windows (with codes) only pretrain
    idm_episodes: list[int] | None = None  # -idm arm: the real episodes' indices in the IDM-labelled dataset


def prepare_arm(arm: W.Arm, cfg: PolicyConfig, real_path: str, neural_path: str, ratio: float,
                mask_neural_state: bool, idm_real_path: str | None = None) -> ArmData:
    """Select, check and window the arm's real and neural episodes. Raises PolicyError (before any
    training) on a layout that does not fit `cfg`, too few episodes or a bad ratio.

    An -idm arm selects the same real episodes as its twin without the suffix, then takes their
    windows from `idm_real_path` (the IDM's labels, strided like dreams) instead of real_path."""
    eff = arm.ratio(ratio)
    real_idx, neural_idx, real, neural, rt, nt = [], [], None, None, None, None
    ds = data.Dataset(real_path)
    layout = W.dataset_layout(ds)
    W.check_layout(layout, cfg.action_names, cfg.state_names, cfg.embodiment, cfg.chunk, real_path)
    if layout.action_chunk != 1:
        raise PolicyError(f"{real_path}: real data must be at control rate (action_chunk 1), got {layout.action_chunk}")
    if arm.real_per_behaviour:
        real_idx = W.spread_select([W.behaviour_of(m) for m in ds.episodes_meta], per_behaviour=arm.real_per_behaviour,
                                   where=real_path)
    idm_idx = None
    if arm.idm:
        idm_idx = idm_real_indices(arm, cfg, real_path, real_idx, idm_real_path)
        # The labelled episodes are fed exactly as neural trajectories are (masked tail, and
        # masked state if mask_neural_state), so the arm measures turning real data into labels.
        real = W.load_windows(idm_real_path, idm_idx, cfg.chunk, cfg.image_size,
                              W.dataset_layout(data.Dataset(idm_real_path)), mask_neural_state)
    else:
        real = W.load_windows(real_path, real_idx, cfg.chunk, cfg.image_size, layout)
    if arm.neural:
        nds = data.Dataset(neural_path)
        nlayout = W.dataset_layout(nds)
        W.check_layout(nlayout, cfg.action_names, cfg.state_names, cfg.embodiment, cfg.chunk, neural_path)
        neural_idx = W.spread_select([W.behaviour_of(m) for m in nds.episodes_meta], total=arm.neural, where=neural_path)
        neural = W.load_windows(neural_path, neural_idx, cfg.chunk, cfg.image_size, nlayout, mask_neural_state,
                                with_codes=arm.latent)
        nt = W.embed_texts(neural.texts)
    rt = W.embed_texts(real.texts)
    return ArmData(real, neural, rt, nt, eff, real_idx, neural_idx, arm.latent, idm_idx)


def idm_real_indices(arm: W.Arm, cfg: PolicyConfig, real_path: str, real_idx: list[int],
                     idm_real_path: str | None) -> list[int]:
    """Check the IDM-labelled real dataset against the policy and find episodes `real_idx` of
    real_path in it (their indices there, same order). PolicyError naming the key to fix."""
    if not idm_real_path or not (Path(idm_real_path) / "meta" / "info.json").is_file():
        raise PolicyError(f"arm {arm.name}: -idm needs the IDM-labelled real episodes, but "
                          f"train_policy.idm_real_dataset_path = {idm_real_path!r} holds no dataset; point it at "
                          f"label.idm_real_path and run the label stage")
    ids = data.Dataset(idm_real_path)
    layout = W.dataset_layout(ids)
    W.check_layout(layout, cfg.action_names, cfg.state_names, cfg.embodiment, cfg.chunk, idm_real_path)
    metas = ids.episodes_meta
    idx = W.labelled_indices(metas, real_idx, real_path, idm_real_path)
    real_meta = data.Dataset(real_path).episodes_meta
    wrong = [i for i, j in zip(real_idx, idx) if W.behaviour_of(metas[j]) != W.behaviour_of(real_meta[i])]
    if wrong:
        raise PolicyError(f"{idm_real_path}: the labelled versions of real episodes {wrong[:8]} show another "
                          f"behaviour than the real ones; the labels are stale, rerun the label stage")
    return idx


def policy_config(arm: W.Arm, real_path: str, neural_path: str | None = None, estimator_dir: str | None = None,
                  **sizes) -> PolicyConfig:
    """The arm's policy config; action/state names and embodiment from the real dataset; on the
    latent path, the latent head's size from the neural dataset's latent action model; with the
    "state" encoder, the frozen estimator's config from estimator_dir (its weights: fit_policy)."""
    ds = data.Dataset(real_path)
    layout = W.dataset_layout(ds)
    latent = {}
    if arm.latent:
        nds = data.Dataset(neural_path)
        info = (nds.info.get("dreamgen") or {}).get("latent_actions")
        if not info:
            raise PolicyError(f"{neural_path}: no latent actions recorded (info.json dreamgen.latent_actions); "
                              f"label with a latent action model to train the -lam arm {arm.name}")
        k = W.dataset_layout(nds).action_chunk
        latent = dict(latent_codes=int(info["codebook_size"]), latent_rows=sizes.get("chunk", 16) // k)
    if sizes.get("encoder") == "state":
        if not estimator_dir:
            raise PolicyError("the 'state' encoder reads the bench's state estimator: set train_policy.estimator_dir "
                              "to bench.model_dir/estimator")
        sizes["backbone"] = B.estimator_config(estimator_dir)
    return PolicyConfig(family=arm.family, embodiment=layout.embodiment, action_names=layout.action_names,
                        state_names=layout.state_names, control_fps=int(ds.fps), **sizes, **latent)


def cache_features(arm_data: ArmData, estimator) -> None:
    """Estimate every window's image once with the frozen backbone (Windows.features, in place)."""
    for w in (arm_data.real, arm_data.neural):
        if w is not None:
            w.features = B.estimate(estimator, w.images)


def fit_policy(cfg: PolicyConfig, arm_data: ArmData, train_cfg: TrainConfig, batch_size: int, ckpt_dir,
               latent_steps: int = 0, stop_after: int | None = None, estimator_dir: str | None = None):
    """Train a fresh policy on the arm's mixture; returns (model, TrainResult, pretraining TrainResult or None).

    With the "state" encoder, the frozen estimator's weights come from estimator_dir and its
    estimate of every window is cached first (cache_features), so training never runs it.

    On the latent path, `latent_steps` steps first teach the policy the neural windows' latent
    actions (checkpointed in ckpt_dir/latent_pretrain), then every weight is trained on the real
    actions (ratio 0), as a policy pretrained on latent actions is fine-tuned in the paper.
    """
    torch.manual_seed(train_cfg.seed)
    model = build(cfg)
    if cfg.encoder == "state":
        if not estimator_dir:
            raise PolicyError("the 'state' encoder needs estimator_dir (train_policy.estimator_dir)")
        estimator = B.load_estimator(estimator_dir)
        model.obs.estimator.load_state_dict(estimator.state_dict())
        cache_features(arm_data, estimator)
    name = cfg.extra.get("arm", cfg.family)
    shift = cfg.encoder == "conv"  # see windows.augment_images
    pre = None
    if arm_data.latent:
        if latent_steps < 1:
            raise PolicyError(f"{name}: the latent-action path needs latent_steps >= 1")
        pre_cfg = replace(train_cfg, steps=latent_steps)
        pre = train(model, W.latent_sampler(arm_data.neural, batch_size, arm_data.neural_text, shift=shift), pre_cfg,
                    Path(ckpt_dir) / "latent_pretrain", desc=f"latent pretrain {name}")
    sample = W.mix_sampler(arm_data.real, arm_data.neural, arm_data.ratio, batch_size, arm_data.real_text,
                           arm_data.neural_text, shift=shift)
    result = train(model, sample, train_cfg, ckpt_dir, desc=f"train {name}", stop_after=stop_after)
    return model.eval(), result, pre


def with_provenance(cfg: PolicyConfig, arm: W.Arm, arm_data: ArmData, real_path: str, neural_path: str,
                    mask_neural_state: bool, idm_real_path: str | None = None) -> PolicyConfig:
    return replace(cfg, extra=dict(arm=arm.name, real_dataset=real_path, real_episodes=len(arm_data.real_episodes),
                                   real_per_behaviour=arm.real_per_behaviour, neural_dataset=neural_path if arm.neural else None,
                                   neural_trajectories=len(arm_data.neural_episodes), ratio=arm_data.ratio,
                                   mask_neural_state=mask_neural_state, seed=arm.seed, latent=arm.latent,
                                   idm=arm.idm, idm_real_dataset=idm_real_path if arm.idm else None,
                                   real_windows=len(arm_data.real),
                                   neural_windows=0 if arm_data.neural is None else len(arm_data.neural)))


__all__ = ["ArmData", "prepare_arm", "policy_config", "cache_features", "fit_policy", "with_provenance", "save_policy"]
