"""Unit tests of the pseudo-action labellers: IDM, latent action model, labelling, training loop."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dreamgen import data
from dreamgen.actions import idm, lam, label, pipeline
from dreamgen.collect import WorldConfig
from dreamgen.episode import Episode
from dreamgen.tiny import tiny_siglip
from dreamgen.training import TrainConfig, train

K, SIZE = 4, 32
NAMES = dict(action_names=("vx", "vy", "wz", "grip"), state_names=("x", "y", "yaw", "opening"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and far slower when threads compete for cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_idm(**kw) -> idm.InverseDynamics:
    torch.manual_seed(0)
    cfg = dict(embodiment="robot", image_size=SIZE, frame_stride=K, control_fps=10, width=16, flow_steps=2,
               extra=dict(holdout_every=10)) | NAMES | kw
    return idm.InverseDynamics(idm.IDMConfig(**cfg)).eval()


def tiny_lam() -> lam.LatentActionModel:
    torch.manual_seed(0)
    return lam.LatentActionModel(lam.LAMConfig(image_size=SIZE, frame_stride=K, control_fps=10, codebook_size=4,
                                               code_dim=4, width=8, restart_every=3)).eval()


@pytest.fixture(scope="module")
def expert_episodes():
    """Three real expert episodes of the robot at 32 px (pick-and-place, push, press button)."""
    from dreamgen.world import TabletopEnv, run_expert_episode

    env = TabletopEnv(image_size=SIZE, supersample=1, max_steps=80)
    return [run_expert_episode(env, seed=s, embodiment="robot", behaviour=b, environment=0, noise=1.0)
            for s, b in enumerate(["pick_place", "push", "press_button"])]


# --------------------------------------------------------------------------- IDM

def test_windows_pair_frames_k_apart_with_the_actions_between(expert_episodes):
    ep = expert_episodes[0]
    w = idm.make_windows([ep], K)
    assert len(w) == len(ep) - K
    t = 5
    np.testing.assert_array_equal(w.frames[w.first[t] + K], ep.frames[t + K])
    np.testing.assert_array_equal(w.actions[t], ep.actions[t:t + K])
    np.testing.assert_array_equal(w.states[t], ep.states[[t, t + K]])


def test_augment_shifts_both_frames_alike():
    x = torch.zeros(3, 2, 3, 16, 16)
    x[:, :, :, 8, 8] = 1.0
    y = idm.augment(x, np.random.default_rng(0), max_shift=3, jitter=0.0)
    assert y.shape == x.shape
    for b in range(3):  # the motion between the frames (here none) is kept
        assert torch.equal(y[b, 0], y[b, 1])
    moved = [not torch.equal(y[b, 0], x[b, 0]) for b in range(3)]
    assert any(moved)


@pytest.mark.parametrize("backbone", ["cnn", "keypoints"])
def test_idm_predicts_chunks_and_states_of_the_right_shape(backbone):
    model = tiny_idm(backbone=backbone)
    a, s = model.predict(torch.rand(5, 2, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(0))
    assert a.shape == (5, K, 4) and s.shape == (5, 2, 4)
    assert a.abs().max() <= 1.0


def test_label_samples_average_independent_draws_of_the_chunk():
    model = tiny_idm()
    frames = torch.rand(3, 2, 3, SIZE, SIZE)
    one, _ = model.predict(frames, generator=torch.Generator().manual_seed(0))
    assert torch.equal(one, model.predict(frames, generator=torch.Generator().manual_seed(0), samples=1)[0])
    many, states = model.predict(frames, generator=torch.Generator().manual_seed(0), samples=16)
    assert many.shape == one.shape and states.shape == (3, 2, 4)
    draws = torch.stack([model.predict(frames, generator=torch.Generator().manual_seed(s))[0] for s in range(16)])
    assert (many - draws.mean(0)).abs().mean() < (draws - draws.mean(0)).abs().mean(), "an average, not one draw"
    model.cfg = idm.IDMConfig(**{**model.cfg.__dict__, "label_samples": 16})
    assert torch.equal(model.predict(frames, generator=torch.Generator().manual_seed(0))[0], many)


def test_spatial_softmax_finds_a_bright_spot():
    maps = torch.full((1, 1, 9, 9), -20.0)
    maps[0, 0, 2, 6] = 20.0  # row 2, column 6
    xy = idm.SpatialSoftmax()(maps)[0, 0]
    torch.testing.assert_close(xy, torch.tensor([6 / 4 - 1, 2 / 4 - 1]), atol=1e-3, rtol=0)


def test_idm_fits_a_batch(expert_episodes, tmp_path):
    w = idm.make_windows(expert_episodes, K)
    batch = idm.batch_sampler(w, 16, aug=False)(np.random.default_rng(0), 0)
    cfg = TrainConfig(steps=40, lr=3e-3, seed=0, ckpt_every=100, log_every=10)
    res = train(tiny_idm(), lambda rng, step: batch, cfg, tmp_path)
    first, last = res.history[0], res.history[-1]
    assert last["state"] < 0.6 * first["state"] and last["flow"] < first["flow"], res.history


def test_training_resumes_where_it_stopped(expert_episodes, tmp_path):
    w = idm.make_windows(expert_episodes, K)
    cfg = TrainConfig(steps=8, lr=3e-3, seed=0, ckpt_every=2, log_every=2)
    full = tiny_idm()
    train(full, idm.batch_sampler(w, 4), cfg, tmp_path / "a")
    first = train(tiny_idm(), idm.batch_sampler(w, 4), cfg, tmp_path / "b", stop_after=4)
    assert first.steps_done == 4 and first.resumed_from == 0
    resumed = tiny_idm()  # a fresh process: only the checkpoint carries the state
    second = train(resumed, idm.batch_sampler(w, 4), cfg, tmp_path / "b")
    assert second.resumed_from == 4 and second.steps_done == 8 and len(second.history) == 4
    for (n, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(p, q, msg=f"{n} differs after resuming")


def test_save_and_load_keep_config_and_weights(tmp_path):
    model = tiny_idm()
    idm.save_idm(model, tmp_path)
    back = idm.load_idm(tmp_path)
    assert back.cfg == model.cfg and back.cfg.action_names == NAMES["action_names"]
    x = torch.rand(2, 2, 3, SIZE, SIZE)
    g = lambda: torch.Generator().manual_seed(1)
    torch.testing.assert_close(model.predict(x, g())[0], back.predict(x, g())[0])
    with pytest.raises(FileNotFoundError, match="train_idm"):
        idm.load_idm(tmp_path / "nothing")


def test_holdout_split_spreads_over_the_dataset():
    train_idx, held = idm.holdout_split(30, 10)
    assert held == [9, 19, 29] and not set(train_idx) & set(held) and len(train_idx) == 27


@pytest.mark.parametrize("arch", ["siglip", "siglip2"])
def test_idm_takes_a_transformers_vision_backbone_by_path(tmp_path, arch):
    """A tiny randomly initialised SigLIP / SigLIP-2 vision model saved locally (no download)."""
    vision = tiny_siglip(arch, SIZE)
    vision.save_pretrained(tmp_path / arch)
    model = tiny_idm(backbone="hf", backbone_path=str(tmp_path / arch))
    batch = dict(frames=torch.rand(3, 2, 3, SIZE, SIZE), actions=torch.rand(3, K, 4) * 2 - 1, states=torch.rand(3, 2, 4))
    loss, logs = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and set(logs) == {"flow", "state"}
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.vision.parameters())
    a, s = model.predict(batch["frames"])
    assert a.shape == (3, K, 4) and s.shape == (3, 2, 4)


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="backbone"):
        tiny_idm(backbone="resnet")
    with pytest.raises(ValueError, match="backbone_path"):
        tiny_idm(backbone="hf")


# --------------------------------------------------------------------------- labelling

class FakeIDM:
    """Predicts, for the window whose first frame has pixel value s, the chunk
    [10*(s+j) + s % 3 for j in range(k)] and states [s, s+gap]: known values to ensemble."""

    def __init__(self, k=K, gap=K):
        self.cfg = SimpleNamespace(frame_stride=k, action_dim=1, state_dim=1)
        self.gap = gap

    def predict(self, frames, generator=None):
        s = (frames[:, 0, 0, 0, 0] * 255).round()
        j = torch.arange(self.cfg.frame_stride)
        return (10 * (s[:, None] + j) + s[:, None] % 3)[..., None], torch.stack([s, s + self.gap], 1)[..., None]


def _ramp(t):
    return np.repeat(np.arange(t, dtype=np.uint8)[:, None, None, None], 4, 1).repeat(4, 2).repeat(3, 3)


def test_full_rate_labels_average_every_chunk_that_covers_an_action():
    t_len = 11
    labels = label.label_frames(FakeIDM(), _ramp(t_len), "full")
    assert labels.actions.shape == (t_len, 1) and labels.states.shape == (t_len, 1)
    for t in range(t_len - 1):  # chunks start at s with s <= t < s + K and s + K <= T - 1
        covering = [s for s in range(t_len - K) if s <= t < s + K]
        want = np.mean([10 * t + s % 3 for s in covering])
        assert labels.actions[t, 0] == pytest.approx(want), t
    assert labels.actions[-1, 0] == 0.0  # the no-op after the final frame
    np.testing.assert_allclose(labels.states[:, 0], np.arange(t_len))


def test_strided_labels_give_one_chunk_per_frame_pair():
    t_len = 6
    labels = label.label_frames(FakeIDM(gap=1), _ramp(t_len), "strided")
    assert labels.actions.shape == (t_len, K)
    np.testing.assert_allclose(labels.actions[2], [10 * (2 + j) + 2 for j in range(K)])
    assert (labels.actions[-1] == 0).all()
    np.testing.assert_allclose(labels.states[:, 0], np.arange(t_len))


@pytest.mark.parametrize("shape, fps, emb, words", [
    ((20, SIZE, SIZE, 3), 10, "robot_b", ["embodiment 'robot_b'", "trained for 'robot'"]),
    ((20, 64, 64, 3), 10, "robot", ["64x64", f"{SIZE}x{SIZE}"]),
    ((20, SIZE, SIZE, 3), 5, "robot", ["5 fps", "10 fps or 2.5 fps"]),
    ((K, SIZE, SIZE, 3), 10, "robot", [f"{K} frames", f"at least {K + 1}"]),
    ((1, SIZE, SIZE, 3), 2.5, None, ["1 frames", "at least 2"]),
])
def test_videos_that_do_not_fit_the_labeller_stop_with_a_clear_message(shape, fps, emb, words):
    with pytest.raises(label.LabelError) as err:
        label.video_mode(tiny_idm().cfg, shape, fps, emb, "dreams episode 3")
    assert "dreams episode 3" in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_video_mode_accepts_control_rate_and_strided_videos():
    cfg = tiny_idm().cfg
    assert label.video_mode(cfg, (K + 1, SIZE, SIZE, 3), 10, "robot", "x") == "full"
    assert label.video_mode(cfg, (2, SIZE, SIZE, 3), 10 / K, None, "x") == "strided"


def test_replaying_true_actions_succeeds_and_noise_does_not(expert_episodes):
    wc = WorldConfig(SIZE, 1, 80)
    ep = expert_episodes[0]
    assert label.replay(ep.meta, ep.actions, wc)["success"]
    rng = np.random.default_rng(0)
    assert not label.replay(ep.meta, rng.uniform(-1, 1, ep.actions.shape).astype(np.float32), wc)["success"]


def test_label_errors_against_the_mean_baseline():
    true = np.array([[1.0, 1.0], [-1.0, -1.0]])
    err = label.label_errors(true.copy(), true, true.mean(0))
    assert err["action_mse"] == 0 and err["action_mse_mean_baseline"] == 1.0 and err["grip_sign_acc"] == 1.0


# --------------------------------------------------------------------------- latent actions

def test_lam_trains_restarts_dead_codes_and_codes_videos():
    model = tiny_lam().train()
    before = model.codebook.detach().clone()
    frames = torch.rand(6, 2, 3, SIZE, SIZE)
    for _ in range(3):
        loss, logs = model.loss({"frames": frames})
        loss.backward()
    assert set(logs) == {"recon", "vq", "entropy"} and -np.log(4) - 1e-4 <= logs["entropy"] <= np.log(4) + 1e-4
    used = set(model.codes(frames).tolist())
    assert not torch.equal(before, model.codebook.detach()) and len(used) >= 1
    model.eval()
    codes = lam.video_codes(model, (np.random.default_rng(0).random((9, SIZE, SIZE, 3)) * 255).astype(np.uint8), K)
    assert codes.shape == (9,) and (codes[-K:] == -1).all() and ((codes[:-K] >= 0) & (codes[:-K] < 4)).all()


def test_lam_encoder_sees_the_change_not_the_scene():
    # Given the scene, the LAM spent its codes on environments and gave every robot pair one code.
    model = tiny_lam()
    g = torch.Generator().manual_seed(0)
    change = 0.2 * torch.rand(5, 3, SIZE, SIZE, generator=g)
    a0, b0 = 0.5 * torch.rand(5, 3, SIZE, SIZE, generator=g), 0.5 * torch.rand(5, 3, SIZE, SIZE, generator=g)
    za, zb = (model.encode(torch.stack([x, x + change], 1)) for x in (a0, b0))
    assert torch.allclose(za, zb, atol=1e-5)
    assert not torch.allclose(za, model.encode(torch.stack([a0, a0 - change], 1)), atol=1e-3)


def test_lam_loss_weights_the_pixels_that_move():
    model = tiny_lam().train()
    x0 = torch.zeros(2, 3, SIZE, SIZE)
    x1 = x0.clone()
    x1[:, :, :2, :2] = 1.0  # a few moving pixels the residual decoder (starting as a copy) misses
    _, logs = model.loss({"frames": torch.stack([x0, x1], 1)})
    frac = 4 / SIZE ** 2
    plain = frac  # unweighted MSE of the copy: the moved pixels' share
    w = model.cfg.change_weight
    assert logs["recon"] == pytest.approx(frac * (1 + w) / (1 + w * frac), rel=1e-4) and logs["recon"] > 2 * plain


def test_lam_evaluation_reports_usage_perplexity_and_baselines(expert_episodes):
    ev = lam.evaluate_lam(tiny_lam(), lam.make_pairs([e.frames for e in expert_episodes], K))
    assert 0 < ev["usage"] <= 1 and 1 <= ev["perplexity"] <= 4 + 1e-6
    assert ev["mse_copy"] > 0 and sum(ev["code_freq"]) == pytest.approx(1)


def test_code_meanings_average_the_true_motion_per_code():
    codes = np.array([0, 0, 1])
    chunks = np.array([[[1.0, 0, 0, 1]], [[0.0, 0, 0, 1]], [[-1.0, 0, 0, -1]]])
    rows = pipeline.code_meanings(codes, chunks, np.array([[0.1, 0, 0, 0], [0.3, 0, 0, 0], [-0.2, 0, 0, 0]]),
                                  dict(action=NAMES["action_names"], state=NAMES["state_names"]))
    assert rows[0]["count"] == 2 and rows[0]["mean_vx"] == 0.5 and rows[0]["delta_x"] == pytest.approx(0.2)
    assert rows[1]["mean_grip"] == -1


# --------------------------------------------------------------------------- the labelling stage's datasets

@pytest.fixture()
def checkpoints(tmp_path):
    idm.save_idm(tiny_idm(), tmp_path / "idm")
    lam.save_lam(tiny_lam(), tmp_path / "lam")
    return tmp_path / "idm", tmp_path / "lam"


def _dream_dataset(root, n=2, t=5, fps=10 / K, size=SIZE):
    """A small synthetic dreamed-video dataset: frames only, a dream's provenance in the meta."""
    rng = np.random.default_rng(0)
    eps = [Episode(frames=(rng.random((t, size, size, 3)) * 255).astype(np.uint8), task=f"push the block {i}",
                   meta=dict(prompt=f"push the block {i}", seed=i, model="wm_test", adapter="lora_test"))
              for i in range(n)]
    data.write_dataset(root, eps, fps=fps, robot_type="robot")
    return root


def test_dreamed_videos_become_tagged_labelled_lerobot_datasets(tmp_path, checkpoints):
    src = _dream_dataset(tmp_path / "dreams")
    out = tmp_path / "neural"
    summary = pipeline.label_dataset(src, out, *checkpoints, dreamed=True)
    assert summary["episodes"] == 2 and summary["mode"] == "strided" and summary["frames_per_s"] > 0
    assert data.validate_dataset(out) == []
    ds = data.Dataset(out)
    assert ds.fps == 2.5 and all(t.startswith("<DREAM> push the block") for t in ds.tasks)
    ep = ds.episode(1)
    assert ep.actions.shape == (5, K * 4) and ep.states.shape == (5, 4) and (ep.actions[-1] == 0).all()
    assert ds.info["features"]["action"]["names"][:5] == ["vx@0", "vy@0", "wz@0", "grip@0", "vx@1"]
    assert ep.meta["prompt"] == "push the block 1" and ep.meta["model"] == "wm_test" and ep.meta["adapter"] == "lora_test"
    assert ep.meta["labeller"]["idm"] == str(checkpoints[0]) and len(ep.meta["labeller"]["idm_sha256"]) == 12
    latent = ds.frames_table()[label.LATENT_KEY].to_numpy()  # a plain column: LeRobot's shape-[1] layout
    assert latent.dtype == np.float32 and ds.info["features"][label.LATENT_KEY]["shape"] == [1]
    assert ((latent >= 0) & (latent < 4)).sum() == 2 * 4 and (latent == -1).sum() == 2
    info = ds.info["dreamgen"]
    assert info["dreamed"] and info["action_chunk"] == K and info["latent_actions"]["codebook_size"] == 4


def test_real_videos_are_labelled_at_full_rate_and_tagged_relabel(tmp_path, checkpoints, expert_episodes):
    src = tmp_path / "real"
    data.write_dataset(src, expert_episodes, fps=10, robot_type="robot", state_names=list(NAMES["state_names"]),
                       action_names=list(NAMES["action_names"]))
    out = tmp_path / "relabelled"
    pipeline.label_dataset(src, out, checkpoints[0], None, dreamed=False, episodes=[0, 2])
    ds = data.Dataset(out)
    assert data.validate_dataset(out) == [] and ds.num_episodes == 2 and ds.fps == 10
    assert all(t.startswith("<RELABEL> ") for t in ds.tasks)
    assert ds.episode(1).actions.shape == (len(expert_episodes[2]), 4)
    assert ds.episode(1).meta["source_episode"] == 2 and label.LATENT_KEY not in ds.info["features"]


def test_a_labeller_for_another_embodiment_or_rate_stops_the_stage(tmp_path, checkpoints):
    with pytest.raises(label.LabelError, match="at 5 fps"):
        pipeline.label_dataset(_dream_dataset(tmp_path / "d5", fps=5), tmp_path / "o", *checkpoints, dreamed=True)
    other = tmp_path / "idm_b"
    idm.save_idm(tiny_idm(embodiment="robot_b"), other)
    src = tmp_path / "d"
    _dream_dataset(src)
    meta = src / "meta" / "episodes_meta.jsonl"
    meta.write_text("".join(json.dumps({"episode_index": i, "meta": {"embodiment": "robot"}}) + "\n" for i in range(2)))
    with pytest.raises(label.LabelError, match="trained for 'robot_b'"):
        pipeline.label_dataset(src, tmp_path / "o", other, None, dreamed=True)
    with pytest.raises(label.LabelError, match="embodiment 'robot'"):  # the dataset's robot_type speaks for it
        pipeline.label_dataset(_dream_dataset(tmp_path / "d2"), tmp_path / "o", other, None, dreamed=True)
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_real_videos_labelled_as_dreams_keep_their_source_and_the_dreams_format(tmp_path, checkpoints,
                                                                                 expert_episodes):
    """The -idm policy arms' data: every real episode (64 px, control rate) strided and resized
    like a dream, chunked labels, predicted states, and the source episode and behaviour kept."""
    big = [Episode(frames=np.repeat(np.repeat(e.frames, 2, 1), 2, 2), task=e.task, states=e.states,
                   actions=e.actions, meta=e.meta) for e in expert_episodes]  # the real data's 64 px
    src, out = tmp_path / "real", tmp_path / "idm_real"
    data.write_dataset(src, big, fps=10, robot_type="robot", state_names=list(NAMES["state_names"]),
                       action_names=list(NAMES["action_names"]))
    summary = pipeline.label_real_as_dreams(src, out, *checkpoints, seed=3)
    assert summary["episodes"] == 3 and summary["mode"] == "strided" and data.validate_dataset(out) == []
    ds = data.Dataset(out)
    assert ds.fps == 2.5 and ds.info["dreamgen"]["action_chunk"] == K and not ds.info["dreamgen"]["dreamed"]
    assert ds.info["features"]["action"]["names"][:5] == ["vx@0", "vy@0", "wz@0", "grip@0", "vx@1"]
    for i, real in enumerate(expert_episodes):
        ep = ds.episode(i)
        n = len(range(0, len(real), K))
        assert ep.frames.shape == (n, SIZE, SIZE, 3) and ep.actions.shape == (n, K * 4) and ep.states.shape == (n, 4)
        assert ep.meta["source_episode"] == i and ep.meta["source_meta"]["behaviour"] == real.meta["behaviour"]
        assert ep.task == f"{label.RELABEL_TAG} {real.task}"
    # the same labels as heldout_strided gives the same episode (noise seed = seed + source episode)
    pipeline.label_dataset(src, tmp_path / "h", checkpoints[0], None, dreamed=False, episodes=[2], seed=3,
                           force_mode="strided")
    np.testing.assert_allclose(data.Dataset(tmp_path / "h").episode(0).actions, ds.episode(2).actions, atol=1e-6)


def test_a_longer_constant_lr_run_extends_a_shorter_one(expert_episodes, tmp_path):
    """Raising `steps` resumes (same folder identity, same weights as one long run); a cosine run's
    length names it; a checkpoint already past `steps` is refused with the fix in the message."""
    w = idm.make_windows(expert_episodes, K)
    short, long = (TrainConfig(steps=n, lr=3e-3, seed=0, ckpt_every=2, log_every=2) for n in (4, 8))
    assert short.identity() == long.identity()
    cos = [TrainConfig(steps=n, lr=3e-3, seed=0, ckpt_every=2, schedule="cosine", warmup=1) for n in (4, 8)]
    assert cos[0].identity() != cos[1].identity()
    full = tiny_idm()
    train(full, idm.batch_sampler(w, 4), long, tmp_path / "a")
    train(tiny_idm(), idm.batch_sampler(w, 4), short, tmp_path / "b")
    extended = tiny_idm()
    res = train(extended, idm.batch_sampler(w, 4), long, tmp_path / "b")
    assert res.resumed_from == 4 and res.steps_done == 8
    for (n, p), q in zip(full.state_dict().items(), extended.state_dict().values()):
        torch.testing.assert_close(p, q, msg=f"{n} differs after extending")
    with pytest.raises(ValueError, match="past steps=4"):
        train(tiny_idm(), idm.batch_sampler(w, 4), short, tmp_path / "b")


def test_real_videos_labelled_as_dreams_replay_from_their_own_reset(tmp_path, checkpoints, expert_episodes):
    """The labeller's ceiling at the dreams' spacing (label.json real_replay): relabelled real
    episodes replay from the seed they were recorded from, as dreams do from theirs."""
    src, out = tmp_path / "real", tmp_path / "idm_real"
    data.write_dataset(src, expert_episodes, fps=10, robot_type="robot", state_names=list(NAMES["state_names"]),
                       action_names=list(NAMES["action_names"]))
    pipeline.label_real_as_dreams(src, out, *checkpoints, seed=3)
    rows = label.replay_dreams(out, WorldConfig(SIZE, 1, 80))
    assert [r["split"] for r in rows] == ["real"] * 3
    assert [r["behaviour"] for r in rows] == [e.meta["behaviour"] for e in expert_episodes]
    assert all(isinstance(r["success"], bool) for r in rows) and any(r["expert_in_span"] for r in rows)
    with pytest.raises(label.LabelError, match="strided labels"):
        pipeline.label_dataset(src, tmp_path / "full", checkpoints[0], None, dreamed=False)
        label.replay_dreams(tmp_path / "full", WorldConfig(SIZE, 1, 80))


def test_the_expert_in_span_of_a_real_video_is_its_own_recorded_demo(tmp_path, checkpoints):
    """expert_in_span replays the expert at the noise the episode was recorded with (meta
    `noise`), so for real videos it is the recorded demo itself over the clip's span."""
    from dreamgen.world import TabletopEnv, run_expert_episode

    env = TabletopEnv(image_size=SIZE, supersample=1, max_steps=80)
    eps = [run_expert_episode(env, seed=s, embodiment="robot", behaviour=b, environment=0, noise=0.3)
           for s, b in enumerate(["pick_place", "push"])]
    src, out = tmp_path / "real", tmp_path / "idm_real"
    data.write_dataset(src, eps, fps=10, robot_type="robot", state_names=list(NAMES["state_names"]),
                       action_names=list(NAMES["action_names"]))
    pipeline.label_real_as_dreams(src, out, *checkpoints, seed=3)
    world = WorldConfig(SIZE, 1, 80)
    rows = label.replay_dreams(out, world)
    ds = data.Dataset(out)
    for i, (r, e) in enumerate(zip(rows, eps)):
        span = (ds.episode(i).actions.shape[0] - 1) * (ds.episode(i).actions.shape[1] // e.actions.shape[1])
        assert r["expert_in_span"] == label.replay(e.meta, e.actions[:span], world)["success"]
