"""The video world model on tiny configurations: training, sampling, saving, resuming, bad input."""
import json
import os

import numpy as np
import pytest
import torch

from dreamgen.training import TrainConfig
from dreamgen.world_model import (ClipBank, ClipSpec, DenoiserConfig, DreamGenVideoPipeline, UNetConfig,
                                  build_pipeline, clip_indices, continuation_report, copy_first, fit,
                                  frames_in_place, load_pipeline, motion_check, resize_frames)
from dreamgen.world_model.fit import make_sampler
from dreamgen.world_model.model import FlowMatchingVideoModel
from dreamgen.world_model.text import text_model_dir

SPEC = ClipSpec(num_frames=4, frame_stride=2, image_size=16)
TINY = DenoiserConfig(patch=4, width=16, heads=2, layers=1, text_dim=32, freq_dim=16)
TINY_UNET = UNetConfig(blocks=(8, 16), head_dim=8, norm_groups=8, text_dim=32)
BOTH = pytest.mark.parametrize("denoiser", [TINY, TINY_UNET], ids=["wan", "unet"])


def tiny_text_encoder():
    """The real all-MiniLM tokenizer with a tiny random BERT (the real one is slow to run in tests)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(text_model_dir(), local_files_only=True)
    enc = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32)).eval()
    return tok, enc


@pytest.fixture(scope="module")
def text():
    return tiny_text_encoder()


def square_episode(direction: str, length: int = 9, size: int = 16) -> np.ndarray:
    """A white square on grey moving one pixel per step right or down: (T, S, S, 3) uint8."""
    frames = np.full((length, size, size, 3), 90, np.uint8)
    for t in range(length):
        r, c = (4, 2 + t) if direction == "right" else (2 + t, 4)
        frames[t, r:r + 3, c:c + 3] = 255
    return frames


@pytest.fixture(scope="module")
def bank():
    eps = [square_episode(d) for d in ("right", "down")] * 2
    tasks = ["move right", "move down"] * 2
    return ClipBank(SPEC, eps, tasks, [{} for _ in eps])


def new_pipe(text, seed=0, denoiser=TINY, **kw):
    torch.manual_seed(seed)
    return build_pipeline(denoiser, SPEC, text=text, **kw)


def test_clip_indices_hold_last_frame_and_resize_averages():
    assert clip_indices(5, SPEC).tolist() == [0, 2, 4, 4]
    assert clip_indices(20, SPEC, start=3).tolist() == [3, 5, 7, 9]
    img = np.zeros((2, 4, 4, 3), np.uint8)
    img[:, :2, :2] = 200
    small = resize_frames(img, 2)
    assert small.shape == (2, 2, 2, 3) and small[0, 0, 0, 0] == 200 and small[0, 1, 1, 0] == 0
    with pytest.raises(ValueError, match="not a multiple"):
        resize_frames(np.zeros((5, 5, 3), np.uint8), 2)


@BOTH
def test_training_lowers_the_loss_on_a_tiny_batch(text, bank, denoiser):
    pipe = new_pipe(text, denoiser=denoiser)
    model = FlowMatchingVideoModel(pipe.transformer.requires_grad_(True))
    sample = make_sampler(pipe, bank, batch_size=4, p_drop_text=0.0, shift=1.0)
    batch = sample(np.random.default_rng(0), 0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@BOTH
def test_samples_keep_the_first_frame_and_save_load_round_trip(text, bank, tmp_path, denoiser):
    pipe = new_pipe(text, denoiser=denoiser)
    image = np.stack([bank.clip(0)[0], bank.clip(1)[0]])
    out = pipe(image, ["move right", "move down"], num_inference_steps=3,
               generator=torch.Generator().manual_seed(7)).frames
    assert out.shape == (2, 4, 16, 16, 3) and out.dtype == np.uint8
    assert (out[:, 0] == image).all()
    pipe.save_pretrained(tmp_path / "wm")
    again = load_pipeline(tmp_path / "wm")
    assert isinstance(again, DreamGenVideoPipeline) and again.clip_spec == SPEC
    out2 = again(image, ["move right", "move down"], num_inference_steps=3,
                 generator=torch.Generator().manual_seed(7)).frames
    assert (out == out2).all()
    other = again(image, ["move right", "move down"], num_inference_steps=3,
                  generator=torch.Generator().manual_seed(8)).frames
    assert not (out == other).all(), "the generator must drive the sample"
    per_clip = again(image, ["move right", "move down"], num_inference_steps=3,
                     generator=[torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)]).frames
    assert per_clip.shape == out.shape


def test_diffusers_generic_loader_loads_a_saved_world_model_in_a_fresh_process(text, bank, tmp_path):
    """DiffusionPipeline.from_pretrained (diffusers' custom-pipeline mechanism) without importing dreamgen."""
    import subprocess
    import sys

    pipe = new_pipe(text)
    pipe.save_pretrained(tmp_path / "wm")
    image = bank.clip(0)[:1]
    want = pipe(image, ["move right"], num_inference_steps=3, generator=torch.Generator().manual_seed(7)).frames
    np.save(tmp_path / "image.npy", image)
    code = ("import sys, numpy as np, torch\n"
            "from diffusers import DiffusionPipeline\n"
            "assert 'dreamgen' not in sys.modules\n"
            f"p = DiffusionPipeline.from_pretrained({str(tmp_path / 'wm')!r}, trust_remote_code=True)\n"
            "print(type(p).__name__)\n"
            f"out = p(np.load({str(tmp_path / 'image.npy')!r}), ['move right'], num_inference_steps=3,\n"
            "          generator=torch.Generator().manual_seed(7)).frames\n"
            f"np.save({str(tmp_path / 'out.npy')!r}, out)\n")
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "DreamGenVideoPipeline"
    assert (np.load(tmp_path / "out.npy") == want).all(), "the generic loader must give the same model"
    # Without trust, diffusers refuses to run the folder's code, and says how to allow it.
    res = subprocess.run([sys.executable, "-c", code.replace(", trust_remote_code=True", "")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode != 0 and "trust_remote_code=True" in res.stderr


def test_stochastic_sampling_and_the_denoising_trajectory(text, bank):
    from dreamgen.world_model.evaluate import denoising_trajectory

    pipe = new_pipe(text)
    image = np.stack([bank.clip(0)[0], bank.clip(1)[0]])
    prompts = ["move right", "move down"]
    run = lambda **kw: pipe(image, prompts, num_inference_steps=4, guidance_scale=2.0,  # noqa: E731
                            generator=[torch.Generator().manual_seed(s) for s in (3, 4)], **kw).frames
    plain = run()
    assert (run(eta=0.0) == plain).all(), "eta 0 must be the scheduler's deterministic step"
    noisy = run(eta=1.0)
    assert (run(eta=1.0) == noisy).all() and not (noisy == plain).all()
    with pytest.raises(ValueError, match=r"eta: .* \[0, 1\], got 1.5"):
        run(eta=1.5)
    traj = denoising_trajectory(pipe, image, prompts, seed=3, guidance_scale=2.0, steps=4)
    assert traj.shape == (4, *plain.shape) and traj.dtype == np.uint8
    # the last step lands on the last clean estimate: the trajectory ends at the dream itself
    assert np.abs(traj[-1, :, 1:].astype(int) - plain[:, 1:]).max() <= 1
    assert not (traj[0] == traj[-1]).all()


def test_bad_inputs_stop_with_clear_messages(text, bank, tmp_path):
    pipe = new_pipe(text)
    image = bank.clip(0)[0]
    with pytest.raises(ValueError, match="frames are 32x32 but this world model makes 16x16"):
        pipe(np.zeros((32, 32, 3), np.uint8), "move right")
    with pytest.raises(ValueError, match="uint8"):
        pipe(image.astype(np.float32), "move right")
    with pytest.raises(ValueError, match="empty"):
        pipe(image, "  ")
    with pytest.raises(ValueError, match="3 prompts for 2 initial frames"):
        pipe(np.stack([image, image]), ["a", "b", "c"])
    with pytest.raises(ValueError, match="clip spec"):
        pipe.check_clip_spec(ClipSpec(8, 4, 16))
    with pytest.raises(FileNotFoundError, match="no world model here"):
        load_pipeline(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    with pytest.raises(ValueError, match="incompatible checkpoint: it holds a WanPipeline"):
        load_pipeline(tmp_path / "other")
    with pytest.raises(ValueError, match="text_dim"):
        build_pipeline(DenoiserConfig(patch=4, width=16, heads=2, layers=1), SPEC, text=text)


def weights(pipe):
    return torch.cat([p.detach().flatten() for p in pipe.transformer.parameters()])


def test_interrupted_training_resumes_to_the_same_weights(text, bank, tmp_path):
    cfg = TrainConfig(steps=6, lr=1e-3, seed=0, ckpt_every=2, log_every=2)
    whole = new_pipe(text)
    fit(whole, bank, cfg, tmp_path / "a", batch_size=2)
    part = new_pipe(text)
    from dreamgen.training import train
    from dreamgen.world_model.fit import check_resumable, model_card
    check_resumable(tmp_path / "b", model_card(part))
    model = FlowMatchingVideoModel(part.transformer.requires_grad_(True))
    train(model, make_sampler(part, bank, 2, 0.1, 3.0), cfg, tmp_path / "b", stop_after=4)  # "interrupted"
    resumed = new_pipe(text, seed=1)  # a fresh process: other initial weights, overwritten by the checkpoint
    res, _ = fit(resumed, bank, cfg, tmp_path / "b", batch_size=2)
    assert res.resumed_from == 4 and res.steps_done == 6
    assert torch.allclose(weights(whole), weights(resumed))
    wider = build_pipeline(DenoiserConfig(patch=4, width=32, heads=2, layers=1, text_dim=32, freq_dim=16),
                           SPEC, text=text)
    with pytest.raises(ValueError, match="incompatible checkpoint"):
        fit(wider, bank, cfg, tmp_path / "b", batch_size=2)


def test_snapshots_over_training_survive_resume(text, bank, tmp_path):
    cfg = TrainConfig(steps=4, lr=1e-3, seed=0, ckpt_every=2, log_every=2)
    pipe = new_pipe(text)
    res, snaps = fit(pipe, bank, cfg, tmp_path, batch_size=2, sample_every=2, snapshot=lambda s: np.array([s]))
    assert sorted(snaps) == [2, 4] and [h["step"] for h in res.history] == [2, 4]
    _, again = fit(new_pipe(text), bank, cfg, tmp_path, batch_size=2, sample_every=2, snapshot=lambda s: 1 / 0)
    assert sorted(again) == [2, 4]  # nothing left to train: no new snapshot was drawn
    resumed, _ = fit(new_pipe(text), bank, cfg, tmp_path, batch_size=2)
    assert resumed.resumed_from == 4 and resumed.steps_per_s == pytest.approx(res.steps_per_s, rel=0.5)


def test_latent_path_with_a_vae(text, bank, tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                        layers_per_block=1, sample_size=16)
    cfg = DenoiserConfig(channels=4, patch=2, width=16, heads=2, layers=1, text_dim=32, freq_dim=16)
    pipe = build_pipeline(cfg, SPEC, text=text, vae=vae)
    assert pipe.encode_frames(bank.clip(0)[None]).shape == (1, 4, 4, 8, 8)
    out = pipe(bank.clip(0)[0], "move right", num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    pipe.save_pretrained(tmp_path / "wm")
    out2 = load_pipeline(tmp_path / "wm")(bank.clip(0)[0], "move right", num_inference_steps=2,
                                           generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 4, 16, 16, 3) and (out.frames == out2.frames).all()
    with pytest.raises(ValueError, match="channels"):
        build_pipeline(TINY, SPEC, text=text, vae=vae)


def test_metrics_copy_baseline_and_motion_check():
    real = np.stack([square_episode("right"), square_episode("down")])[:, ::2]
    rep = continuation_report(copy_first(real), real)
    assert rep["mae_dream"] == rep["mae_copy_first"] > 0
    perfect = continuation_report(real, real)
    assert perfect["mae_dream"] == 0 and perfect["motion_hit"] == 1.0
    assert motion_check(real[::-1], real)["hit"] == 0.0  # right-mover vs down-mover end far apart


@BOTH
def test_lora_adapter_trains_saves_apart_and_loads(text, bank, tmp_path, denoiser):
    from dreamgen.world_model import lora

    base = new_pipe(text, denoiser=denoiser)
    base.save_pretrained(tmp_path / "base")
    fingerprint = lora.base_fingerprint(base.transformer)
    before = {k: v.clone() for k, v in base.transformer.state_dict().items()}
    n = lora.add_lora(base, rank=2)
    assert 0 < n < sum(p.numel() for p in base.transformer.parameters()) / 2
    cfg = TrainConfig(steps=4, lr=1e-2, seed=0, ckpt_every=2, log_every=2)
    fit(base, bank, cfg, tmp_path / "ckpt", batch_size=2, train_all=False)
    after = base.transformer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k in after), "the base weights must stay frozen"
    image = bank.clip(0)[0]
    want = base(image, "move right", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames
    lora.save_adapter(base, tmp_path / "adapter", fingerprint, meta=dict(dataset="squares"))
    assert (tmp_path / "adapter" / lora.WEIGHTS).stat().st_size < 200_000
    fresh = load_pipeline(tmp_path / "base")
    plain = fresh(image, "move right", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames
    assert lora.load_adapter(fresh, tmp_path / "adapter")["meta"] == dict(dataset="squares")
    got = fresh(image, "move right", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames
    assert (got == want).all() and not (plain == want).all()
    with pytest.raises(FileNotFoundError, match="no LoRA adapter here"):
        lora.load_adapter(load_pipeline(tmp_path / "base"), tmp_path / "missing")
    with pytest.raises(ValueError, match=r"save_adapter: .* no LoRA adapter; add one first \(add_lora\)"):
        lora.save_adapter(load_pipeline(tmp_path / "base"), tmp_path / "nothing", fingerprint)
    with pytest.raises(ValueError, match="trained on base model"):
        lora.load_adapter(new_pipe(text, seed=3, denoiser=denoiser), tmp_path / "adapter")


def test_model_card_ignores_diffusers_bookkeeping_order(text):
    """A new process may list `_use_default_values` in another order: resuming must still match."""
    from dreamgen.world_model.fit import model_card

    pipe = new_pipe(text)
    card = model_card(pipe)
    listed = list(pipe.transformer.config.get("_use_default_values", [])) + ["a", "b"]
    pipe.transformer.register_to_config(_use_default_values=listed[::-1])
    assert model_card(pipe) == card and not any(k.startswith("_") for k in card["transformer"])


def test_fingerprint_does_not_depend_on_the_thread_count(text):
    """A float sum's last bits change with threads; the adapter check must not (it once did)."""
    from dreamgen.world_model import lora

    pipe = new_pipe(text)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = lora.base_fingerprint(pipe.transformer)
        torch.set_num_threads(2)
        assert lora.base_fingerprint(pipe.transformer) == one
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        next(pipe.transformer.parameters()).view(-1)[0] += 1e-6
    assert lora.base_fingerprint(pipe.transformer) != one


@BOTH
def test_variants_full_and_lora_load_onto_their_base_only(text, bank, tmp_path, denoiser):
    from dreamgen.world_model import lora, variants

    base = new_pipe(text, denoiser=denoiser)
    base.save_pretrained(tmp_path / "base")
    cfg = TrainConfig(steps=3, lr=1e-2, seed=0, ckpt_every=10, log_every=1)
    image = bank.clip(0)[0]
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    made = {}
    for kind in ("lora", "full"):
        pipe, res, fp, n = variants.finetune(tmp_path / "base", kind, bank, cfg, tmp_path / "ckpt", batch_size=2,
                                             p_drop_text=0.0, rank=2)
        assert res.steps_done == 3 and fp == lora.base_fingerprint(load_pipeline(tmp_path / "base").transformer)
        made[kind] = pipe(image, "move right", num_inference_steps=2, generator=gen()).frames
        save = lora.save_adapter if kind == "lora" else variants.save_full
        save(pipe, tmp_path / kind, fp, meta=dict(trained_pairs=[["pick_place", 0]]))
        assert variants.variant_kind(tmp_path / kind) == kind
    plain = load_pipeline(tmp_path / "base")(image, "move right", num_inference_steps=2, generator=gen()).frames
    for kind in ("lora", "full"):
        pipe, info = variants.load_variant(tmp_path / "base", tmp_path / kind)
        assert info["kind"] == kind and info["meta"]["trained_pairs"] == [["pick_place", 0]]
        got = pipe(image, "move right", num_inference_steps=2, generator=gen()).frames
        assert (got == made[kind]).all() and not (got == plain).all()
    other = new_pipe(text, seed=5, denoiser=denoiser)
    other.save_pretrained(tmp_path / "other")
    for kind in ("lora", "full"):
        with pytest.raises(ValueError, match="base model"):
            variants.load_variant(tmp_path / "other", tmp_path / kind)
    with pytest.raises(FileNotFoundError, match="no world-model variant"):
        variants.load_variant(tmp_path / "base", tmp_path / "nothing")
    with pytest.raises(ValueError, match="kind must be"):
        variants.finetune(tmp_path / "base", "half", bank, cfg, tmp_path / "ckpt", 2, 0.0)


def test_dream_cells_follow_what_the_variant_was_trained_on():
    from dreamgen.world_model.dreams import plan_cells

    behaviours = ["pick_place", "push", "stack"]
    cells = plan_cells({("pick_place", 0)}, behaviours, [0, 1, 2], n_seen=5, n_new_behaviour=2,
                       n_unseen_environment=1)
    got = {(c.behaviour, c.environment, c.split, c.count) for c in cells}
    assert got == {("pick_place", 0, "seen", 5), ("push", 0, "new_behaviour", 2), ("stack", 0, "new_behaviour", 2),
                   ("pick_place", 1, "unseen_environment", 1), ("pick_place", 2, "unseen_environment", 1)}
    all_pairs = {(b, 0) for b in behaviours}
    assert {c.split for c in plan_cells(all_pairs, behaviours, [0, 1], 1, 1, 0)} == {"seen"}
    with pytest.raises(ValueError, match="no"):
        plan_cells(set(), behaviours, [0], 1, 1, 1)


def test_reference_episodes_share_the_dreams_first_frame_and_instruction():
    from dreamgen.collect import WorldConfig
    from dreamgen.world_model.dreams import DreamCell, reference_episodes, strided_clip

    cells = [DreamCell("pick_place", 0, "seen", 2), DreamCell("push", 1, "new_behaviour", 1)]
    world = WorldConfig(32, 1, 40)
    eps = reference_episodes(cells, "robot", 123, world, noise=1.0, paraphrase_every=2)
    again = reference_episodes(cells, "robot", 123, world, noise=1.0, paraphrase_every=2)
    assert [e.meta["split"] for e in eps] == ["seen", "seen", "new_behaviour"]
    assert [e.meta["paraphrase"] for e in eps] == [False, True, False]
    assert all((a.frames[0] == b.frames[0]).all() and a.task == b.task for a, b in zip(eps, again))
    clip = strided_clip(eps[0], num_frames=30, stride=4, size=16)
    assert clip.shape == (30, 16, 16, 3) and (clip[-1] == clip[-2]).all()  # past the end: the last frame held


def test_quality_measures_rank_real_above_corrupted():
    from dreamgen.world_model.evaluate import frechet_distance, look_consistency, quality_report

    real = np.stack([square_episode(d)[::2] for d in ("right", "down", "right", "down")])
    assert np.allclose(look_consistency(real, real), 1.0)
    rng = np.random.default_rng(0)
    speckled = real.copy()
    speckled[:, 1:][rng.random(speckled[:, 1:].shape[:-1]) < 0.2] = [255, 0, 255]
    assert look_consistency(speckled, real).max() < 0.95
    a = rng.normal(size=(200, 4))
    assert frechet_distance(a, a) < 1e-6 and frechet_distance(a, a + 3) > 30
    enc = lambda x: x.flatten(1)[:, ::97]  # noqa: E731  (any two-frame encoder will do)
    rep = quality_report(real, real, encoder=enc)
    assert rep["mae_dream"] == 0 and rep["look"] == 1.0 and rep["fid_idm"] < 1e-3 and rep["clips"] == 4


def test_chained_dreams_start_where_the_last_segment_ended(text, bank):
    from dreamgen.episode import Episode
    from dreamgen.world_model.dreams import dream_episodes

    pipe = new_pipe(text)
    refs = [Episode(frames=square_episode(d, length=20), task=f"move {d}",
                    meta=dict(embodiment="robot", behaviour="b", environment=0, split="seen", sim_seed=i, success=True))
            for i, d in enumerate(("right", "down"))]
    eps, real = dream_episodes(pipe, refs, dict(adapter="x"), guidance_scale=1.0, steps=2, seed=10, segments=3)
    length = 1 + 3 * (SPEC.num_frames - 1)
    assert real.shape == (2, length, 16, 16, 3) and all(e.frames.shape == real.shape[1:] for e in eps)
    assert all((e.frames[0] == r[0]).all() for e, r in zip(eps, real))
    one, _ = dream_episodes(pipe, refs, dict(adapter="x"), guidance_scale=1.0, steps=2, seed=10, segments=1)
    assert (one[0].frames == eps[0].frames[:SPEC.num_frames]).all()  # same seed: the same first segment
    assert eps[1].meta["seed"] == 13 and eps[0].meta["segments"] == 3 and eps[0].meta["adapter"] == "x"
    with pytest.raises(ValueError, match="segments"):
        dream_episodes(pipe, refs, {}, 1.0, 2, 0, segments=0)


def test_cosine_schedule_warms_up_decays_to_zero_and_resumes_on_schedule():
    from dreamgen.training import lr_at

    cfg = TrainConfig(steps=100, lr=1.0, seed=0, ckpt_every=10, schedule="cosine", warmup=10)
    lrs = np.array([lr_at(cfg, s) for s in range(100)])
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert np.all(np.diff(lrs[10:]) <= 0) and lrs[-1] < 0.01 and lrs[55] == pytest.approx(0.5, abs=0.02)
    assert lr_at(TrainConfig(steps=100, lr=0.3, seed=0, ckpt_every=10), 77) == 0.3
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(steps=10, lr=1.0, seed=0, ckpt_every=1, schedule="linear")
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(steps=10, lr=1.0, seed=0, ckpt_every=1, schedule="cosine", warmup=10)


def test_motion_weights_mark_only_changing_pixels():
    from dreamgen.world_model.model import motion_weights

    clip = torch.as_tensor(square_episode("right", length=4)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    w = motion_weights(clip, 4.0)  # (1, 1, T, S, S)
    assert w.shape == (1, 1, 4, 16, 16) and set(w.unique().tolist()) == {1.0, 5.0}
    assert (w[:, :, 0] == 1).all()  # the first frame never differs from itself
    moved = (clip - clip[:, :, :1]).abs().amax(1) > 0.1
    assert ((w[:, 0] == 5) == moved).all() and moved[0, 3].sum() > 0
    with pytest.raises(ValueError, match="motion_weight"):
        FlowMatchingVideoModel(None, motion_weight=-1)


def test_motion_weight_changes_the_loss_and_fine_tunes_inherit_the_recipe(text, bank, tmp_path, monkeypatch):
    import importlib

    from dreamgen.world_model import variants

    old = dict(loss="velocity", times="shift")  # the recipe of models made before those two keys
    pipe = new_pipe(text, train_shift=1.0, motion_weight=4.0)
    assert pipe.training_recipe == dict(shift=1.0, motion_weight=4.0, **old)
    assert new_pipe(text).training_recipe == dict(shift=3.0, motion_weight=0.0, **old)  # the sampler's shift
    batch = make_sampler(pipe, bank, 4, 0.0, 1.0)(np.random.default_rng(0), 0)
    plain = FlowMatchingVideoModel(pipe.transformer).loss(batch)[0]
    weighted = FlowMatchingVideoModel(pipe.transformer, motion_weight=4.0).loss(batch)[0]
    assert not torch.isclose(plain, weighted)
    pipe.save_pretrained(tmp_path / "base")
    assert load_pipeline(tmp_path / "base").training_recipe == dict(shift=1.0, motion_weight=4.0, **old)
    seen = {}
    fit_mod = importlib.import_module("dreamgen.world_model.fit")  # the module, not the function it exports
    real = fit_mod.make_sampler
    monkeypatch.setattr(fit_mod, "make_sampler",
                        lambda p, b, bs, pd, shift, times: seen.setdefault("shift", shift) and real(p, b, bs, pd, shift,
                                                                                                  times))
    variants.finetune(tmp_path / "base", "lora", bank, TrainConfig(steps=1, lr=1e-3, seed=0, ckpt_every=5),
                      tmp_path / "ckpt", batch_size=2, p_drop_text=0.0, rank=2)
    assert seen["shift"] == 1.0


def test_extra_lora_names_parse_or_fail_clearly():
    from dreamgen.world_model.variants import parse_extra_lora

    assert parse_extra_lora("lora-r4-s300") == (4, 300)
    for bad in ("lora-4-300", "lora-r0-s10", "full", "lora-r4-s300x"):
        with pytest.raises(ValueError, match="lora-r<rank>-s<steps>"):
            parse_extra_lora(bad)


def test_a_smaller_model_loads_as_a_variant_only_under_the_same_pipeline_settings(text, bank, tmp_path):
    """The bench's "smaller model": another denoiser size, fine-tuned on its own base, swapped into
    the base pipeline (same text encoder, scheduler, clip spec); other settings are refused."""
    from dataclasses import replace

    from dreamgen.world_model import lora, variants

    new_pipe(text).save_pretrained(tmp_path / "base")
    torch.manual_seed(1)
    small = build_pipeline(replace(TINY, width=TINY.width // 2), SPEC, text=text)
    small.save_pretrained(tmp_path / "small_base")
    cfg = TrainConfig(steps=2, lr=1e-2, seed=0, ckpt_every=10, log_every=1)
    pipe, _, fp, _ = variants.finetune(tmp_path / "small_base", "full", bank, cfg, tmp_path / "ckpt", batch_size=2,
                                       p_drop_text=0.0)
    image = bank.clip(0)[0]
    made = pipe(image, "move right", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames
    variants.save_full(pipe, tmp_path / "small", fp, meta=dict(trained_pairs=[["pick_place", 0]]), kind="model")
    assert variants.variant_kind(tmp_path / "small") == "model"
    got_pipe, info = variants.load_variant(tmp_path / "base", tmp_path / "small")
    assert info["kind"] == "model" and info["base"] == fp != lora.base_fingerprint(load_pipeline(tmp_path / "base").transformer)
    assert got_pipe.transformer.config.num_attention_heads * got_pipe.transformer.config.attention_head_dim == TINY.width // 2
    got = got_pipe(image, "move right", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames
    assert (got == made).all()
    # a base whose pipeline runs other settings (no residual) refuses it, naming the setting
    torch.manual_seed(0)
    build_pipeline(TINY, SPEC, text=text, residual=False).save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="residual"):
        variants.load_variant(tmp_path / "other", tmp_path / "small")
    with pytest.raises(ValueError, match="kind must be"):
        variants.save_full(pipe, tmp_path / "x", fp, kind="lora")


def test_unet_sees_the_frames_as_channels_and_keeps_frame_zero_exact(text, bank):
    """The U-Net's input is (first frame, noisy frames 1..T-1) as channels; its frame 0 is given, so
    the x0 loss and the velocity loss both ignore it, and the clip length is fixed by the channels."""
    pipe = new_pipe(text, denoiser=TINY_UNET, loss="x0", train_times="logit_normal")
    tc = pipe.transformer.config
    assert (tc.in_channels, tc.out_channels) == (3 * SPEC.num_frames, 3 * (SPEC.num_frames - 1))
    assert pipe.training_recipe == dict(shift=3.0, motion_weight=0.0, loss="x0", times="logit_normal")
    model = FlowMatchingVideoModel(pipe.transformer, prediction="x0", loss="x0")
    x = torch.rand(2, 3, SPEC.num_frames, 16, 16) * 2 - 1
    noise = torch.randn_like(x)
    t = torch.tensor([0.3, 0.9])
    noisy = (1 - t)[:, None, None, None, None] * (x - x[:, :, :1]) + t[:, None, None, None, None] * noise
    out = model.raw(noisy, x[:, :, 0], t, torch.zeros(2, 4, 32))
    assert out.shape == x.shape and (out[:, :, 0] == 0).all()
    v = FlowMatchingVideoModel(pipe.transformer, prediction="velocity").velocity(noisy, x[:, :, 0], t, torch.zeros(2, 4, 32))
    assert torch.allclose(v[:, :, 0], noise[:, :, 0], atol=1e-5), "frame 0's velocity is known exactly"
    with pytest.raises(ValueError, match="exactly 4 frames"):
        pipe(bank.clip(0)[0], "move right", num_frames=6, num_inference_steps=1)
    with pytest.raises(ValueError, match="needs prediction 'x0'"):
        new_pipe(text, denoiser=TINY_UNET, loss="x0", prediction="velocity")
    sample = make_sampler(pipe, bank, batch_size=256, p_drop_text=0.0, shift=3.0, times="logit_normal")
    ts = sample(np.random.default_rng(0), 0)["t"]
    assert 0.4 < float(ts.median()) < 0.6, "logit-normal times centre on 0.5 (shift 3 would put them near 0.75)"


def test_x0_loss_is_a_plain_mse_on_the_clean_clip(text, bank):
    pipe = new_pipe(text, denoiser=TINY_UNET)
    x = torch.rand(2, 3, SPEC.num_frames, 16, 16) * 2 - 1
    batch = dict(latents=x, text=torch.zeros(2, 4, 32), keep_text=torch.ones(2), t=torch.tensor([0.5, 0.5]),
                 noise=torch.randn_like(x))
    m = FlowMatchingVideoModel(pipe.transformer, prediction="x0", loss="x0")
    x0 = x - x[:, :, :1]
    noisy = 0.5 * x0 + 0.5 * batch["noise"]
    want = ((m.raw(noisy, x[:, :, 0], batch["t"], batch["text"]) - x0) ** 2).mean()
    assert torch.allclose(m.loss(batch)[0], want)
    velocity = FlowMatchingVideoModel(pipe.transformer, prediction="x0", loss="velocity").loss(batch)[0]
    assert torch.allclose(velocity, 4 * want, rtol=1e-4), "at t = 0.5 the velocity loss is the x0 loss / t^2"


def test_frames_in_place_counts_dreams_that_keep_time():
    real = np.stack([square_episode("right", 4), square_episode("down", 4)])
    assert frames_in_place(real, real) == (1.0, 6)
    assert frames_in_place(copy_first(real), real)[0] == 0.0
    ahead = np.repeat(real[:, -1:], 4, axis=1)  # jumps to the end state at once
    assert frames_in_place(ahead, real)[0] == pytest.approx(1 / 3)
    still = real.copy()
    still[:, 2:] = still[:, 1:2]  # the real clip stands still after frame 1: those frames are not counted
    share, counted = frames_in_place(still, still)
    assert counted == 0 and np.isnan(share)
    with pytest.raises(ValueError, match="differ in shape"):
        frames_in_place(real[:1], real)


def test_moving_mae_scores_only_where_the_real_clip_moves():
    from dreamgen.world_model.evaluate import moving_mae, quality_report

    real = np.stack([square_episode("right", 4), square_episode("down", 4)])
    assert moving_mae(real, real) == 0.0
    copy = copy_first(real)
    assert moving_mae(copy, real) > 13
    still = copy_first(real)
    assert np.isnan(moving_mae(still, still))
    rep = quality_report(copy, real)
    assert rep["mae_moving"] == rep["mae_moving_copy_first"] and rep["frames_in_place"] == 0.0


def test_retake_clips_cut_the_second_take_as_the_bank_cuts_the_recorded_one():
    from dreamgen.collect import WorldConfig
    from dreamgen.world import ROBOT, TabletopEnv, run_expert_episode
    from dreamgen.world.expert import NOISE_STREAM
    from dreamgen.world_model.evaluate import retake_clips

    world = WorldConfig(image_size=32, supersample=2, max_steps=40)
    eps = [run_expert_episode(TabletopEnv(image_size=32, supersample=2, max_steps=40), s, ROBOT, "push", 1,
                              noise=0.5) for s in (4, 5)]
    bank = ClipBank(SPEC, [resize_frames(e.frames, SPEC.image_size) for e in eps], [e.task for e in eps],
                    [e.meta for e in eps])
    same = retake_clips(bank, world, NOISE_STREAM)
    assert same.shape == (2, *bank.clip(0).shape) and (same == np.stack([bank.clip(0), bank.clip(1)])).all()
    other = retake_clips(bank, world, NOISE_STREAM + 1)
    assert (other[:, 0] == same[:, 0]).all() and not (other == same).all()
    with pytest.raises(ValueError, match="another instruction"):
        retake_clips(ClipBank(SPEC, bank.episodes, ["something else", bank.tasks[1]], bank.meta), world, 1)
