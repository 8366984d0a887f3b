"""Probe: can this world model draw the robot arm at all, and where is the arm decided?

    .venv/bin/python benchmarks/probe_memorise_robot.py [--clips 4] [--steps 1500] [--every 500]
        [--lr 5e-4] [--start full|base | --weights X.safetensors] [--data clips|train] [--episodes held-out|train]
        [--from-truth T0 ...] [--truth-steps N] [--truth-guidance G]
        [--png P] [--truth-png P] [--recovery-png P] [--json J] [--npz Z] [--ckpt DIR] [--threads 2]

Notebook 04 ("Why the robot dissolves") and the GPU runs (README) find the robot's arm absent
from dreams of *held-out* pick-and-place episodes, at every training length tried. That leaves
two readings: the model cannot *draw* a moving arm at all (the representation: pixels at 32x32,
4x4 patches, the x0 objective, the sampler), or it has not learnt to *place* it (prediction).

**Memorise** (`--data clips`, the default): take `--clips` held-out episodes of
`robot_pickplace_env0`, cut each to its first clip's span, and keep training the model on those
clips alone, so that where the arm goes is known to the model. Every `--every` steps it dreams
them from their first frame and instruction with the finetune stage's seeds, guidance and Euler
steps (never the noise it trained on).

**Predict** (`--data train --clips 10`): the stage's evaluation, the 10 held-out clips dreamed by
the start model (`--steps 0`) or after more training on the stage's training episodes.
`--weights` starts from a denoiser returned by gpu_world_model_scale.py instead.

`--episodes train` dreams the first clips of the stage's *training* episodes instead: does the
model draw the arm on clips it was fine-tuned on?

**Where the arm is decided**: `--from-truth` dreams start from the *true* clip noised to flow time
t0 and follow the model's flow down (uniform Euler steps, classifier-free guidance). Below the
noise level where the arm is decided the model keeps the arm it is handed; above it, the model
must place the arm itself. The printed "clean-estimate MSE" is the same question in one step:
how much of the moving pixels the model's clean estimate restores from the true clip noised to t.

Scores (all against the real clips): MAE (0-255) over frames 1.. as the stage's quality table
counts it and over the pixels that move in the real clip (model.MOVING); look consistency; and
"frames in place", the fraction of dreamed frames whose nearest real frame (MAE) is their own
(1 for a dream that keeps time; 0 for copying the first frame). Nothing in data/ changes.

Measured on 2 cores (reports/probes/*.json and *.png):
- Memorising 4 clips, 1,500 steps from the stage's full fine-tune (lr 5e-4, 11 minutes): MAE
  6.40 -> 3.43 / 2.04 / 1.39 at 500 / 1,000 / 1,500 steps (copy first frame 5.66), frames in place
  0.00 -> 0.68 / 1.00 / 1.00; the dreams show the silver links, the dark gripper and the carried
  cube where the real clips have them. The model and its sampler can draw the arm.
- Memorising more clips for the same 1,500 steps (`--episodes train`, first clips of the stage's
  training episodes): 16 clips MAE 3.10 (copy 5.79), frames in place 0.88; 64 clips MAE 5.14
  (copy 5.64), 0.28. Each clip must be seen hundreds of times before its arm is drawn.
- On the first clips of 10 of its own training episodes (`--episodes train --data train
  --steps 0`), the stage's full fine-tune keeps time in 0.01 of the frames, as on held-out ones
  (0.01): at 600 x 8 clips it has not fitted the arm's motion even where it was trained. GPU run
  E: 0.49 on training clips, 0.26 on held-out ones.
- Predicting the 10 held-out clips, from the true clip noised to t0 = 0.2 / 0.3 / 0.5 / 0.7 / 1
  (the stage's 8 steps, guidance 3): the stage's full fine-tune MAE 3.49 / 4.37 / 5.78 / 6.59 /
  7.17, frames in place 1.00 / 0.97 / 0.71 / 0.10 / 0.00; GPU run E (README) 1.97 / 2.39 / 3.63 /
  4.69 / 5.43 and 1.00 / 0.97 / 0.87 / 0.50 / 0.30 (copy first frame 5.55). From pure noise no
  sampler moves E: 8 steps with guidance 1, 3 or 6, 32 with 1 or 3, 64 with 3: frames in place 0.29-0.31.
So the arm is decided between t = 0.5 and 0.7 (handed the clip noised to 0.5, E keeps the gripper
and the cube in place, the links faint; at 0.2 whole), and there the models predict an average
of the arm's positions, which for silver links on a light table is nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from dreamgen import report  # noqa: E402
from dreamgen import world_model as wm  # noqa: E402
from dreamgen.params import load_params, stage_section, validate  # noqa: E402
from dreamgen.training import TrainConfig  # noqa: E402
from dreamgen.world_model import variants  # noqa: E402
from dreamgen.world_model.model import MOVING, FlowMatchingVideoModel  # noqa: E402
from gpu_world_model_scale import moving_target, pipe_with_weights, x0_estimate  # noqa: E402  (this folder's)

EXPERIMENT = "pickplace_env0"
RECOVERY_TS = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
DATASET = "robot_pickplace_env0"


def moving_mae(pred: np.ndarray, real: np.ndarray) -> float:
    """MAE (0-255) over the pixels of frames 1.. that differ from the first real frame by more than MOVING."""
    r = real.astype(np.float32)
    moving = np.abs(r[:, 1:] - r[:, :1]).max(-1) > MOVING * 127.5  # (N, T-1, S, S)
    err = np.abs(pred[:, 1:].astype(np.float32) - r[:, 1:]).mean(-1)
    return float(err[moving].mean())


def frames_in_place(pred: np.ndarray, real: np.ndarray) -> float:
    """Fraction of dreamed frames 1.. whose nearest real frame of the same clip (MAE) is their own one:
    1 for a dream that keeps time, low for one that jumps ahead to the end state and stays there."""
    hits = []
    for p, r in zip(pred.astype(np.float32), real.astype(np.float32)):
        d = np.abs(p[1:, None] - r[None]).mean(axis=(2, 3, 4))  # (T-1, T): dreamed frame k vs real frame j
        own = d[np.arange(len(d)), np.arange(1, len(r))]
        hits.append(own <= d.min(axis=1) + 1e-6)
    return float(np.mean(hits))


def _frames(pipe, est: torch.Tensor, first: torch.Tensor) -> np.ndarray:
    return pipe.decode_latents(est + first[:, :, None] if pipe.config.residual else est)


@torch.no_grad()
def recovery(pipe, real: np.ndarray, tasks: list[str], ts: list[float], seed: int) -> tuple[dict, np.ndarray]:
    """How much of the true clip the model's clean estimate restores from the true clip noised to flow time t.

    x_t = (1 - t) x0 + t eps with x0 the real clip (residual from its first frame, as trained); the
    conditional estimate x0_hat = x_t - t v. Returns {t: MSE on the moving pixels of frames 1..,
    in [-1, 1] units}, and 'nothing moves' under key 0.0 (the MSE of predicting no change). Small t
    asks whether the model can *finish* an arm it is shown; t = 1 whether it can *place* one.
    Also the estimates as frames (len(ts), N, T, S, S, 3) uint8.
    """
    _, x0, moving = moving_target(pipe, real)
    out, frames = {0.0: float((x0[moving] ** 2).mean())}, []  # the error of predicting that nothing moves
    for t in ts:
        est, x0, moving, first = x0_estimate(pipe, real, tasks, t, seed)
        out[float(t)] = float(((est - x0)[moving] ** 2).mean())
        frames.append(_frames(pipe, est, first))
    return out, np.stack(frames)


@torch.no_grad()
def from_noised_truth(pipe, real: np.ndarray, tasks: list[str], t0: float, steps: int, guidance: float,
                      seed: int) -> np.ndarray:
    """Dreams (N, T, S, S, 3) uint8 that start from the true clip noised to flow time t0 (SDEdit) and follow
    the model's flow to 0 in `steps` uniform Euler steps with classifier-free guidance. Sweeping t0
    finds where the arm is decided: below that noise level the model keeps the arm it is handed."""
    first, x0, _ = moving_target(pipe, real)
    net = FlowMatchingVideoModel(pipe.transformer, residual=pipe.config.residual, prediction=pipe.config.prediction)
    text = pipe.encode_prompt(tasks)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    first2, text2 = torch.cat([first, first]), torch.cat([text, torch.zeros_like(text)])
    lat = (1 - t0) * x0 + t0 * eps
    ts = np.linspace(t0, 0, steps + 1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        tt = torch.full((2 * len(x0),), float(t))
        v_c, v_u = net.velocity(torch.cat([lat, lat]), first2, tt, text2).chunk(2)
        lat = lat + (t_next - t) * (v_u + guidance * (v_c - v_u))
    out = _frames(pipe, lat, first)
    out[:, 0] = real[:, 0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=4, help="episodes (of --episodes) whose first clips are dreamed")
    ap.add_argument("--episodes", choices=("held-out", "train"), default="held-out",
                    help="whose first clips are dreamed: held-out episodes, or the stage's training episodes")
    ap.add_argument("--data", choices=("clips", "train"), default="clips",
                    help="train on the dreamed clips themselves (memorise) or on the stage's training episodes")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--start", choices=("full", "base"), default="full",
                    help="the stage's full fine-tune of pick-and-place, or the web-only base")
    ap.add_argument("--weights", default=None,
                    help="start instead from a denoiser returned by gpu_world_model_scale.py (X.safetensors)")
    ap.add_argument("--every", type=int, default=500, help="dream the clips every this many steps")
    ap.add_argument("--png", default=None)
    ap.add_argument("--from-truth", type=float, nargs="*", default=[],
                    help="flow times t0 to dream from the true clip noised to t0 (with the final model)")
    ap.add_argument("--truth-steps", type=int, default=None, help="Euler steps of those dreams (default: the stage's)")
    ap.add_argument("--truth-guidance", type=float, default=None, help="their guidance (default: the stage's)")
    ap.add_argument("--truth-png", default=None, help="write, for the first two clips, the --from-truth dreams")
    ap.add_argument("--recovery-png", default=None,
                    help="write, for the first two clips, the clean estimates from the noised true clip at each t")
    ap.add_argument("--npz", default=None, help="write the real clips and every snapshot's dreams here")
    ap.add_argument("--json", default=None)
    ap.add_argument("--ckpt", default=None, help="checkpoint folder (default: a fresh temporary one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    if args.clips < 1 or args.steps < 0 or args.every < 1:
        raise SystemExit("--clips and --every must be >= 1, --steps >= 0 (0: measure the start model only)")
    if not all(0.0 <= t <= 1.0 for t in args.from_truth):
        raise SystemExit(f"--from-truth: flow times must lie in [0, 1], got {args.from_truth}")
    torch.set_num_threads(args.threads)
    ft = validate("finetune_world_model", stage_section(load_params(args.params), "finetune_world_model",
                                                        args.params))
    path = next((p for p in ft.dataset_paths if p.rstrip("/").endswith(DATASET)), None)
    if path is None:
        raise SystemExit(f"finetune_world_model.dataset_paths has no {DATASET}; this probe needs it")
    if args.weights:
        pipe, info = pipe_with_weights(ft.base_dir, args.weights), dict(kind="gpu run", variant_dir=args.weights)
    else:
        variant = None if args.start == "base" else f"{ft.out_dir}/{EXPERIMENT}/full"
        pipe, info = variants.load_variant(ft.base_dir, variant)
    cs = pipe.clip_spec
    from dreamgen.data import Dataset
    train_idx, held_idx = wm.split_holdout(Dataset(path).num_episodes, ft.holdout_every)
    chosen = held_idx if args.episodes == "held-out" else train_idx
    held = wm.load_bank(path, cs, episodes=[int(i) for i in chosen[:args.clips]], desc=f"{args.episodes} episodes")
    real = np.stack([held.clip(i) for i in range(len(held))])
    if args.data == "clips":  # each episode cut to its first clip's span: that clip and nothing else
        bank = wm.ClipBank(cs, [ep[:cs.span + 1] for ep in held.episodes], list(held.tasks), list(held.meta))
        assert all(np.array_equal(bank.clip(i), real[i]) and bank.max_start(i) == 0 for i in range(len(bank)))
    else:  # the finetune stage's training episodes, whole: the dreams of `real` are then predictions
        bank = wm.load_bank(path, cs, episodes=[int(i) for i in train_idx], desc="training episodes")
    seeds = [ft.seed + 7000 + i for i in range(len(real))]  # the finetune stage's evaluation seeds

    def snapshot(step: int) -> np.ndarray:
        return wm.dream(pipe, real[:, 0], list(held.tasks), seeds, ft.guidance_scale, ft.inference_steps)

    copy = wm.copy_first(real)
    rec, est = {}, {}
    rec["start"], est["start"] = recovery(pipe, real, list(held.tasks), RECOVERY_TS, ft.seed)
    snaps = {0: snapshot(0)}
    print(f"start: {info['kind']} ({info.get('variant_dir') or info['base_dir']}), {len(real)} clips", flush=True)
    loss, t0 = {}, time.time()
    if args.steps:
        cfg = TrainConfig(steps=args.steps, lr=args.lr, seed=ft.seed, ckpt_every=args.every,
                          log_every=max(1, args.every // 5))
        res, more = wm.fit(pipe, bank, cfg, args.ckpt or tempfile.mkdtemp(prefix="probe_memorise_robot_"),
                           batch_size=ft.batch_size, p_drop_text=ft.p_drop_text, sample_every=args.every,
                           snapshot=snapshot, desc="memorise" if args.data == "clips" else "train")
        snaps |= more | {args.steps: snapshot(args.steps)}
        loss = {int(h["step"]): float(h["loss"]) for h in res.history}
        print(f"{res.steps_done - res.resumed_from} steps in {time.time() - t0:.0f} s")
    rows = []
    print(f"copy first frame: MAE {np.abs(copy[:, 1:].astype(np.float32) - real[:, 1:]).mean():.2f}, "
          f"moving-pixel MAE {moving_mae(copy, real):.2f}")
    for step in sorted(snaps):
        near = min(loss, key=lambda s: abs(s - step)) if loss and step else None
        rows.append(dict(step=step, loss=loss.get(near), **_scores(snaps[step], real, copy)))
        r = rows[-1]
        print(f"step {step:5d}: loss {r['loss'] if r['loss'] is not None else float('nan'):.4f}  MAE {r['mae']:.2f}  "
              f"moving-pixel MAE {r['mae_moving']:.2f}  look {r['look']:.3f}  frames in place {r['in_place']:.2f}",
              flush=True)
    if args.steps:
        rec["end"], est["end"] = recovery(pipe, real, list(held.tasks), RECOVERY_TS, ft.seed)
    print("clean-estimate MSE on moving pixels from the true clip noised to t (nothing moves: "
          f"{rec['start'][0.0]:.3f}):")
    for when, r in rec.items():
        print(f"  {when:5s} " + "  ".join(f"t={t:g}: {r[t]:.3f}" for t in RECOVERY_TS))
    truth, truth_rows = {}, []
    for t0 in args.from_truth:
        d = from_noised_truth(pipe, real, list(held.tasks), t0, args.truth_steps or ft.inference_steps,
                              ft.guidance_scale if args.truth_guidance is None else args.truth_guidance, ft.seed)
        truth[t0] = _scores(d, real, copy)
        truth_rows.append(d[:2])
        r = truth[t0]
        print(f"from the true clip noised to t0 = {t0:g}: MAE {r['mae']:.2f}  moving-pixel MAE {r['mae_moving']:.2f}  "
              f"look {r['look']:.3f}  frames in place {r['in_place']:.2f}")
    if args.truth_png and truth_rows:  # per clip: the real clip, then the dream from each t0
        grid = np.concatenate([np.concatenate([real[i:i + 1]] + [r[i:i + 1] for r in truth_rows])
                               for i in range(min(2, len(real)))])
        print("wrote", report.save_png(report.upscale(report.tile(grid.reshape(-1, *real.shape[2:]),
                                                                   cols=cs.num_frames), 3), args.truth_png))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(start=info["kind"], data=args.data, episodes=args.episodes, clips=len(real),
                           lr=args.lr, tasks=list(held.tasks), rows=rows,
                           recovery={w: {str(t): v for t, v in r.items()} for w, r in rec.items()},
                           from_truth={str(t): v for t, v in truth.items()}), f,
                      indent=1)
    if args.recovery_png:  # per model state and clip (the first two): the real clip, then the estimate at each t
        k = min(2, len(real))
        grid = np.concatenate([np.concatenate([real[i:i + 1], e[:, i]]) for e in est.values() for i in range(k)])
        print("wrote", report.save_png(report.upscale(report.tile(grid.reshape(-1, *real.shape[2:]),
                                                                   cols=cs.num_frames), 3), args.recovery_png))
    if args.npz:
        np.savez_compressed(args.npz, real=real, **{f"step{s}": snaps[s] for s in sorted(snaps)})
    if args.png:
        panels = [real] + [snaps[s] for s in sorted(snaps)]
        grid = np.stack(panels, axis=1).reshape(-1, *real.shape[2:])  # per clip: real, then each snapshot from 0
        print("wrote", report.save_png(report.upscale(report.tile(grid, cols=cs.num_frames), 3), args.png))


def _scores(dreams: np.ndarray, real: np.ndarray, copy: np.ndarray) -> dict:
    """MAE over frames 1.. (the first is given), as the finetune stage's quality table counts it."""
    return dict(mae=float(np.abs(dreams[:, 1:].astype(np.float32) - real[:, 1:]).mean()),
                mae_copy=float(np.abs(copy[:, 1:].astype(np.float32) - real[:, 1:]).mean()),
                mae_moving=moving_mae(dreams, real), mae_moving_copy=moving_mae(copy, real),
                look=float(wm.evaluate.look_consistency(dreams, real).mean()), in_place=frames_in_place(dreams, real))


if __name__ == "__main__":
    main()
