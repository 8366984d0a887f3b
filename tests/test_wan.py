"""The paper profile's WAN2.1 image-to-video path (dreamgen.world_model.wan) on a tiny, randomly
initialised WanImageToVideoPipeline (dreamgen.tiny): no downloads, the tokenizer is the bundled
all-MiniLM-L6-v2 one. Dimensions follow diffusers' own WAN I2V pipeline tests."""
from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch

from dreamgen.tiny import WAN_Z, square_clips, tiny_wan_i2v
from dreamgen.world_model import wan

torch.set_num_threads(1)

Z = WAN_Z  # VAE latent channels; the transformer takes 2 Z + 4 (noisy, mask, image condition)
H = W = 32  # VAE /8 -> 4x4 latents, patch 2 -> 2x2 tokens per latent frame
T = 9  # 1 + 4 n frames -> 3 latent frames


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wan") / "base"
    tiny_wan_i2v().save_pretrained(folder)
    return folder


def clips(n=2, seed=0):
    return square_clips(n, T, H, seed)


def forward(pipe, seed=0):
    """The transformer's prediction on fixed inputs (1, Z, 3, 4, 4): a cheap probe of its weights."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 2 * Z + 4, 3, 4, 4, generator=g)
    text = torch.randn(1, 8, 32, generator=g)
    img = torch.randn(1, 17, 4, generator=g)
    with torch.no_grad():
        return pipe.transformer(hidden_states=x, timestep=torch.tensor([500.0]), encoder_hidden_states=text,
                                encoder_hidden_states_image=img, return_dict=False)[0]


PROMPTS = ["pick up the red block", "push the blue block left"]


@pytest.fixture(scope="module")
def trained(base_dir, tmp_path_factory):
    """(pipe with a LoRA adapter after two steps, losses, base state before, adapter folder)."""
    pipe = wan.load_wan_i2v(base_dir)
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    n = wan.add_wan_lora(pipe, rank=4)
    opt = torch.optim.AdamW([p for p in pipe.transformer.parameters() if p.requires_grad], lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = [wan.wan_lora_step(pipe, clips(), PROMPTS, opt, g, p_drop_text=0.5, max_sequence_length=16)
              for _ in range(2)]
    folder = wan.save_wan_lora(pipe, tmp_path_factory.mktemp("wan") / "lora", meta=dict(steps=2))
    return pipe, n, losses, before, folder


def test_load_round_trip(base_dir):
    from diffusers import WanImageToVideoPipeline

    pipe = wan.load_wan_i2v(base_dir)
    assert isinstance(pipe, WanImageToVideoPipeline)
    assert pipe.transformer.config.in_channels == 2 * Z + 4
    assert pipe.vae.dtype == torch.float32
    again = wan.load_wan_i2v(str(base_dir))
    assert wan.wan_fingerprint(pipe.transformer) == wan.wan_fingerprint(again.transformer)
    torch.testing.assert_close(forward(pipe), forward(again), rtol=0, atol=0)


def test_missing_model_says_what_and_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*no such folder.*huggingface-cli download"):
        wan.load_wan_i2v(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        wan.load_wan_i2v(tmp_path)
    # a Hub id that is not in the local cache: refused without touching the network
    with pytest.raises(FileNotFoundError, match="no-such-org/no-such-model.*local Hugging Face cache"):
        wan.load_wan_i2v("no-such-org/no-such-model")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "DreamGenVideoPipeline"}))
    with pytest.raises(ValueError, match="DreamGenVideoPipeline, not a WanImageToVideoPipeline"):
        wan.load_wan_i2v(tmp_path)


def test_conditioning_matches_the_pipeline(base_dir):
    pipe = wan.load_wan_i2v(base_dir)
    frames = clips()
    cond = wan.wan_condition(pipe, frames, PROMPTS, max_sequence_length=16)
    assert cond["latents"].shape == (2, Z, 3, 4, 4)
    assert cond["condition"].shape == (2, 4 + Z, 3, 4, 4)
    mask = cond["condition"][:, :4]
    assert torch.all(mask[:, :, 0] == 1) and torch.all(mask[:, :, 1:] == 0)  # only the first frame is given
    assert cond["text"].shape == (2, 16, 32) and cond["image"].shape == (2, 17, 4)
    # un-normalising the latents the way the pipeline does before decoding gives back the VAE's own latents
    video = torch.as_tensor(frames).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    with torch.no_grad():
        z = pipe.vae.encode(video).latent_dist.mode()
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, Z, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, Z, 1, 1, 1)
    torch.testing.assert_close(cond["latents"] * std + mean, z)
    # each clip's image condition is its own first frame's, not the batch's first
    one = wan.wan_condition(pipe, frames[1:], PROMPTS[1:], max_sequence_length=16)
    torch.testing.assert_close(one["condition"][0], cond["condition"][1])
    torch.testing.assert_close(one["image"][0], cond["image"][1])
    with pytest.raises(ValueError, match="1 \\+ 4 x n frames"):
        wan.check_frames(pipe, frames[:, :8])
    with pytest.raises(ValueError, match="divisible by 16"):
        wan.check_frames(pipe, frames[:, :, :24, :24])


def test_text_embeddings_are_the_pipelines(base_dir, monkeypatch):
    # without ftfy, diffusers' prompt cleaning fails; encode_text then mirrors it. Compare with
    # the pipeline's own T5 path, its ftfy step swapped for the same cleaning.
    import html

    from diffusers.pipelines.wan import pipeline_wan_i2v as src

    pipe = wan.load_wan_i2v(base_dir)
    monkeypatch.setattr(src, "prompt_clean", lambda t: src.whitespace_clean(html.unescape(html.unescape(t)).strip()))
    prompts = ["pick up  the red &amp; block ", "a much longer instruction that will be cut at sixteen tokens " * 3]
    ours = wan.encode_text(pipe, prompts, max_sequence_length=16)
    theirs = pipe._get_t5_prompt_embeds(prompts, max_sequence_length=16)
    assert ours.shape == (2, 16, 32)
    torch.testing.assert_close(ours, theirs)
    assert ours[0, -1].abs().max() == 0 and ours[1, -1].abs().max() > 0  # zero past the end, as WAN pads


def test_objective_is_the_one_the_scheduler_integrates(base_dir):
    # a transformer that predicted the training target exactly would make the pipeline's own
    # sampling loop (FlowMatchEuler steps from pure noise) land on the clean latents
    pipe = wan.load_wan_i2v(base_dir)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, Z, 3, 4, 4, generator=g), torch.randn(2, Z, 3, 4, 4, generator=g)
    sched = pipe.scheduler
    sched.set_timesteps(5)
    x = noise.clone()
    for t in sched.timesteps:
        sigma = (t / sched.config.num_train_timesteps).expand(2)
        noisy, target = wan.flow_pair(x0, noise, sigma)
        torch.testing.assert_close(noisy, x)  # the loop passes through the training path
        torch.testing.assert_close(noisy, sched.scale_noise(x0, t[None], noise))
        x = sched.step(target, t, x, return_dict=False)[0]
    torch.testing.assert_close(x, x0)
    assert wan.flow_shift(pipe) == 3.0


def test_lora_step_trains_only_the_adapter(trained):
    pipe, n, losses, before, _ = trained
    assert 0 < n < sum(v.numel() for v in before.values()) // 4
    assert all(np.isfinite(losses)) and all(loss > 0 for loss in losses)
    after = {k.replace(".base_layer", ""): v for k, v in pipe.transformer.state_dict().items()}
    for k, v in before.items():
        assert torch.equal(after[k], v), f"base weight {k} changed"
    lora = {k: v for k, v in after.items() if "lora_B" in k}
    assert lora and any(v.abs().max() > 0 for v in lora.values())  # lora_B starts at zero: it moved
    assert not any(p.requires_grad for p in pipe.text_encoder.parameters())
    with pytest.raises(ValueError, match="no trainable LoRA adapter"):
        fresh = tiny_wan_i2v()
        wan.wan_lora_step(fresh, clips(), PROMPTS, None, torch.Generator(), max_sequence_length=16)


def test_lora_step_reduces_loss_on_repeated_batch(base_dir):
    # the same batch, noise and sigma each step: a correct objective and gradient must lower it
    pipe = wan.load_wan_i2v(base_dir)
    wan.add_wan_lora(pipe, rank=8)
    opt = torch.optim.Adam([p for p in pipe.transformer.parameters() if p.requires_grad], lr=3e-3)
    losses = [wan.wan_lora_step(pipe, clips(1), PROMPTS[:1], opt, torch.Generator().manual_seed(1),
                                max_sequence_length=16) for _ in range(12)]
    assert losses[-1] < 0.9 * losses[0], losses


def test_adapter_saves_small_and_reloads_exactly(trained, base_dir):
    pipe, _, _, _, folder = trained
    adapter = (folder / "adapter_model.safetensors").stat().st_size
    base = (base_dir / "transformer" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert adapter < base / 4
    cfg = json.loads((folder / "adapter_config.json").read_text())
    assert cfg["kind"] == wan.KIND and cfg["rank"] == 4 and cfg["meta"] == {"steps": 2}

    fresh = wan.load_wan_i2v(base_dir)
    plain = forward(fresh)
    assert wan.load_wan_lora(fresh, folder)["base"] == cfg["base"]
    tuned = forward(fresh)
    torch.testing.assert_close(tuned, forward(pipe), rtol=0, atol=1e-6)
    assert (tuned - plain).abs().max() > 1e-4  # the adapter really changes the model
    assert not any(p.requires_grad for p in fresh.transformer.parameters())


def test_adapter_refuses_another_base(trained, base_dir, tmp_path):
    _, _, _, _, folder = trained
    other = wan.load_wan_i2v(base_dir)
    with torch.no_grad():
        next(other.transformer.parameters()).view(-1)[0] += 1e-6  # one weight, barely
    with pytest.raises(ValueError, match="trained on base transformer .* load the base it was fine-tuned from"):
        wan.load_wan_lora(other, folder)
    with pytest.raises(FileNotFoundError, match="no WAN LoRA adapter here"):
        wan.load_wan_lora(other, tmp_path)
    with pytest.raises(ValueError, match=r"save_wan_lora: .* no LoRA adapter; add one first \(add_wan_lora\)"):
        wan.save_wan_lora(other, tmp_path / "nothing")


class FakeAccelerator:
    """Rank `index` of `n` processes: accelerate's contiguous split, without a process group."""

    def __init__(self, index, n):
        self.process_index, self.num_processes = index, n

    @contextlib.contextmanager
    def split_between_processes(self, items):
        per, extra = divmod(len(items), self.num_processes)
        start = self.process_index * per + min(self.process_index, extra)
        yield items[start:start + per + (self.process_index < extra)]


def test_generate_shape_seeds_and_sharding(base_dir, monkeypatch):
    pipe = wan.load_wan_i2v(base_dir)
    frames = clips(2)
    images = np.stack([frames[0, 0], frames[1, 0], frames[0, 0]])
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0]]
    kw = dict(num_frames=T, height=H, width=W, steps=2, guidance_scale=3.0, max_sequence_length=16)
    out = wan.wan_generate(pipe, images, prompts, [0, 1, 0], **kw)
    assert out.shape == (3, T, H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], out[2])  # same image, prompt and seed
    again = wan.wan_generate(pipe, images[:1], prompts[:1], [5], **kw)
    assert not np.array_equal(again[0], out[0])  # another seed, another clip
    np.testing.assert_array_equal(wan.wan_generate(pipe, images[:1], prompts[:1], [5], **kw), again)
    # two processes: each makes its block, and together they make exactly the one-process result
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "gather_object", lambda results: results)
    parts = [wan.wan_generate(pipe, images, prompts, [0, 1, 0], accelerator=FakeAccelerator(r, 2), **kw)
             for r in range(2)]
    assert [len(p) for p in parts] == [2, 1]
    np.testing.assert_array_equal(np.concatenate(parts), out)
    with pytest.raises(ValueError, match="1 \\+ 4 x n frames"):
        wan.wan_generate(pipe, images, prompts, [0, 1, 0], **(kw | dict(num_frames=8)))
    with pytest.raises(ValueError, match="2 seeds for 3"):
        wan.wan_generate(pipe, images, prompts, [0, 1], **kw)


# ---- the WAN path inside the stages (dreamgen.world_model.wan_stage) ---------------------------
def stage_bank(n=3, length=12):
    """Episodes of the moving-square video, cut into 9-frame clips one step apart."""
    from dreamgen.world_model.clips import ClipBank, ClipSpec

    eps = list(square_clips(n, length, H, seed=1))
    return ClipBank(ClipSpec(T, 1, H), eps, [PROMPTS[i % 2] for i in range(n)], [{} for _ in range(n)])


def test_resize_video_up_and_down():
    from dreamgen.frames import resize_frames
    from dreamgen.world_model.wan_stage import resize_video

    x = clips(1)[0]  # (T, 32, 32, 3)
    up = resize_video(x, 48)
    assert up.shape == (T, 48, 48, 3) and up.dtype == np.uint8
    flat = np.full((2, 16, 16, 3), 77, np.uint8)
    np.testing.assert_array_equal(resize_video(flat, 40), np.full((2, 40, 40, 3), 77, np.uint8))
    np.testing.assert_array_equal(resize_video(x, 16), resize_frames(x, 16))  # the mini profile's own downscale
    assert np.abs(resize_video(up, 32).astype(int) - x).mean() < 6  # up and back keeps the picture


def test_stage_finetune_resumes_exactly(base_dir, tmp_path):
    from dreamgen.training import TrainConfig
    from dreamgen.world_model.wan_stage import WanSettings, finetune_wan

    settings = WanSettings(str(base_dir), H)
    kw = dict(batch_size=2, p_drop_text=0.5, rank=4)
    cfg = lambda steps: TrainConfig(steps=steps, lr=1e-2, seed=0, ckpt_every=1, log_every=1)  # noqa: E731
    whole, res, base_print, n = finetune_wan(settings, stage_bank(), cfg(3), tmp_path / "a", **kw)
    assert res.steps_done == 3 and res.resumed_from == 0 and n > 0 and len(res.history) == 3
    assert not any(p.requires_grad for p in whole.transformer.parameters())
    finetune_wan(settings, stage_bank(), cfg(1), tmp_path / "b", **kw)  # "interrupted" after one step
    resumed, res2, _, _ = finetune_wan(settings, stage_bank(), cfg(3), tmp_path / "b", **kw)
    assert res2.resumed_from == 1
    torch.testing.assert_close(forward(resumed), forward(whole), rtol=0, atol=1e-6)
    ckpt = next((tmp_path / "b").rglob("train_state.pt"))
    assert ckpt.stat().st_size < (base_dir / "transformer" / "diffusion_pytorch_model.safetensors").stat().st_size
    with pytest.raises(ValueError, match="1 \\+ 4 n frames"):
        from dreamgen.world_model.clips import ClipBank, ClipSpec

        bank = stage_bank()
        finetune_wan(settings, ClipBank(ClipSpec(8, 1, H), bank.episodes, bank.tasks, bank.meta), cfg(1),
                     tmp_path / "c", **kw)


def test_stage_variant_loads_and_dreams_at_the_pipelines_size(base_dir, tmp_path):
    from dreamgen.training import TrainConfig
    from dreamgen.world_model import dream, lora, variants
    from dreamgen.world_model.clips import ClipSpec
    from dreamgen.world_model.wan_stage import WanDreamer, WanSettings, finetune_wan, is_wan_variant, load_dreamer
    from dreamgen.world_model.wan_stage import save_wan_variant

    settings = WanSettings(str(base_dir), H)
    pipe, _, base_print, _ = finetune_wan(settings, stage_bank(), TrainConfig(steps=2, lr=1e-2, seed=0, ckpt_every=5),
                                          tmp_path / "ckpt", batch_size=2, p_drop_text=0.0, rank=4)
    folder = save_wan_variant(pipe, tmp_path / "pickplace" / "lora", base_print, dict(trained_pairs=[["pick", 0]]),
                              settings, ClipSpec(T, 4, 16))
    assert is_wan_variant(folder) and variants.variant_kind(folder) == "lora"
    dreamer, info = variants.load_variant("no/such-mini-base", folder)  # a WAN adapter names its own base
    assert isinstance(dreamer, WanDreamer) and info["kind"] == "lora" and info["base"] == base_print
    assert info["meta"]["trained_pairs"] == [["pick", 0]] and dreamer.clip_spec == ClipSpec(T, 4, 16)
    images = clips(2)[:, 0, ::2, ::2]  # initial frames at the output size, 16 px
    out = dream(dreamer, images, PROMPTS, [3, 4], guidance_scale=3.0, steps=2)
    assert out.shape == (2, T, 16, 16, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(dream(dreamer, images, PROMPTS, [3, 4], 3.0, 2), out)  # seeds recorded = clips
    base, base_info = load_dreamer(folder, adapter=False)
    assert base_info["kind"] == "base" and not np.array_equal(dream(base, images, PROMPTS, [3, 4], 3.0, 2), out)
    with pytest.raises(ValueError, match="eta"):
        dream(dreamer, images, PROMPTS, [3, 4], 3.0, 2, eta=0.5)
    with pytest.raises(ValueError, match=r"initial frames: expected \(N, 16, 16, 3\) uint8"):
        dream(dreamer, clips(2)[:, 0], PROMPTS, [3, 4], 3.0, 2)  # 32 px frames for a 16 px variant
    with pytest.raises(ValueError, match="empty list; give one instruction per initial frame"):
        dream(dreamer, images, [], [3, 4], 3.0, 2)
    # a mini-profile adapter is no WAN variant, and says so
    mini = tmp_path / "mini"
    mini.mkdir()
    (mini / lora.CONFIG).write_text(json.dumps(dict(rank=2, alpha=2, targets=["to_q"], base="x", meta={})))
    (mini / lora.WEIGHTS).write_bytes(b"")
    assert not is_wan_variant(mini)
    with pytest.raises(ValueError, match="not a WAN variant"):
        load_dreamer(mini)
