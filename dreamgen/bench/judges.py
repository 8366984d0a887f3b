"""Training the mini judges and judging one clip.

`Judges` bundles the state estimator (IF by the success predicate, PA by the physics rules),
the clip-instruction classifier (on the estimator's state trajectory) and the calibrated PA
thresholds; `Judges.judge` returns every score of each clip. Samplers draw training batches from simulator-labelled episodes
(`simulate.LabelledEpisode`) in the shape `dreamgen.training.train` expects.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dreamgen.training import TrainConfig, TrainResult, train

from . import nets, physics, state
from .simulate import LabelledEpisode, clip_indices

TEXT_TOKENS = 24  # the longest template fits; MiniLM's sentence vector is the mean over them


def fresh_ckpt(folder, config: dict) -> Path:
    """A checkpoint folder that resumes only a run of the same configuration (else starts clean)."""
    folder = Path(folder)
    tag = folder / "run_config.json"
    if folder.exists() and (not tag.exists() or json.loads(tag.read_text()) != config):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tag.write_text(json.dumps(config, sort_keys=True))
    return folder


class TextEmbedder:
    """Instruction -> (384,) mean-pooled all-MiniLM-L6-v2 sentence vector, cached per string."""

    def __init__(self):
        from dreamgen.world_model.text import load_text_encoder

        self.tokenizer, self.model = load_text_encoder()
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts) -> np.ndarray:
        from dreamgen.world_model.text import encode

        new = sorted({t for t in texts if t not in self.cache})
        for i in range(0, len(new), 64):
            h = encode(self.tokenizer, self.model, new[i:i + 64], TEXT_TOKENS)
            n = (h.abs().sum(-1) > 0).sum(1, keepdim=True).clamp(min=1)
            for t, v in zip(new[i:i + 64], (h.sum(1) / n).numpy()):
                self.cache[t] = v.astype(np.float32)
        return np.stack([self.cache[t] for t in texts])


# -- the state estimator -----------------------------------------------------------------
def frame_pool(episodes: list[LabelledEpisode]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All frames (N, S, S, 3) with their states and masks (N, D)."""
    return (np.concatenate([e.frames for e in episodes]), np.concatenate([e.states for e in episodes]),
            np.concatenate([e.masks for e in episodes]))


def augment(x: torch.Tensor, rng: np.random.Generator, noise: float = 0.03, gain: float = 0.08) -> torch.Tensor:
    """Per-image brightness/colour gain and pixel noise on (B, [T,] 3, S, S) in [0, 1].

    Dreamed frames are blurrier and noisier than rendered ones; this keeps the judges from
    relying on exact pixel values. Geometry is left alone: positions are the labels.
    """
    shape = (x.shape[0],) + (1,) * (x.ndim - 4) + (3, 1, 1)
    g = torch.from_numpy(rng.uniform(1 - gain, 1 + gain, shape).astype(np.float32))
    n = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32)) * noise
    return (x * g + n).clamp(0, 1)


def estimator_sampler(frames: np.ndarray, states: np.ndarray, masks: np.ndarray, batch_size: int):
    def sample(rng: np.random.Generator, step: int) -> dict:
        i = rng.integers(len(frames), size=batch_size)
        return dict(frames=augment(nets.to_tensor(frames[i]), rng), states=torch.from_numpy(states[i]),
                    masks=torch.from_numpy(masks[i]))
    return sample


# -- the clip-instruction classifier -------------------------------------------------------
def _starts(ep: LabelledEpisode, num_frames: int, stride: int) -> tuple[list[int], list[int]]:
    """Clip starts (within the episode) whose last frame shows success / does not."""
    last = max(0, len(ep) - 1 - (num_frames - 1) * stride)
    starts = range(0, last + 1)
    done = [s for s in starts if ep.success[clip_indices(len(ep), num_frames, stride, s)[-1]]]
    return done, [s for s in starts if s not in done]


def classifier_sampler(episodes: list[LabelledEpisode], estimates: list[np.ndarray], text: TextEmbedder,
                       batch_size: int, num_frames: int, stride: int, noise: float = 0.02):
    """Balanced batches of estimated-state clips: half end in success with their own instruction
    (label 1); half label 0, either the clip stops short of success or another episode's
    instruction is asked.

    estimates: per episode, the frozen estimator's states (len(episode), D) of its frames.
    noise: Gaussian noise (state units) on the estimates; the estimator is more exact on its
    own training frames than on new videos, and the classifier should not count on that.
    """
    starts = [_starts(e, num_frames, stride) for e in episodes]
    tasks = [e.task for e in episodes]
    text(tasks)
    slots = nets.colour_slots(tasks)
    pos = [i for i, (d, _) in enumerate(starts) if d]
    short = [i for i, (_, n) in enumerate(starts) if n]
    if not pos:
        raise ValueError("classifier_sampler: no episode reaches success within a clip; simulate more episodes")
    by_b: dict[str, list[int]] = {}
    for i, e in enumerate(episodes):
        by_b.setdefault(e.job.behaviour, []).append(i)

    def sample(rng: np.random.Generator, step: int) -> dict:
        clips, asked, labels = [], [], []
        for k in range(batch_size):
            mode = rng.integers(4) if k % 2 else -1
            if mode == -1 or (mode == 0 and not short):
                i = pos[rng.integers(len(pos))]
                s, j, y = starts[i][0][rng.integers(len(starts[i][0]))], i, 1.0
            elif mode == 0:
                i = short[rng.integers(len(short))]
                s, j, y = starts[i][1][rng.integers(len(starts[i][1]))], i, 0.0
            else:  # a done clip with another instruction: same behaviour (colours differ) or any other
                i = pos[rng.integers(len(pos))]
                s = starts[i][0][rng.integers(len(starts[i][0]))]
                pool = by_b[episodes[i].job.behaviour] if mode == 1 else range(len(episodes))
                j = pool[rng.integers(len(pool))]
                y = float(tasks[j] == tasks[i])
            clips.append(estimates[i][clip_indices(len(episodes[i]), num_frames, stride, s)])
            asked.append(j)
            labels.append(y)
        x = np.stack(clips) + noise * rng.standard_normal((batch_size, num_frames, state.DIM)).astype(np.float32)
        return dict(states=torch.from_numpy(x), slots=torch.from_numpy(slots[asked]),
                    text=torch.from_numpy(text([tasks[j] for j in asked])), labels=torch.tensor(labels))
    return sample


# -- the pixel success judge ---------------------------------------------------------------
def success_sampler(episodes: list[LabelledEpisode], batch_size: int, swap_share: float = 0.25):
    """Balanced batches of (an episode's first frame, one of its frames) with the simulator's
    success flag there: half successes, the rest frames before success or (`swap_share` of the
    batch) a success asked with another behaviour's instruction (label 0)."""
    from dreamgen.world.behaviours import BEHAVIOURS

    done = [np.flatnonzero(e.success) for e in episodes]
    notyet = [np.flatnonzero(~e.success) for e in episodes]
    pos = [i for i, d in enumerate(done) if len(d)]
    neg = [i for i, d in enumerate(notyet) if len(d)]
    if not pos or not neg:
        raise ValueError("success_sampler: needs episodes that reach success and frames before it")
    beh = np.array([BEHAVIOURS.index(e.job.behaviour) for e in episodes])
    slots = nets.colour_slots([e.task for e in episodes])
    n_swap = int(round(swap_share * batch_size))

    def sample(rng: np.random.Generator, step: int) -> dict:
        first, last, asked, labels = [], [], [], []
        for k in range(batch_size):
            if k < batch_size // 2 or k >= batch_size - n_swap:
                i = pos[rng.integers(len(pos))]
                t, j, y = done[i][rng.integers(len(done[i]))], i, 1.0
                if k >= batch_size - n_swap:
                    other = np.flatnonzero(beh != beh[i])
                    j, y = int(other[rng.integers(len(other))]), 0.0
            else:
                i = neg[rng.integers(len(neg))]
                t, j, y = notyet[i][rng.integers(len(notyet[i]))], i, 0.0
            first.append(episodes[i].frames[0]), last.append(episodes[i].frames[t]), asked.append(j), labels.append(y)
        a = augment(nets.to_tensor(np.stack([np.stack(first), np.stack(last)], 1)), rng)  # one gain per pair
        return dict(first=a[:, 0], last=a[:, 1], slots=torch.from_numpy(slots[asked]),
                    behaviour=torch.from_numpy(beh[asked]), labels=torch.tensor(labels))
    return sample


# -- training ------------------------------------------------------------------------------
def fit(model: torch.nn.Module, sample, train_cfg: TrainConfig, ckpt_dir, desc: str) -> TrainResult:
    """Train with the project's loop, resuming only a checkpoint of this exact configuration."""
    # identity(), not every field: raising `steps` of a constant-rate run continues its checkpoint
    folder = fresh_ckpt(ckpt_dir, dict(model=asdict(model.cfg), train=train_cfg.identity()))
    return train(model, sample, train_cfg, folder, desc=desc)


# -- the IF rule's tolerance ---------------------------------------------------------------
SLACKS = tuple(np.arange(0.0, 6.01, 0.5))  # world units tried (a pixel at 32x32 is about 3)


def calibrate_slack(states: np.ndarray, rows: list[dict], slacks=SLACKS) -> tuple[float, dict]:
    """The zone slack (see state.instruction_success) under which the predicates on estimated
    states agree best with the truth of held-out calibration clips: balanced accuracy over
    behaviours, the smallest slack on ties. states: (N, T, D) estimates of the N clips in rows.

    Returns (slack, {slack: balanced accuracy}).
    """
    truth = np.array([r["if_truth"] > 0.5 for r in rows])
    beh = np.array([r["behaviour"] for r in rows])
    scores = {}
    for sl in slacks:
        pred = np.array([state.instruction_success(r["behaviour"], r["instruction"], states[k][0], states[k][-1], sl)
                         for k, r in enumerate(rows)])
        per = [np.mean([(pred[(beh == b) & (truth == c)] == c).mean() for c in (True, False)
                        if ((beh == b) & (truth == c)).any()]) for b in np.unique(beh)]
        scores[float(sl)] = float(np.mean(per))
    best = max(scores.values())
    return min(k for k, v in scores.items() if v >= best - 1e-12), scores


# -- judging -------------------------------------------------------------------------------
@dataclass
class Judges:
    estimator: nets.StateEstimator
    classifier: nets.StateClassifier | None
    thresholds: physics.Thresholds
    text: TextEmbedder | None = None
    if_slack: float = 0.0  # world units the IF predicates' zones are widened by (calibrate_slack)
    success: nets.SuccessNet | None = None  # the pixel IF judge (first and last frame)

    @property
    def image_size(self) -> int:
        return self.estimator.cfg.image_size

    def save(self, folder) -> Path:
        folder = Path(folder)
        nets.save(self.estimator, folder / "estimator")
        if self.classifier is not None:
            nets.save(self.classifier, folder / "classifier")
        if self.success is not None:
            nets.save(self.success, folder / "success")
        (folder / "pa_thresholds.json").write_text(json.dumps(self.thresholds.to_dict(), indent=1))
        (folder / "if_rule.json").write_text(json.dumps(dict(slack=self.if_slack), indent=1))
        return folder

    @classmethod
    def load(cls, folder) -> "Judges":
        folder = Path(folder)
        clf = nets.load(folder / "classifier") if (folder / "classifier").exists() else None
        thr = physics.Thresholds(**json.loads((folder / "pa_thresholds.json").read_text()))
        rule = folder / "if_rule.json"
        slack = json.loads(rule.read_text())["slack"] if rule.exists() else 0.0
        succ = nets.load(folder / "success") if (folder / "success").exists() else None
        return cls(nets.load(folder / "estimator"), clf, thr, TextEmbedder() if clf is not None else None, slack, succ)

    def judge(self, clips: np.ndarray, behaviours: list[str], instructions: list[str]) -> list[dict]:
        """clips uint8 (N, T, S, S, 3) -> per clip: if_state (0/1), if_classifier and if_success
        (probabilities; NaN without that judge; if_success is 0 where a colour the instruction names
        shows nowhere in the clip, if_grounded 0), pa (fraction of clean transitions) and the number
        of transitions each PA rule flagged."""
        nets.check_frames(clips, self.image_size)
        if clips.ndim != 5 or clips.shape[1] < 2:
            raise ValueError(f"clips must be (N, T >= 2, S, S, 3), got {clips.shape}")
        n, t = clips.shape[:2]
        est = self.estimator.estimate(clips.reshape(n * t, *clips.shape[2:])).reshape(n, t, -1)
        probs = (self.classifier.prob(est, instructions, self.text(instructions)) if self.classifier is not None
                 else np.full(n, np.nan))
        if self.success is not None:
            from dreamgen.world.behaviours import BEHAVIOURS

            unknown = sorted(set(behaviours) - set(BEHAVIOURS))
            if unknown:
                raise ValueError(f"unknown behaviours {unknown}; valid: {BEHAVIOURS}")
            done_p = self.success.prob(clips[:, 0], clips[:, -1], instructions, [BEHAVIOURS.index(b) for b in behaviours])
            grounded = nets.named_colours_seen(clips, instructions)
            done_p = done_p * grounded  # nothing of a named colour in the clip: not done, whatever the net says
        else:
            done_p, grounded = np.full(n, np.nan), np.ones(n, bool)
        rows = []
        for k in range(n):
            pa, v = physics.physics_alignment(est[k], self.thresholds)
            done = state.instruction_success(behaviours[k], instructions[k], est[k][0], est[k][-1], self.if_slack)
            rows.append(dict(if_state=float(done),
                             if_classifier=float(probs[k]), if_success=float(done_p[k]), if_grounded=float(grounded[k]), pa=pa,
                             **{f"pa_{r}": int(v[:, j].sum()) for j, r in enumerate(physics.RULES)}))
        return rows
