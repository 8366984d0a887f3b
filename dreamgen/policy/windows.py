"""Training data of the policies: experiment arms, real and neural windows, the co-training sampler.

A window is one observation and the `chunk` control-rate actions that follow it.
- Real episodes (control rate, T frames, actions (T, A)): a window at every frame t; actions
  t .. t+chunk-1, padded past the end with zeros (the no-op every episode ends with).
- Neural trajectories (frames k = action_chunk control steps apart, each row's action the
  flattened (k, A) chunk to the next frame): a window at every row j but the last; its chunk/k
  rows j .. j+chunk/k-1 unflattened into chunk control actions. A dream is cut after a fixed
  number of frames, usually before the task is done, so its final no-op row and the padding
  past it are not "stop here": they are masked out of the loss (action_mask 0) instead.
- IDM-labelled real episodes (the label stage's idm_real dataset, for `-idm` arms): real
  episodes in the neural format above (strided frames, chunked IDM labels, predicted states),
  each row's meta naming its source_episode in the real dataset.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dreamgen import data
from dreamgen.frames import resize_frames
from dreamgen.policy.config import FAMILIES, PolicyError

ARM = re.compile(r"^(?P<family>[a-z0-9]+)-r(?P<real>\d+)-n(?P<neural>\d+)-s(?P<seed>\d+)(?P<suffix>(-[a-z]+)*)$")
SUFFIXES = ("-lam", "-idm")
TAG = re.compile(r"^<[A-Z]+>\s*")
LATENT_KEY = "action.latent"  # the label stage's column of latent action codes


@dataclass(frozen=True)
class Arm:
    """One experiment arm, named `<family>-r<real demos per behaviour>-n<neural trajectories>-s<seed>`,
    e.g. dp-r10-n0-s0 (GT only), dp-r10-n100-s0 (GT + 100 neural), dp-r0-n100-s0 (neural only).
    A `-lam` suffix is the latent-action path: the neural trajectories' latent actions (codes of
    the latent action model) pretrain the policy, then it learns real actions from the real data.
    An `-idm` suffix is the labelling sanity arm: the same real episodes as the arm without it,
    but with the IDM's labels (strided like dreams) instead of their true actions and states,
    e.g. gr00t-r10-n0-s0-idm beside gr00t-r10-n0-s0: what labelling alone costs a policy."""

    name: str
    family: str
    real_per_behaviour: int
    neural: int
    seed: int
    latent: bool = False
    idm: bool = False

    @property
    def config(self) -> str:
        """The arm without its seed: the training seeds of one config are pooled in evaluation."""
        return re.sub(r"-s\d+", "", self.name, count=1)

    def ratio(self, ratio: float) -> float:
        """The neural share of each action-training batch: `ratio` when both sources exist, else
        0 or 1; 0 on the latent path, whose neural data only pretrains."""
        check_ratio(ratio)
        if self.latent or self.neural == 0:
            return 0.0
        return 1.0 if self.real_per_behaviour == 0 else ratio


def parse_arm(name: str) -> Arm:
    m = ARM.match(name)
    if not m:
        raise PolicyError(f"arm {name!r}: expected <family>-r<real per behaviour>-n<neural>-s<seed>[-lam|-idm], "
                          f"e.g. dp-r10-n100-s0")
    if m["family"] not in FAMILIES:
        raise PolicyError(f"arm {name!r}: unknown policy family {m['family']!r}; use one of {FAMILIES}")
    suffixes = re.findall(r"-[a-z]+", m["suffix"])
    unknown = [x for x in suffixes if x not in SUFFIXES]
    if unknown:
        raise PolicyError(f"arm {name!r}: unknown suffix {unknown[0]!r}; use one of {SUFFIXES} (or none)")
    if len(suffixes) > 1:
        raise PolicyError(f"arm {name!r}: {' and '.join(suffixes)} together; -lam changes what the neural "
                          f"trajectories teach, -idm what the real demos carry: train them as separate arms")
    arm = Arm(name, m["family"], int(m["real"]), int(m["neural"]), int(m["seed"]), "-lam" in suffixes,
              "-idm" in suffixes)
    if arm.real_per_behaviour == 0 and arm.neural == 0:
        raise PolicyError(f"arm {name!r}: no real and no neural data; give r or n above 0")
    if arm.latent and not (arm.real_per_behaviour and arm.neural):
        raise PolicyError(f"arm {name!r}: the latent-action path needs neural trajectories to pretrain on and "
                          f"real demos to fit actions on; give r and n above 0")
    if arm.idm and not arm.real_per_behaviour:
        raise PolicyError(f"arm {name!r}: -idm replaces the real demos by their IDM labels, but r is 0; give r "
                          f"above 0 (e.g. {m['family']}-r10-n0-s{m['seed']}-idm)")
    return arm


def check_ratio(ratio: float) -> None:
    if not (isinstance(ratio, (int, float)) and 0.0 <= ratio <= 1.0):
        raise PolicyError(f"co-training ratio must be in [0, 1] (the neural share of a batch; 0.5 = the "
                          f"paper's 1:1), got {ratio!r}")


def instruction(task: str) -> str:
    """The instruction without a <DREAM>/<RELABEL> tag: the policy must not know the source."""
    return TAG.sub("", task).strip()


def behaviour_of(meta: dict) -> str | None:
    return meta.get("behaviour") or (meta.get("source_meta") or {}).get("behaviour")


def spread_select(behaviours: list, per_behaviour: int | None = None, total: int | None = None,
                  where: str = "") -> list[int]:
    """Episode indices: the first `per_behaviour` of each behaviour, or `total` taken round-robin
    over behaviours (so a small neural count still covers every verb). Raises if too few."""
    groups: dict = {}
    for i, b in enumerate(behaviours):
        groups.setdefault(b, []).append(i)
    if per_behaviour is not None:
        short = {b: len(ix) for b, ix in groups.items() if len(ix) < per_behaviour}
        if short:
            raise PolicyError(f"{where}: {per_behaviour} episodes per behaviour asked, but only {short}; "
                              f"lower the count or collect more")
        return sorted(i for ix in groups.values() for i in ix[:per_behaviour])
    if total > len(behaviours):
        raise PolicyError(f"{where}: {total} neural trajectories asked, the dataset has {len(behaviours)}; "
                          f"lower the arm's n or dream more")
    order = [ix[r] for r in range(max(map(len, groups.values()))) for ix in groups.values() if r < len(ix)]
    return sorted(order[:total])


def labelled_indices(metas: list[dict], wanted: list[int], source: str, where: str) -> list[int]:
    """Indices, in a labelled dataset (episode metas with source_dataset, source_episode and
    source_meta, as the label stage writes them), of the labelled versions of episodes `wanted`
    of the real dataset `source`, in the order of `wanted`. Raises PolicyError when the labels
    come from another dataset or an episode is missing."""
    by_source, foreign = {}, set()
    for j, m in enumerate(metas):
        if "source_episode" not in m:
            raise PolicyError(f"{where}: episode {j} has no source_episode in its meta; not an IDM-labelled real "
                              f"dataset (label.idm_real_path)")
        if Path(str(m.get("source_dataset", ""))).resolve() != Path(source).resolve():
            foreign.add(str(m.get("source_dataset")))
        by_source[int(m["source_episode"])] = j
    if foreign:
        raise PolicyError(f"{where}: labelled from {sorted(foreign)}, not from the arm's real dataset {source}; "
                          f"set label.heldout_dataset_path to train_policy.real_dataset_path and rerun the label stage")
    missing = [i for i in wanted if i not in by_source]
    if missing:
        raise PolicyError(f"{where}: real episodes {missing[:8]}{'...' if len(missing) > 8 else ''} of {source} are "
                          f"not labelled; the label stage labels every episode of label.heldout_dataset_path, rerun it")
    return [by_source[i] for i in wanted]


# --------------------------------------------------------------------------- checks

@dataclass(frozen=True)
class Layout:
    """What a dataset provides: embodiment, action names per control step, state names, chunk k."""

    embodiment: str
    action_names: tuple[str, ...]
    state_names: tuple[str, ...]
    action_chunk: int


def dataset_layout(ds: data.Dataset) -> Layout:
    feat, extra = ds.info["features"], ds.info.get("dreamgen", {})
    missing = [k for k in ("action", "observation.state") if k not in feat]
    if missing:
        raise PolicyError(f"{ds.root}: no {missing} columns (web videos?); a policy needs actions and states")
    k = int(extra.get("action_chunk", 1))
    names = tuple(feat["action"]["names"])
    if k > 1:  # flattened chunk vx@0, vy@0, ..., grip@k-1 -> the per-step names
        per = len(names) // k
        base = tuple(n.split("@")[0] for n in names[:per])
        if len(names) != per * k or names != tuple(f"{n}@{j}" for j in range(k) for n in base):
            raise PolicyError(f"{ds.root}: action names {names[:6]}... are not a flattened chunk of {k} steps")
        names = base
    return Layout(ds.info.get("robot_type", ""), names, tuple(feat["observation.state"]["names"]), k)


def check_layout(layout: Layout, action_names, state_names, embodiment: str, chunk: int, where: str) -> None:
    """Refuse, before training, a dataset whose action or state layout does not fit the policy."""
    problems = []
    if layout.embodiment and layout.embodiment != embodiment:
        problems.append(f"embodiment {layout.embodiment!r}, the policy drives {embodiment!r}")
    if tuple(layout.action_names) != tuple(action_names):
        problems.append(f"actions {list(layout.action_names)} (width {len(layout.action_names)}), the policy "
                        f"outputs {list(action_names)} (width {len(action_names)})")
    if tuple(layout.state_names) != tuple(state_names):
        problems.append(f"state {list(layout.state_names)} (width {len(layout.state_names)}), the policy reads "
                        f"{list(state_names)} (width {len(state_names)})")
    if chunk % layout.action_chunk:
        problems.append(f"rows of {layout.action_chunk} actions do not tile a chunk of {chunk}")
    if problems:
        raise PolicyError(f"{where}: does not fit the policy: " + "; ".join(problems))


# --------------------------------------------------------------------------- windows

@dataclass
class Windows:
    """images (N, s, s, 3) uint8; texts list of instructions, text_index (N,); states (N, S);
    state_mask (N,) 1 = real state; actions (N, chunk, A); action_mask (N, chunk) 1 = a labelled action;
    codes (N, chunk / k) latent actions of the window's rows, -1 where there is none (latent path only);
    features (N, D) the frozen backbone's estimate of each image ("state" encoder only, see backbone.py)."""

    images: np.ndarray
    text_index: np.ndarray
    texts: list[str]
    states: np.ndarray
    state_mask: np.ndarray
    actions: np.ndarray
    action_mask: np.ndarray
    codes: np.ndarray | None = None
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    def roles(self) -> np.ndarray:
        """(n_texts, NC, 2): each instruction's colour roles (backbone.roles), indexed by text_index."""
        from dreamgen.policy.backbone import roles

        return roles(self.texts)


def episode_windows(ep, chunk: int, action_chunk: int, image_size: int) -> tuple:
    """(images (W, s, s, 3), states (W, S), actions (W, chunk, A), action_mask (W, chunk)) of one
    episode: W = T windows for real data (action_chunk 1), T - 1 for neural (see module doc)."""
    rows, t = chunk // action_chunk, len(ep)
    a = ep.actions.reshape(t, action_chunk, -1)                          # (T, k, A)
    padded = np.concatenate([a, np.zeros((rows - 1, *a.shape[1:]), a.dtype)])
    # real: the episode ended in success, so the no-op padding is a true label; neural: see above
    labelled = t + rows if action_chunk == 1 else t - 1
    n = t if action_chunk == 1 else max(t - 1, 0)
    chunks = np.stack([padded[j:j + rows].reshape(chunk, -1) for j in range(n)]) if n else \
        np.zeros((0, chunk, a.shape[-1]))
    row_of = np.arange(n)[:, None] + np.arange(chunk)[None] // action_chunk  # (W, chunk) source row
    mask = (row_of < labelled).astype(np.float32)
    return (resize_frames(ep.frames[:n], image_size), ep.states[:n].astype(np.float32), chunks.astype(np.float32),
            mask)


def latent_codes(ds: data.Dataset, i: int, key: str = LATENT_KEY) -> np.ndarray:
    """Episode i's latent action per row (T,) int, -1 where none; a clear error if not labelled."""
    import pyarrow.parquet as pq

    table = pq.read_table(ds.data_path(i))
    if key not in table.column_names:
        raise PolicyError(f"{ds.root}: no {key!r} column; label the dreams with a latent action model "
                          f"(label.lam_dir) to train a -lam arm")
    return data.vector_column(table, key)[:, 0].astype(np.int64)  # plain column (older datasets: 1-lists)


def window_codes(codes: np.ndarray, n: int, rows: int) -> np.ndarray:
    """(T,) per-row codes -> (n, rows): window j holds the codes of rows j .. j+rows-1, -1 past the end."""
    padded = np.concatenate([codes, np.full(rows, -1, codes.dtype)])
    return np.stack([padded[j:j + rows] for j in range(n)]) if n else np.zeros((0, rows), np.int64)


def load_windows(path: str, indices: list[int], chunk: int, image_size: int, layout: Layout,
                 mask_state: bool = False, with_codes: bool = False) -> Windows:
    """Windows of the given episodes of a dataset, with instructions untagged (and latent codes)."""
    ds = data.Dataset(path)
    images, tidx, states, actions, amask, codes, texts = [], [], [], [], [], [], {}
    for i in indices:
        ep = ds.episode(i)
        im, st, ac, am = episode_windows(ep, chunk, layout.action_chunk, image_size)
        images.append(im), states.append(st), actions.append(ac), amask.append(am)
        if with_codes:
            codes.append(window_codes(latent_codes(ds, i), len(im), chunk // layout.action_chunk))
        tidx.append(np.full(len(im), texts.setdefault(instruction(ep.task), len(texts))))
    if not images:
        s, a = len(layout.state_names), len(layout.action_names)
        return Windows(np.zeros((0, image_size, image_size, 3), np.uint8), np.zeros(0, int), [],
                       np.zeros((0, s), np.float32), np.zeros(0, np.float32), np.zeros((0, chunk, a), np.float32),
                       np.zeros((0, chunk), np.float32))
    states = np.concatenate(states)
    mask = np.full(len(states), 0.0 if mask_state else 1.0, np.float32)
    return Windows(np.concatenate(images), np.concatenate(tidx), list(texts), states * mask[:, None],
                   mask, np.concatenate(actions), np.concatenate(amask), np.concatenate(codes) if with_codes else None)


# --------------------------------------------------------------------------- text

@functools.lru_cache(maxsize=1)
def _text_encoder():
    # loaded once per process: evaluation workers embed one instruction per episode
    import warnings

    with warnings.catch_warnings():  # tqdm.auto's "IProgress not found" from every worker's import
        warnings.simplefilter("ignore")
        from transformers.utils import logging as hf_logging

        from dreamgen.world_model.text import load_text_encoder
    hf_logging.disable_progress_bar()  # one "Loading weights" bar per worker and arm is noise
    return load_text_encoder()


def embed_texts(texts: list[str], batch: int = 64) -> np.ndarray:
    """Mean-pooled MiniLM embedding of each instruction (N, 384), computed once per string."""
    from dreamgen.world_model.text import encode

    if not texts:
        return np.zeros((0, 384), np.float32)
    tok, model = _text_encoder()
    out = []
    for i in range(0, len(texts), batch):
        h = encode(tok, model, texts[i:i + batch], max_tokens=32)       # (b, L, D), zero past the end
        n = (h.abs().sum(-1) > 0).sum(1, keepdim=True).clamp(min=1)
        out.append((h.sum(1) / n).numpy())
    return np.concatenate(out).astype(np.float32)


# --------------------------------------------------------------------------- sampler

def obs_batch(images: np.ndarray, text: np.ndarray, states: np.ndarray, mask: np.ndarray,
              roles: np.ndarray | None = None, features: np.ndarray | None = None) -> dict:
    """Numpy observations -> the models' batch dict (see dreamgen.policy.models); roles (B, NC, 2)
    and cached backbone features (B, D) are what the "state" encoder reads."""
    batch = {"image": torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0,
             "text": torch.from_numpy(np.asarray(text, np.float32)),
             "state": torch.from_numpy(np.asarray(states, np.float32)),
             "state_mask": torch.from_numpy(np.asarray(mask, np.float32)).reshape(-1, 1)}
    if roles is not None:
        batch["roles"] = torch.from_numpy(np.asarray(roles, np.float32))
    if features is not None:
        batch["features"] = torch.from_numpy(np.asarray(features, np.float32))
    return batch


def window_batch(w: Windows, text: np.ndarray, idx: np.ndarray, roles: np.ndarray | None = None) -> dict:
    """The observation batch of windows `idx` of w (text: the embeddings of w.texts; roles:
    w.roles(), passed in by samplers that build many batches)."""
    roles = w.roles() if roles is None else roles
    return obs_batch(w.images[idx], text[w.text_index[idx]], w.states[idx], w.state_mask[idx],
                     roles[w.text_index[idx]], None if w.features is None else w.features[idx])


def augment_images(images: torch.Tensor, rng: np.random.Generator, shift: bool = True) -> torch.Tensor:
    """The IDM's random shift (1/16 of the size; unless shift is False) and colour jitter on single
    frames (B, 3, H, W). A shift moves the scene against the state's gripper position, so policies
    that read positions relative to the gripper (the "keypoints" encoder) train without it."""
    from dreamgen.actions.idm import augment

    pair = images[:, None].expand(-1, 2, -1, -1, -1)  # augment() takes frame pairs
    return augment(pair, rng, max_shift=max(1, images.shape[-1] // 16) if shift else 0)[:, 0]


def mix_sampler(real: Windows, neural: Windows | None, ratio: float, batch_size: int,
                real_text: np.ndarray, neural_text: np.ndarray | None, aug: bool = True, shift: bool = True):
    """sample(rng, step) -> batch for `dreamgen.training.train`: each element is neural with
    probability `ratio` (binomial count per batch, so the expected share is exactly `ratio`),
    else real. ratio 0 never touches the neural windows, 1 never the real ones. aug: colour
    jitter, and a random shift unless shift is False (see augment_images)."""
    check_ratio(ratio)
    if ratio > 0 and (neural is None or len(neural) == 0):
        raise PolicyError(f"ratio {ratio} asks for neural windows but there are none")
    if ratio < 1 and len(real) == 0:
        raise PolicyError(f"ratio {ratio} asks for real windows but there are none")
    sources = [(real, real_text, real.roles()), (neural, neural_text, None if neural is None else neural.roles())]
    cached = all(w is None or len(w) == 0 or w.features is not None for w, _, _ in sources) and \
        any(w is not None and w.features is not None for w, _, _ in sources)

    def sample(rng: np.random.Generator, step: int) -> dict:
        n_neural = int(rng.binomial(batch_size, ratio))
        parts = []
        for (w, emb, rl), n in zip(sources, (batch_size - n_neural, n_neural)):
            if n:
                idx = rng.integers(0, len(w), n)
                parts.append((w.images[idx], emb[w.text_index[idx]], w.states[idx], w.state_mask[idx],
                              w.actions[idx], w.action_mask[idx], rl[w.text_index[idx]],
                              w.features[idx] if cached else np.zeros((n, 0), np.float32)))
        im, tx, st, mk, ac, am, rl, ft = (np.concatenate(p) for p in zip(*parts))
        batch = obs_batch(im, tx, st, mk, rl, ft if cached else None)
        if aug:
            batch["image"] = augment_images(batch["image"], rng, shift)
        batch["actions"], batch["action_mask"] = torch.from_numpy(ac), torch.from_numpy(am)
        batch["neural"] = torch.tensor([0] * (batch_size - n_neural) + [1] * n_neural)
        return batch

    return sample


def latent_sampler(neural: Windows, batch_size: int, text: np.ndarray, aug: bool = True, shift: bool = True):
    """sample(rng, step) -> batch of neural observations and their latent codes (B, chunk / k),
    for pretraining on the latent-action path."""
    if neural is None or neural.codes is None or not (neural.codes >= 0).any():
        raise PolicyError("latent pretraining needs neural windows with latent codes")
    roles = neural.roles()

    def sample(rng: np.random.Generator, step: int) -> dict:
        idx = rng.integers(0, len(neural), batch_size)
        batch = window_batch(neural, text, idx, roles)
        if aug:
            batch["image"] = augment_images(batch["image"], rng, shift)
        batch["latent"] = torch.from_numpy(neural.codes[idx])
        return batch

    return sample
