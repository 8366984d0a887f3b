"""Policies: arms, windows, the co-training sampler, state masking, bad input, learning."""
import numpy as np
import pytest
import torch

from dreamgen import data
from dreamgen.actions.label import add_vector_column
from dreamgen.episode import Episode
from dreamgen.policy import pipeline, windows as W
from dreamgen.policy.config import PolicyConfig, PolicyError, save_policy
from dreamgen.policy.models import build, load_policy
from dreamgen.training import TrainConfig

torch.set_num_threads(1)
ACT, STATE = ("vx", "vy", "wz", "grip"), ("x", "y", "yaw", "opening")
BEHAVIOURS = ["pick_place", "push", "rotate"]


def episode(t, rng, behaviour, size=32, task="push the block", a_dim=4):
    return Episode(frames=rng.integers(0, 255, (t, size, size, 3), dtype=np.uint8), task=task,
                   states=rng.uniform(-1, 1, (t, 4)).astype(np.float32),
                   actions=rng.uniform(-1, 1, (t, a_dim)).astype(np.float32),
                   meta=dict(embodiment="robot", behaviour=behaviour))


def real_dataset(root, per_behaviour=2, t=12, robot="robot", action_names=ACT):
    rng = np.random.default_rng(0)
    eps = [episode(t, rng, b, a_dim=len(action_names)) for b in BEHAVIOURS for _ in range(per_behaviour)]
    data.write_dataset(root, eps, fps=10, robot_type=robot, state_names=list(STATE), action_names=list(action_names))
    return root


def neural_dataset(root, n=6, t=5, k=4):
    """Strided neural trajectories as the label stage writes them (actions: flattened k-chunks)."""
    rng = np.random.default_rng(1)
    eps = []
    for i in range(n):
        ep = episode(t, rng, BEHAVIOURS[i % 3], size=16, task="<DREAM> push the block", a_dim=4 * k)
        ep.actions[-1] = 0  # the final no-op row
        ep.meta = dict(source_meta=dict(behaviour=BEHAVIOURS[i % 3]))
        eps.append(ep)
    names = [f"{a}@{j}" for j in range(k) for a in ACT]
    data.write_dataset(root, eps, fps=2.5, robot_type="robot", state_names=list(STATE), action_names=names,
                       extra_info=dict(neural=True, action_chunk=k, control_fps=10, label_mode="strided",
                                       latent_actions=dict(key=W.LATENT_KEY, codebook_size=4, pair_gap_frames=1)))
    # latent codes as the label stage adds them: one per row, -1 on the last (no next frame)
    add_vector_column(root, W.LATENT_KEY, [np.r_[np.arange(t - 1) % 4, -1].astype(np.float32)[:, None]
                                           for _ in range(n)], ["code"])
    return root


def tiny_cfg(family="dp", **kw):
    return PolicyConfig(family=family, embodiment="robot", action_names=ACT, state_names=STATE,
                        **dict(dict(image_size=16, chunk=8, width=16, layers=1, inference_steps=4), **kw))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy_data")
    return real_dataset(root / "real"), neural_dataset(root / "neural")


# --------------------------------------------------------------------------- arms and checks

def test_arm_names_parse_and_fix_the_ratio():
    a = W.parse_arm("dp-r10-n100-s2")
    assert (a.family, a.real_per_behaviour, a.neural, a.seed) == ("dp", 10, 100, 2)
    assert a.ratio(0.5) == 0.5
    assert W.parse_arm("gr00t-r10-n0-s0").ratio(0.5) == 0.0   # no neural data: all real
    assert W.parse_arm("dp-r0-n50-s0").ratio(0.5) == 1.0      # neural only
    lam = W.parse_arm("gr00t-r3-n50-s1-lam")
    assert lam.latent and lam.ratio(0.5) == 0.0 and not a.latent  # neural data only pretrains
    for bad in ("dp-10-100", "xx-r1-n1-s0", "dp-r0-n0-s0", "dp-r0-n5-s0-lam", "dp-r3-n0-s0-lam"):
        with pytest.raises(PolicyError):
            W.parse_arm(bad)


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_ratio_outside_unit_interval_is_refused(ratio):
    with pytest.raises(PolicyError, match=r"ratio must be in \[0, 1\]"):
        W.parse_arm("dp-r1-n1-s0").ratio(ratio)


def test_instruction_tags_are_stripped():
    assert W.instruction("<DREAM> push the block") == W.instruction("<RELABEL>  push the block") == "push the block"


def test_spread_select_per_behaviour_and_round_robin():
    beh = ["a"] * 5 + ["b"] * 5 + ["c"] * 2
    assert W.spread_select(beh, per_behaviour=2) == [0, 1, 5, 6, 10, 11]
    assert sorted(beh[i] for i in W.spread_select(beh, total=6)) == ["a", "a", "b", "b", "c", "c"]
    with pytest.raises(PolicyError, match="only"):
        W.spread_select(beh, per_behaviour=3)
    with pytest.raises(PolicyError, match="13 neural trajectories asked"):
        W.spread_select(beh, total=13)


# --------------------------------------------------------------------------- windows

def test_real_windows_pad_past_the_end_with_the_no_op(datasets):
    rng = np.random.default_rng(0)
    ep = episode(6, rng, "push")
    im, st, ac, am = W.episode_windows(ep, chunk=4, action_chunk=1, image_size=16)
    assert im.shape == (6, 16, 16, 3) and st.shape == (6, 4) and ac.shape == (6, 4, 4) and am.all()
    np.testing.assert_array_equal(ac[2], ep.actions[2:6])
    np.testing.assert_array_equal(ac[4, :2], ep.actions[4:6]) and np.testing.assert_array_equal(ac[4, 2:], 0)


def test_neural_windows_unflatten_rows_and_mask_what_the_dream_did_not_label():
    rng = np.random.default_rng(0)
    ep = episode(5, rng, "push", size=16, a_dim=16)       # 5 frames, 4 labelled rows of 4 actions
    im, st, ac, am = W.episode_windows(ep, chunk=8, action_chunk=4, image_size=16)
    assert ac.shape == (4, 8, 4)                           # no window at the last frame
    np.testing.assert_array_equal(ac[1, :4], ep.actions[1].reshape(4, 4))
    np.testing.assert_array_equal(ac[1, 4:], ep.actions[2].reshape(4, 4))
    assert am[2].tolist() == [1] * 8 and am[3].tolist() == [1] * 4 + [0] * 4


def test_load_windows_masks_neural_state_when_asked(datasets):
    _, neural = datasets
    layout = W.dataset_layout(data.Dataset(neural))
    kept = W.load_windows(str(neural), [0, 1], chunk=8, image_size=16, layout=layout)
    masked = W.load_windows(str(neural), [0, 1], chunk=8, image_size=16, layout=layout, mask_state=True)
    assert kept.state_mask.min() == 1 and np.abs(kept.states).sum() > 0
    assert masked.state_mask.max() == 0 and np.abs(masked.states).sum() == 0
    assert masked.texts == ["push the block"]


def make_windows(n, value, chunk=8):
    return W.Windows(np.full((n, 16, 16, 3), value, np.uint8), np.zeros(n, int), ["t"],
                     np.zeros((n, 4), np.float32), np.ones(n, np.float32),
                     np.full((n, chunk, 4), value / 255, np.float32), np.ones((n, chunk), np.float32))


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 1.0])
def test_sampler_mixes_at_the_ratio(ratio):
    real, neural = make_windows(50, 0), make_windows(20, 255)
    emb = np.zeros((1, 384), np.float32)
    sample = W.mix_sampler(real, neural, ratio, 32, emb, emb, aug=False)
    shares = []
    for step in range(200):
        b = sample(np.random.default_rng([0, step]), step)
        is_neural = b["actions"][:, 0, 0] > 0.5                 # neural windows carry 1s, real 0s
        assert torch.equal(is_neural, b["neural"].bool()) and b["image"].shape == (32, 3, 16, 16)
        shares.append(is_neural.float().mean().item())
    assert abs(np.mean(shares) - ratio) < 0.02
    if ratio in (0.0, 1.0):
        assert set(shares) == {ratio}


def test_sampler_refuses_a_missing_source():
    emb = np.zeros((1, 384), np.float32)
    with pytest.raises(PolicyError, match="no"):
        W.mix_sampler(make_windows(5, 0), None, 0.5, 8, emb, None)
    with pytest.raises(PolicyError, match=r"\[0, 1\]"):
        W.mix_sampler(make_windows(5, 0), make_windows(5, 255), 1.2, 8, emb, emb)


# --------------------------------------------------------------------------- bad input, before training

def test_prepare_arm_builds_both_sources(datasets):
    real, neural = datasets
    arm = W.parse_arm("dp-r1-n4-s0")
    d = pipeline.prepare_arm(arm, tiny_cfg(), str(real), str(neural), 0.5, mask_neural_state=True)
    assert len(d.real_episodes) == 3 and len(d.neural_episodes) == 4 and d.ratio == 0.5
    assert len(d.real) == 3 * 12 and len(d.neural) == 4 * 4
    assert d.real_text.shape == (1, 384) and d.neural.state_mask.max() == 0


def test_too_many_neural_trajectories_is_an_error_before_training(datasets):
    real, neural = datasets
    with pytest.raises(PolicyError, match="7 neural trajectories asked"):
        pipeline.prepare_arm(W.parse_arm("dp-r1-n7-s0"), tiny_cfg(), str(real), str(neural), 0.5, False)


def test_dataset_whose_action_width_does_not_fit_is_refused(tmp_path, datasets):
    _, neural = datasets
    bad = real_dataset(tmp_path / "five", action_names=("vx", "vy", "wz", "grip", "extra"))
    with pytest.raises(PolicyError, match=r"width 5.*width 4"):
        pipeline.prepare_arm(W.parse_arm("dp-r1-n0-s0"), tiny_cfg(), str(bad), str(neural), 0.5, False)
    with pytest.raises(PolicyError, match="do not tile a chunk of 6"):  # rows of 4 actions cannot make 6
        W.check_layout(W.dataset_layout(data.Dataset(neural)), ACT, STATE, "robot", 6, str(neural))


def test_dataset_of_another_embodiment_is_refused(tmp_path, datasets):
    other = real_dataset(tmp_path / "b", robot="robot_b")
    with pytest.raises(PolicyError, match="embodiment 'robot_b'"):
        pipeline.prepare_arm(W.parse_arm("dp-r1-n0-s0"), tiny_cfg(), str(other), str(datasets[1]), 0.5, False)


# --------------------------------------------------------------------------- models

def fixed_batch(chunk=8):
    g = torch.Generator().manual_seed(0)
    return {"image": torch.rand(4, 3, 16, 16, generator=g), "text": torch.randn(4, 384, generator=g),
            "state": torch.rand(4, 4, generator=g) * 2 - 1, "state_mask": torch.ones(4, 1),
            "actions": torch.rand(4, chunk, 4, generator=g) * 1.6 - 0.8}


@pytest.mark.parametrize("family", ["dp", "gr00t"])
def test_shapes_and_masked_state_changes_the_input(family):
    model = build(tiny_cfg(family))
    b = fixed_batch()
    tokens = model.obs(b)
    assert tokens.shape == (4, (16 // 8) ** 2 + 2, 16)
    masked = dict(b, state_mask=torch.zeros(4, 1))
    assert not torch.allclose(model.obs(masked)[:, -1], tokens[:, -1])      # the flag itself is seen
    assert torch.allclose(model.obs(dict(masked, state=b["state"] * 0))[:, -1], model.obs(masked)[:, -1])
    out = model.predict(b, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 8, 4) and out.abs().max() <= 1


@pytest.mark.parametrize("family", ["dp", "gr00t"])
def test_tiny_policy_overfits_a_fixed_chunk(family, tmp_path):
    cfg = tiny_cfg(family, width=32, inference_steps=8)
    model = build(cfg)
    b = fixed_batch()
    before = ((model.predict(b, torch.Generator().manual_seed(0)) - b["actions"]) ** 2).mean().item()
    from dreamgen.training import train
    train(model, lambda rng, step: b, TrainConfig(steps=600, lr=3e-3, seed=0, ckpt_every=1000), tmp_path)
    after = ((model.predict(b, torch.Generator().manual_seed(0)) - b["actions"]) ** 2).mean().item()
    assert after < 0.05 and after < before / 8, (before, after)


def test_save_load_round_trip_predicts_the_same(tmp_path):
    model = build(tiny_cfg("gr00t", extra=dict(arm="gr00t-r1-n0-s0")))
    save_policy(model, tmp_path)
    again = load_policy(tmp_path)
    b = fixed_batch()
    assert again.cfg == model.cfg
    assert torch.equal(model.predict(b, torch.Generator().manual_seed(3)), again.predict(b, torch.Generator().manual_seed(3)))


def test_config_refuses_bad_sizes():
    with pytest.raises(PolicyError):
        tiny_cfg(image_size=20)
    with pytest.raises(PolicyError):
        tiny_cfg(chunk=6)


# --------------------------------------------------------------------------- latent-action path (R7)

def test_window_codes_follow_the_rows():
    codes = np.array([3, 1, 2, -1])
    np.testing.assert_array_equal(W.window_codes(codes, 3, 2), [[3, 1], [1, 2], [2, -1]])


def test_latent_arm_pretrains_on_codes_then_fits_real_actions(datasets, tmp_path):
    real, neural = datasets
    arm = W.parse_arm("gr00t-r1-n4-s0-lam")
    cfg = pipeline.policy_config(arm, str(real), str(neural), image_size=16, chunk=8, width=16, layers=1)
    assert (cfg.latent_codes, cfg.latent_rows) == (4, 2)
    d = pipeline.prepare_arm(arm, cfg, str(real), str(neural), 0.5, False)
    assert d.latent and d.ratio == 0.0 and d.neural.codes.shape == (len(d.neural), 2)
    assert d.neural.codes.max() == 3 and d.neural.codes.min() == -1
    model, result, pre = pipeline.fit_policy(cfg, d, TrainConfig(steps=60, lr=3e-3, seed=0, ckpt_every=100), 16,
                                             tmp_path, latent_steps=60)
    assert pre.steps_done == 60 and result.steps_done == 60
    assert pre.history[-1]["loss"] < pre.history[0]["loss"]   # the codes are learnable (they follow the row)
    assert (tmp_path / "latent_pretrain" / "train_state.pt").is_file()


def test_latent_arm_without_latent_labels_is_refused(datasets, tmp_path):
    real, _ = datasets
    plain = tmp_path / "plain"
    rng = np.random.default_rng(0)
    eps = [episode(5, rng, "push", size=16, a_dim=16) for _ in range(2)]
    data.write_dataset(plain, eps, fps=2.5, robot_type="robot", state_names=list(STATE),
                       action_names=[f"{a}@{j}" for j in range(4) for a in ACT], extra_info=dict(action_chunk=4))
    with pytest.raises(PolicyError, match="no latent actions"):
        pipeline.policy_config(W.parse_arm("dp-r1-n2-s0-lam"), str(real), str(plain), image_size=16, chunk=8)


def test_runner_refuses_an_arm_not_in_the_arms_list(root, tmp_path, capsys):
    """`python -m dreamgen.run train_policy --arm X` (the DVC foreach command) checks X first."""
    import shutil

    from dreamgen.run import run_stage

    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert run_stage("train_policy", tmp_path / "params.yaml", tmp_path, arm="dp-r9-n9-s9") == 2
    assert "arm 'dp-r9-n9-s9' is not in train_policy.arms" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


# --------------------------------------------------------------------------- -idm: IDM-labelled real demos

def test_idm_suffix_parses_and_bad_combinations_are_refused():
    a = W.parse_arm("gr00t-r10-n0-s1-idm")
    assert a.idm and not a.latent and a.real_per_behaviour == 10 and a.seed == 1 and a.ratio(0.5) == 0.0
    assert a.config == "gr00t-r10-n0-idm" and W.parse_arm("gr00t-r10-n0-s1").config == "gr00t-r10-n0"
    assert W.parse_arm("dp-r3-n50-s0-idm").ratio(0.5) == 0.5   # IDM-labelled real + neural, co-trained
    for bad, words in [("gr00t-r3-n50-s0-lam-idm", "-lam and -idm together"),
                       ("gr00t-r3-n50-s0-idm-lam", "together"), ("gr00t-r0-n50-s0-idm", "r is 0"),
                       ("gr00t-r3-n0-s0-foo", "unknown suffix '-foo'")]:
        with pytest.raises(PolicyError, match=words):
            W.parse_arm(bad)


def test_labelled_indices_follow_the_source_episodes():
    metas = [dict(source_dataset="/d/real", source_episode=i, source_meta=dict(behaviour="push")) for i in (4, 0, 2)]
    assert W.labelled_indices(metas, [0, 2, 4], "/d/real", "idm") == [1, 2, 0]
    with pytest.raises(PolicyError, match=r"episodes \[3\] .* not labelled"):
        W.labelled_indices(metas, [0, 3], "/d/real", "idm")
    with pytest.raises(PolicyError, match="not from the arm's real dataset /d/other"):
        W.labelled_indices(metas, [0], "/d/other", "idm")


@pytest.fixture(scope="module")
def idm_real(datasets, tmp_path_factory):
    """The real test dataset labelled by a tiny untrained IDM, as the label stage does it."""
    from dreamgen.actions import idm, pipeline as label_pipeline

    root = tmp_path_factory.mktemp("idm_real")
    torch.manual_seed(0)
    model = idm.InverseDynamics(idm.IDMConfig(embodiment="robot", image_size=16, frame_stride=4, control_fps=10,
                                              width=16, flow_steps=2, action_names=ACT, state_names=STATE))
    idm.save_idm(model.eval(), root / "idm")
    # the IDM takes 16 px, so the 32 px test frames are resized for it, as the real 64 px ones are
    label_pipeline.label_real_as_dreams(str(datasets[0]), root / "labels", root / "idm")
    return root / "labels"


def test_idm_arm_trains_on_the_labels_of_the_same_real_episodes(datasets, idm_real):
    real, neural = datasets
    gt = pipeline.prepare_arm(W.parse_arm("dp-r1-n0-s0"), tiny_cfg(), str(real), str(neural), 0.5, False)
    d = pipeline.prepare_arm(W.parse_arm("dp-r1-n0-s0-idm"), tiny_cfg(), str(real), str(neural), 0.5, False,
                             idm_real_path=str(idm_real))
    assert d.real_episodes == gt.real_episodes == [0, 2, 4] and d.ratio == 0.0 and d.neural is None
    labels = data.Dataset(idm_real)
    assert [labels.episodes_meta[j]["source_episode"] for j in d.idm_episodes] == d.real_episodes
    # 12 control steps strided by 4 -> 3 frames -> 2 windows per episode, each chunk 2 labelled rows of 4 actions
    assert len(d.real) == 3 * 2 and d.real.images.shape[1:] == (16, 16, 3)
    first = labels.episode(d.idm_episodes[0])
    np.testing.assert_allclose(d.real.actions[0][:4], first.actions[0].reshape(4, 4), atol=1e-6)
    np.testing.assert_allclose(d.real.states[0], first.states[0], atol=1e-6)
    assert not np.allclose(d.real.actions[0][:4], gt.real.actions[0][:4])  # IDM labels, not the true actions
    assert d.real.action_mask[0].tolist() == [1] * 8 and d.real.action_mask[1].tolist() == [1] * 4 + [0] * 4
    assert d.real.texts == gt.real.texts == ["push the block"]  # the <RELABEL> tag is stripped
    masked = pipeline.prepare_arm(W.parse_arm("dp-r1-n2-s0-idm"), tiny_cfg(), str(real), str(neural), 0.5, True,
                                  idm_real_path=str(idm_real))
    assert masked.real.state_mask.max() == 0 and masked.ratio == 0.5 and len(masked.neural_episodes) == 2


def test_idm_arm_without_or_with_foreign_labels_is_refused(datasets, idm_real, tmp_path):
    real, neural = datasets
    arm = W.parse_arm("dp-r1-n0-s0-idm")
    with pytest.raises(PolicyError, match="train_policy.idm_real_dataset_path"):
        pipeline.prepare_arm(arm, tiny_cfg(), str(real), str(neural), 0.5, False, idm_real_path=str(tmp_path / "no"))
    other = real_dataset(tmp_path / "other")
    with pytest.raises(PolicyError, match="label.heldout_dataset_path"):
        pipeline.prepare_arm(arm, tiny_cfg(), str(other), str(neural), 0.5, False, idm_real_path=str(idm_real))
    from dreamgen.actions import pipeline as label_pipeline

    label_pipeline.label_dataset(str(real), tmp_path / "part", idm_real.parent / "idm", None, dreamed=False,
                                 episodes=[0, 1], force_mode="strided")
    with pytest.raises(PolicyError, match=r"episodes \[2, 4\] .* not labelled"):
        pipeline.prepare_arm(arm, tiny_cfg(), str(real), str(neural), 0.5, False, idm_real_path=str(tmp_path / "part"))


def test_policy_config_does_not_import_the_models():
    """config -> models was an import circle (models imports config); the config stays model-free."""
    import subprocess
    import sys

    code = "import sys, dreamgen.policy.config; assert 'dreamgen.policy.models' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    import ast
    import inspect

    import dreamgen.policy.config as config
    names = {a.name for n in ast.walk(ast.parse(inspect.getsource(config))) if isinstance(n, ast.ImportFrom)
             and n.module and n.module.startswith("dreamgen") for a in n.names}
    assert not names & {"DiffusionPolicy", "FlowPolicy", "build", "load_policy"}
