"""Device probe: does the robot appear in dreamed pick-and-place clips when the world model trains at GPU scale?

    .venv/bin/python benchmarks/gpu_world_model_scale.py prepare [--pack .gpu/wmscale]
    python benchmarks/gpu_world_model_scale.py run --pack .gpu/wmscale --out DIR [--seconds 330] [--only A B]
    .venv/bin/python benchmarks/gpu_world_model_scale.py show --results DIR [--png-dir DIR]
    .venv/bin/python benchmarks/gpu_world_model_scale.py analyse --results DIR [DIR ...] [--json F] [--png F]
    .venv/bin/python benchmarks/gpu_world_model_scale.py transfer --results DIR [DIR ...] [--runs A:pickplace_env0 ...]

On 2 CPU cores every lever tried (guidance, Euler steps, stochastic sampling, 4x longer fine-tuning,
2.3x longer pretraining, a high-contrast arm) left the robot arm undrawn in dreams of held-out
pick-and-place episodes (notebook 04, "Why the robot dissolves"). The lever left is scale. This
runs, side by side on one GPU, time-boxed, runs that each train far more clips than the CPU
budget allows and dream the 10 held-out pick-and-place episodes (the finetune stage's split,
seeds, guidance and Euler steps) every `--snap-every` steps:

  A  the default base (web-pretrained on CPU) fully fine-tuned on pick-and-place in env 0 (90 demos)
  B  the same base fully fine-tuned on all robot data (co-training set + those 90 demos)
  C  a larger denoiser (width 256, 6 blocks, 5.5x the parameters) trained from scratch on all robot data
  D  the default size trained from scratch on all robot data (C's control for size, A/B's for web)
  E  B continued: its pack is prepared with `--continue-from B.safetensors` (a second device call)
  P  D with 2x2-pixel patches instead of 4x4 (4x the tokens): can finer tokens draw the thin arm?

`prepare` runs here, after `dvc repro` of the finetune stage's inputs: it writes a small pack
(clip banks at the model's size, the base denoiser, the instruction embeddings of every task,
so the GPU machine needs neither the datasets' videos nor the 87 MB text encoder). `run` spawns
one process per run; each writes DIR/<run>.npz (metrics per snapshot, held-out dreams per
snapshot, the final denoising trajectory) and DIR/<run>.safetensors (final denoiser weights of
A, B, C, E and P, C in fp16) as it goes, so a run cut short still leaves its snapshots. `show`
prints the tables; `analyse` (here, on the returned folders) dreams with every returned
denoiser and the stage's own models under two samplers (MAE, FD-IDM with the stage's IDM,
motion), measures the clean-clip estimate on moving pixels at flow times 1, 0.5 and 0.1, and
writes a JSON and a labelled figure.
`--device cpu` with tiny `--seconds` is a dry run.

Measured on one H200 (2026-11-30; reports/device/gpu_world_model_scale_h200.json and .png):
A-D side by side for 6 minutes, then E and P for 4. Batches are cut on the CPU, which bounds
the speed: about 8.4 steps/s per default-size run at batch 64 (C: 4.6), so a run sees
192,000 clips, 40x the finetune stage's 600 x 8. Held-out MAE with the stage's sampler (copy
first frame 5.55): stage full fine-tune 6.09, A 5.74, B 5.65, E 5.33, D 6.47, C 8.09 (1,750
steps), P 7.55 (1,000 steps); with 32 uniform Euler steps and no guidance A 4.89 and E 4.95
(the stage's full fine-tune gets worse there, 7.59). FD-IDM with the stage's sampler: A 11.3, E 12.2,
stage full fine-tune 24.2, copy first frame 30.5. The change lands where the real one does in
9 of 10 clips for A, B and E (chance 0.1-0.4; stage 0.6, chance 0.7). The clean estimate from
pure noise, on moving pixels: MSE 0.107 (A), 0.097 (E) against 0.139 for the stage's full
fine-tune and 0.226 for "nothing moves". In the dreams the cube now travels to the right
bowl and the gripper shows as dark marks, but the silver links stay absent or faint and the
carried cube smears: better, not yet a robot that looks right.

`transfer` (here) runs the dream stage's protocol (its cells, resets, seeds, sampler and two
chained clips) with returned denoisers, beside the stage's LoRA figures: motion hits 0.93 for
E's 200 seen dreams and 0.82 for A's 45 new-behaviour dreams (chance 0.40 / 0.42; the stage
0.55 / 0.51), but A's pick-and-place dreams degenerate in their second clip (MAE 19.34) and
unseen environments fill with speckle (E: MAE 17.68 vs the stage's 11.78).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the dreamgen package, without installing it

RUNS = {
    "A": dict(init="base", data=["pickplace"], lr=2e-4),
    "B": dict(init="base", data=["pickplace", "cotrain"], lr=2e-4),
    "C": dict(init="scratch", data=["pickplace", "cotrain"], lr=3e-4, width=256, heads=8, layers=6, fp16_out=True),
    "D": dict(init="scratch", data=["pickplace", "cotrain"], lr=5e-4, keep_weights=False),
    # second device call: the pack prepared with --continue-from B.safetensors
    "E": dict(init="base", data=["pickplace", "cotrain"], lr=2e-4),
    "P": dict(init="scratch", data=["pickplace", "cotrain"], lr=5e-4, patch=2),
}
PICKPLACE = "data/datasets/robot_pickplace_env0"
COTRAIN = "data/datasets/robot_cotrain"


class TimeUp(Exception):
    """The run's time box is spent; raised after a snapshot is written."""


# ---- prepare (here, with the pipeline's outputs) ---------------------------------------------
def prepare(args) -> None:
    import shutil

    from dreamgen.params import load_params, stage_section, validate
    from dreamgen import world_model as wm

    ft = validate("finetune_world_model", stage_section(load_params(args.params), "finetune_world_model", args.params))
    pipe = wm.load_pipeline(ft.base_dir)
    if args.continue_from:  # e.g. a run's final weights, so a later device call trains on from them
        from safetensors.torch import load_file

        pipe.transformer.load_state_dict({k: v.float() for k, v in load_file(args.continue_from).items()})
    spec = pipe.clip_spec
    pack = Path(args.pack)
    if pack.exists():
        shutil.rmtree(pack)
    pack.mkdir(parents=True)
    arrays, tasks = {}, {}
    for name, root in (("pickplace", PICKPLACE), ("cotrain", COTRAIN)):
        bank = wm.load_bank(root, spec, desc=name)
        arrays[f"{name}_frames"] = np.concatenate(bank.episodes)
        arrays[f"{name}_lengths"] = np.array([len(e) for e in bank.episodes])
        tasks[name] = list(bank.tasks)
    np.savez_compressed(pack / "banks.npz", **arrays)
    unique = sorted({t for v in tasks.values() for t in v})
    emb = torch.cat([pipe.encode_prompt(unique[i:i + 64]) for i in range(0, len(unique), 64)])
    torch.save(dict(tasks=unique, emb=emb.half()), pack / "text.pt")
    pipe.transformer.save_pretrained(pack / "base_transformer")
    pipe.scheduler.save_pretrained(pack / "scheduler")
    cfg = {k: v for k, v in pipe.config.items() if not k.startswith("_") and not isinstance(v, (list, tuple))}
    (pack / "pack.json").write_text(json.dumps(dict(
        pipeline=cfg, tasks=tasks, holdout_every=ft.holdout_every, seed=ft.seed, guidance_scale=ft.guidance_scale,
        inference_steps=ft.inference_steps, p_drop_text=ft.p_drop_text, base_dir=ft.base_dir,
        continue_from=args.continue_from), indent=1))
    size = sum(f.stat().st_size for f in pack.rglob("*") if f.is_file()) / 2 ** 20
    print(f"pack {pack}: {size:.1f} MiB; {len(unique)} instructions; "
          + ", ".join(f"{k}: {len(v)} episodes" for k, v in tasks.items()))


# ---- run (on the GPU machine) --------------------------------------------------------------
def load_pack(pack: Path):
    """(pack.json dict, {name: ClipBank}, (tasks, embeddings (U, L, D)))."""
    from dreamgen.world_model import ClipBank, ClipSpec

    meta = json.loads((pack / "pack.json").read_text())
    p = meta["pipeline"]
    spec = ClipSpec(p["num_frames"], p["frame_stride"], p["image_size"])
    z = np.load(pack / "banks.npz")
    banks = {}
    for name, tasks in meta["tasks"].items():
        frames, lengths = z[f"{name}_frames"], z[f"{name}_lengths"]
        eps = np.split(frames, np.cumsum(lengths)[:-1])
        banks[name] = ClipBank(spec, eps, tasks, [dict(episode_index=i) for i in range(len(eps))])
    text = torch.load(pack / "text.pt")
    return meta, banks, text


def make_pipe(meta: dict, pack: Path, run: dict, text: dict, device: str):
    """A DreamGenVideoPipeline whose instruction encoder is a lookup of the pack's embeddings."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanTransformer3DModel

    from dreamgen.world_model import DenoiserConfig, DreamGenVideoPipeline, build_transformer

    if run["init"] == "base":
        tr = WanTransformer3DModel.from_pretrained(pack / "base_transformer")
    else:
        torch.manual_seed(0)
        tr = build_transformer(DenoiserConfig(width=run.get("width", 128), heads=run.get("heads", 4),
                                              layers=run.get("layers", 4), patch=run.get("patch", 4)))
    sched = FlowMatchEulerDiscreteScheduler.from_pretrained(pack / "scheduler")
    pipe = DreamGenVideoPipeline(tr, sched, None, None, None, **meta["pipeline"])
    pipe.set_progress_bar_config(disable=True)
    rows = {t: i for i, t in enumerate(text["tasks"])}
    emb = text["emb"].float()

    def encode_prompt(prompts):
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        missing = [p for p in prompts if p not in rows]
        if missing:
            raise KeyError(f"instructions not in the pack's text.pt: {missing[:3]}; re-run prepare")
        return emb[[rows[p] for p in prompts]]

    pipe.encode_prompt = encode_prompt  # the instance attribute shadows the method
    return pipe.to(device)


def run_one(args) -> None:
    from dreamgen.training import TrainConfig
    from dreamgen.world_model import ClipBank, fit, split_holdout
    from dreamgen.world_model import evaluate as ev

    t_start = time.time()
    torch.set_num_threads(args.threads)
    run = RUNS[args.name]
    pack, out = Path(args.pack), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta, banks, text = load_pack(pack)
    pp = banks["pickplace"]
    train_idx, held_idx = split_holdout(len(pp), meta["holdout_every"])
    parts = [pp.subset(train_idx) if d == "pickplace" else banks[d] for d in run["data"]]
    bank = ClipBank(pp.spec, sum((b.episodes for b in parts), []), sum((b.tasks for b in parts), []),
                    sum((b.meta for b in parts), []))
    held = pp.subset(held_idx)
    real = np.stack([held.clip(i) for i in range(len(held))])
    seeds = [meta["seed"] + 7000 + i for i in range(len(real))]  # the finetune stage's dream seeds
    g, steps = meta["guidance_scale"], meta["inference_steps"]
    pipe = make_pipe(meta, pack, run, text, args.device)
    n_params = sum(p.numel() for p in pipe.transformer.parameters())
    print(f"[{args.name}] {run} | {n_params / 1e6:.2f} M parameters | {len(bank)} training episodes | "
          f"{len(real)} held out | device {pipe.device}", flush=True)
    rows, snaps = [], []
    deadline = t_start + args.seconds

    def save(extra: dict | None = None) -> None:
        extra = dict(extra or {})
        arrays = extra.pop("arrays", {})
        info = dict(run=args.name, config=run, params_m=n_params / 1e6, batch_size=args.batch,
                    train_episodes=len(bank), rows=rows, **extra)
        np.savez_compressed(out / f"{args.name}.npz", real=real, dreams=np.stack(snaps),
                            steps=np.array([r["step"] for r in rows]), info=json.dumps(info, default=str), **arrays)

    def snapshot(step: int):
        d = ev.dream(pipe, real[:, 0], list(held.tasks), seeds, g, steps)
        rep = ev.quality_report(d, real)
        rows.append(dict(step=step, clips_seen=step * args.batch, seconds=time.time() - t_start,
                         **{k: rep[k] for k in ("mae_dream", "mae_copy_first", "look", "look_copy_first",
                                                "motion_hit", "motion_hit_shuffled")}))
        snaps.append(d)
        save()
        r = rows[-1]
        print(f"[{args.name}] step {step} ({r['seconds']:.0f} s): MAE {r['mae_dream']:.2f} (copy {r['mae_copy_first']:.2f}) "
              f"look {r['look']:.3f} (copy {r['look_copy_first']:.3f}) motion {r['motion_hit']:.1f} "
              f"(chance {r['motion_hit_shuffled']:.1f})", flush=True)
        if time.time() > deadline:
            raise TimeUp
        return d

    cfg = TrainConfig(steps=10 ** 6, lr=run["lr"], seed=0, ckpt_every=args.snap_every, log_every=50)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            snapshot(0)
            fit(pipe, bank, cfg, Path(tmp) / "ckpt", batch_size=args.batch, p_drop_text=meta["p_drop_text"],
                sample_every=args.snap_every, snapshot=snapshot, desc=f"run {args.name}")
        except TimeUp:
            pass
    pipe.transformer.eval().requires_grad_(False)
    traj = ev.denoising_trajectory(pipe, real[:2, 0], list(held.tasks[:2]), seeds[0], g, steps)
    eta1 = ev.dream(pipe, real[:, 0], list(held.tasks), seeds, g, steps, eta=1.0)
    rep1 = ev.quality_report(eta1, real)
    save(dict(eta1={k: rep1[k] for k in ("mae_dream", "look", "motion_hit")}, total_seconds=time.time() - t_start,
              arrays=dict(trajectory=traj, dreams_eta1=eta1)))
    if not run.get("keep_weights", True):  # the device returns at most 8 files
        return
    from safetensors.torch import save_file

    sd = {k: (v.half() if run.get("fp16_out") else v).contiguous().cpu()
          for k, v in pipe.transformer.state_dict().items()}
    save_file(sd, str(out / f"{args.name}.safetensors"), metadata=dict(config=json.dumps(
        {k: v for k, v in pipe.transformer.config.items() if not k.startswith("_")}, default=str)))
    print(f"[{args.name}] done in {time.time() - t_start:.0f} s; eta 1: MAE {rep1['mae_dream']:.2f} "
          f"look {rep1['look']:.3f} motion {rep1['motion_hit']:.1f}", flush=True)


def run_all(args) -> None:
    names = args.only or list(RUNS)
    procs = []
    for n in names:
        cmd = [sys.executable, __file__, "run-one", "--name", n, "--pack", args.pack, "--out", args.out,
               "--seconds", str(args.seconds), "--batch", str(args.batch), "--snap-every", str(args.snap_every),
               "--threads", str(args.threads), "--device", args.device]
        procs.append(subprocess.Popen(cmd, env=dict(os.environ, PYTHONUNBUFFERED="1")))
    codes = [p.wait() for p in procs]
    print("exit codes", dict(zip(names, codes)), flush=True)


# ---- show (here) ----------------------------------------------------------------------------
def show(args) -> None:
    from dreamgen import report

    res = Path(args.results)
    for f in sorted(res.glob("*.npz")):
        z = np.load(f)
        info = json.loads(str(z["info"]))
        print(f"\n== run {info['run']}: {info['config']} | {info['params_m']:.2f} M parameters | "
              f"{info['train_episodes']} episodes | batch {info['batch_size']}")
        print("step   clips    s    MAE (copy)     look (copy)    motion (chance)")
        for r in info["rows"]:
            print(f"{r['step']:5d} {r['clips_seen']:7d} {r['seconds']:5.0f}  {r['mae_dream']:5.2f} ({r['mae_copy_first']:.2f})  "
                  f"{r['look']:.3f} ({r['look_copy_first']:.3f})  {r['motion_hit']:.1f} ({r['motion_hit_shuffled']:.1f})")
        if "eta1" in info:
            print(f"final, eta 1: {info['eta1']}; total {info['total_seconds']:.0f} s")
        if args.png_dir:
            d, real = z["dreams"], z["real"]
            pick = sorted({0, len(d) // 3, 2 * len(d) // 3, len(d) - 1})
            k = min(4, len(real))
            rows = np.concatenate([real[:k]] + [d[i][:k] for i in pick])
            print("png (rows: real, then steps", [info["rows"][i]["step"] for i in pick], "):",
                  report.save_png(report.upscale(report.tile(rows.reshape(-1, *rows.shape[2:]),
                                                             cols=real.shape[1] * 1), 3),
                                  Path(args.png_dir) / f"gpu_scale_{info['run']}.png"))


SAMPLERS = {"stage": (3.0, 8, 3.0), "uniform-32-g1": (1.0, 32, 1.0)}  # (time shift, Euler steps, guidance)


def moving_target(pipe, real: np.ndarray):
    """(first-frame latents, clean target the denoiser learns, mask of its moving pixels) of real clips;
    'moving' as the training loss's motion weight defines it (model.MOVING)."""
    from dreamgen.world_model.model import MOVING

    x = pipe.encode_frames(real)
    first = x[:, :, 0]
    x0 = x - first[:, :, None] if pipe.config.residual else x
    moving = (x - first[:, :, None]).abs().amax(1, keepdim=True).expand_as(x0) > MOVING
    return first, x0, moving


@torch.no_grad()
def x0_estimate(pipe, real: np.ndarray, tasks: list[str], t: float, seed: int = 0):
    """The conditional clean-clip estimate from real clips noised to flow time t, with what moving_target
    gives: (estimate, target, moving mask, first-frame latents), the first two (B, C, T, h, w)."""
    from dreamgen.world_model.model import FlowMatchingVideoModel

    net = FlowMatchingVideoModel(pipe.transformer, residual=pipe.config.residual, prediction=pipe.config.prediction)
    first, x0, moving = moving_target(pipe, real)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    noisy = (1 - t) * x0 + t * eps
    est = noisy - t * net.velocity(noisy, first, torch.full((len(x0),), t), pipe.encode_prompt(tasks))
    return est, x0, moving, first


def x0_error(pipe, real: np.ndarray, tasks: list[str], t: float, seed: int = 0) -> float:
    """MSE of the clean-clip estimate on pixels that move, for held-out clips noised to flow time t."""
    est, x0, moving, _ = x0_estimate(pipe, real, tasks, t, seed)
    return float(((est - x0)[moving] ** 2).mean())


def save_panels(panels: list, path, width: float, row_height: float) -> None:
    """One titled row of frames per (title, clip (T, S, S, 3)) panel, written to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dreamgen import report

    fig, axes = plt.subplots(len(panels), 1, figsize=(width, row_height * len(panels)))
    for ax, (title, clip) in zip(np.atleast_1d(axes), panels):
        ax.imshow(report.tile(clip, cols=len(clip)), interpolation="nearest")
        ax.set_title(title, fontsize=7, loc="left", pad=2)
        ax.axis("off")
    fig.tight_layout(h_pad=0.3)
    fig.savefig(path, dpi=110)
    print("wrote", path)


def pipe_with_weights(base_dir, weights):
    """The base pipeline (its text encoder and scheduler) with a returned run's denoiser."""
    from diffusers import WanTransformer3DModel
    from safetensors import safe_open
    from safetensors.torch import load_file

    from dreamgen import world_model as wm

    pipe = wm.load_pipeline(base_dir)
    with safe_open(str(weights), "pt") as fh:
        cfg = json.loads(fh.metadata()["config"])
    tr = WanTransformer3DModel(**cfg)
    tr.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
    pipe.transformer = tr.eval().requires_grad_(False)
    return pipe


def transfer(args) -> None:
    """The dream stage's protocol (cells, resets, seeds, two chained clips, its sampler) with returned
    denoisers: quality by split (seen, new behaviour, unseen environment) beside the stage's own."""
    from dreamgen.actions import idm
    from dreamgen.collect import WorldConfig
    from dreamgen.params import load_params, stage_section, validate
    from dreamgen.world_model import dreams, evaluate, variants

    torch.set_num_threads(args.threads)
    cfg = validate("dream", stage_section(load_params(args.params), "dream", args.params))
    spec = json.loads(Path(cfg.spec_path).read_text())
    world = WorldConfig(spec["image_size"], spec["supersample"], spec["max_steps"])
    encoder = idm.load_idm(cfg.idm_dir).encoder
    stage = json.loads(Path(args.stage_metrics).read_text())["quality"]
    out, panels = dict(sampler=dict(guidance=cfg.guidance_scale, steps=cfg.inference_steps, segments=cfg.segments),
                       stage_variant=cfg.variant, runs={}), []
    for pair in args.runs:
        run, exp = pair.split(":")
        weights = next((Path(d) / f"{run}.safetensors" for d in args.results
                        if (Path(d) / f"{run}.safetensors").is_file()), None)
        if weights is None:
            raise SystemExit(f"--runs {pair}: no {run}.safetensors in {args.results}")
        _, info = variants.load_variant(cfg.base_dir, Path(cfg.variants_dir) / exp / cfg.variant)
        trained = {tuple(p) for p in info["meta"]["trained_pairs"]}  # the experiment's robot data, as the stage plans
        cells = dreams.plan_cells(trained, spec["behaviours"], list(range(spec["n_environments"])),
                                  cfg.n_seen, cfg.n_new_behaviour, cfg.n_unseen_environment)
        seed = cfg.seed + 1_000_000 * cfg.experiments.index(exp)
        refs = dreams.reference_episodes(cells, spec["robot"], seed, world, noise=1.0,
                                         paraphrase_every=cfg.paraphrase_every, workers=cfg.workers)
        pipe = pipe_with_weights(cfg.base_dir, weights)
        t0 = time.time()
        eps, real = dreams.dream_episodes(pipe, refs, dict(run=run), cfg.guidance_scale, cfg.inference_steps,
                                          seed=seed, batch=cfg.batch_size, segments=cfg.segments)
        clips = np.stack([e.frames for e in eps])
        splits = np.array([e.meta["split"] for e in eps])
        rows = {}
        for split in dreams.SPLITS:
            m = splits == split
            if not m.any():
                continue
            rep = evaluate.quality_report(clips[m], real[m], encoder=encoder if m.sum() > 2 else None)
            rows[split] = rep
            st = stage.get(f"{exp}/{split}", {})
            print(f"run {run} on {exp}/{split} ({int(m.sum())} dreams): MAE {rep['mae_dream']:.2f} "
                  f"(stage {cfg.variant} {st.get('mae_dream', float('nan')):.2f}, copy {rep['mae_copy_first']:.2f}), "
                  f"motion {rep['motion_hit']:.2f} (stage {st.get('motion_hit', float('nan')):.2f}, chance "
                  f"{rep['motion_hit_shuffled']:.2f}), FD-IDM {rep.get('fid_idm', float('nan')):.1f} "
                  f"(stage {st.get('fid_idm', float('nan')):.1f}, copy {rep.get('fid_idm_copy_first', float('nan')):.1f})",
                  flush=True)
            i = int(np.flatnonzero(m)[0])  # the first dream of each split, beside its expert reference
            panels += [(f"real: {eps[i].task} (env {eps[i].meta['environment']})", real[i]),
                       (f"run {run} ({exp}, {split})", clips[i])]
        out["runs"][run] = dict(experiment=exp, dreams=len(eps), seconds=time.time() - t0, by_split=rows,
                                stage={s: stage.get(f"{exp}/{s}") for s in rows})
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
        print("wrote", args.json)
    if args.png and panels:
        save_panels(panels, args.png, width=9, row_height=1.05)


def analyse(args) -> None:
    """Every returned denoiser, the stage's own models beside them: two samplers and the x0 probe."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from dreamgen import world_model as wm
    from dreamgen.actions import idm
    from dreamgen.world_model import evaluate as ev
    from dreamgen.world_model import variants

    torch.set_num_threads(args.threads)
    encoder = idm.load_idm(args.idm_dir).encoder  # FD-IDM as the finetune stage measures it
    meta = json.loads((Path(args.pack) / "pack.json").read_text())
    held_idx = wm.split_holdout(len(meta["tasks"]["pickplace"]), meta["holdout_every"])[1]
    tasks = [meta["tasks"]["pickplace"][i] for i in held_idx]
    seeds = [meta["seed"] + 7000 + i for i in range(len(held_idx))]
    runs, models = {}, {}
    for folder in args.results:
        for f in sorted(Path(folder).glob("*.npz")):
            z = np.load(f)
            info = json.loads(str(z["info"]))
            runs[info["run"]] = {k: info[k] for k in ("config", "params_m", "batch_size", "train_episodes", "rows",
                                                       "eta1", "total_seconds") if k in info}
            real = z["real"]  # every run dreams the same held-out episodes
            w = f.with_suffix(".safetensors")
            if w.is_file():
                models[info["run"]] = w
    base_dir = meta["base_dir"]
    entries = {"base (CPU, web only)": None,
               "stage full fine-tune (CPU, 600 x 8 clips)": f"{args.variants_dir}/pickplace_env0/full"}
    entries |= {f"GPU run {k}": w for k, w in models.items()}
    table, shown = {}, {}
    for name, src in entries.items():
        pipe = pipe_with_weights(base_dir, src) if str(src).endswith(".safetensors") \
            else variants.load_variant(base_dir, src)[0]
        sched = pipe.scheduler.config
        row = {}
        for sname, (shift, steps, g) in SAMPLERS.items():
            pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(sched, shift=shift)
            d = ev.dream(pipe, real[:, 0], tasks, seeds, g, steps)
            rep = ev.quality_report(d, real, encoder=encoder)
            row[sname] = {k: rep[k] for k in ("mae_dream", "mae_copy_first", "look", "look_copy_first", "motion_hit",
                                              "motion_hit_shuffled", "fid_idm", "fid_idm_copy_first")}
            if sname == "uniform-32-g1":
                shown[name] = d
        row["x0_moving_mse"] = {str(t): x0_error(pipe, real, tasks, t) for t in (1.0, 0.5, 0.1)}
        table[name] = row
        st, un = row["stage"], row["uniform-32-g1"]
        print(f"{name:44s} stage sampler: MAE {st['mae_dream']:.2f} FD-IDM {st['fid_idm']:.1f} look {st['look']:.3f} "
              f"motion {st['motion_hit']:.1f} ({st['motion_hit_shuffled']:.1f}) | uniform 32 g1: MAE {un['mae_dream']:.2f} "
              f"FD-IDM {un['fid_idm']:.1f} look {un['look']:.3f} motion {un['motion_hit']:.1f} "
              f"({un['motion_hit_shuffled']:.1f}) | x0 MSE on moving pixels at t=1/0.5/0.1: "
              + "/".join(f"{v:.3f}" for v in row["x0_moving_mse"].values()), flush=True)
    _, x0, moving = moving_target(pipe, real)
    zero = float((x0[moving] ** 2).mean())  # the error of a zero residual: "nothing moves"
    print(f"x0 reference, 'nothing moves' on moving pixels: {zero:.3f}; copy first frame MAE "
          f"{st['mae_copy_first']:.2f}, FD-IDM {st['fid_idm_copy_first']:.1f}")
    out = dict(device="NVIDIA H200", held_out_clips=len(real), samplers={k: dict(shift=v[0], steps=v[1], guidance=v[2])
                                                                        for k, v in SAMPLERS.items()},
               runs=runs, analysis=table, x0_nothing_moves=zero)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
        print("wrote", args.json)
    if args.png:
        keys = [k for k in shown if not k.startswith("base")]
        panels = []
        for i in (1, 3):  # two held-out episodes: a cube to the far bowl, a cube beside the bowl
            panels.append((f"real: {tasks[i]}", real[i]))
            panels += [(f"{k}, uniform 32 steps, g 1", shown[k][i]) for k in keys]
        save_panels(panels, args.png, width=8, row_height=1.15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--pack", default=".gpu/wmscale")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--continue-from", default=None, help="a run's .safetensors to put in place of the base's weights")
    for name in ("run", "run-one"):
        p = sub.add_parser(name)
        p.add_argument("--pack", default=".gpu/wmscale")
        p.add_argument("--out", required=True)
        p.add_argument("--seconds", type=float, default=330, help="time box of each run, dreaming included")
        p.add_argument("--batch", type=int, default=64)
        p.add_argument("--snap-every", type=int, default=250)
        p.add_argument("--threads", type=int, default=3, help="CPU threads per run (batches are cut on the CPU)")
        p.add_argument("--device", default="cuda")
        if name == "run":
            p.add_argument("--only", nargs="*", default=None, choices=list(RUNS))
        else:
            p.add_argument("--name", required=True, choices=list(RUNS))
    for name in ("analyse", "transfer"):
        p = sub.add_parser(name)
        p.add_argument("--results", nargs="+", required=True, help="folders the device calls returned")
        p.add_argument("--json", default=None)
        p.add_argument("--png", default=None)
        p.add_argument("--threads", type=int, default=2)
        if name == "analyse":
            p.add_argument("--pack", default=".gpu/wmscale")
            p.add_argument("--variants-dir", default="data/models/world_model/finetuned")
            p.add_argument("--idm-dir", default="data/models/idm")
        else:
            p.add_argument("--runs", nargs="+", default=["A:pickplace_env0", "E:cotrain"],
                           help="RUN:EXPERIMENT, the experiment whose robot data the run was trained on")
            p.add_argument("--params", default="params.yaml")
            p.add_argument("--stage-metrics", default="reports/metrics/dream.json")
    p = sub.add_parser("show")
    p.add_argument("--results", required=True)
    p.add_argument("--png-dir", default=None)
    args = ap.parse_args()
    if args.cmd in ("run", "run-one") and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU machine, or pass --device cpu for a dry run")
    verbs = {"prepare": prepare, "run": run_all, "run-one": run_one, "show": show, "analyse": analyse,
             "transfer": transfer}
    verbs[args.cmd](args)


if __name__ == "__main__":
    main()
