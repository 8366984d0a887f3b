"""The policies' frozen state backbone ("state" encoder) and the "keypoints" encoder."""
import numpy as np
import pytest
import torch

from dreamgen.bench import nets, state as ST
from dreamgen.policy import backbone as B, pipeline, windows as W
from dreamgen.policy.config import PolicyConfig, PolicyError, save_policy
from dreamgen.policy.models import build, load_policy
from dreamgen.training import TrainConfig

from test_policy import ACT, STATE, fixed_batch, neural_dataset, real_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def estimator_dir(tmp_path_factory):
    torch.manual_seed(0)
    return str(nets.save(nets.StateEstimator(nets.EstimatorConfig(16, 8, 32)), tmp_path_factory.mktemp("est")))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy_data_backbone")
    real = real_dataset(root / "real")
    neural = neural_dataset(root / "neural")
    return real, neural


def state_cfg(estimator_dir, family="gr00t", **kw):
    return PolicyConfig(family=family, embodiment="robot", action_names=ACT, state_names=STATE, encoder="state",
                        backbone=B.estimator_config(estimator_dir),
                        **dict(dict(image_size=16, chunk=8, width=16, layers=1, inference_steps=4), **kw))


def test_roles_name_the_object_first_and_the_target_later():
    r = B.roles(["put the red cube in the blue bowl", "open the drawer"])
    red, blue = ST.COLOUR_NAMES.index("red"), ST.COLOUR_NAMES.index("blue")
    assert r.shape == (2, B.NC, 2)
    assert r[0, red].tolist() == [1, 0] and r[0, blue].tolist() == [0, 1] and r[0].sum() == 2
    assert r[1].sum() == 0


def test_slot_inputs_are_relative_to_the_gripper_and_gated_by_presence():
    est = torch.zeros(1, ST.DIM)
    red = ST.COLOUR_NAMES.index("red")
    est[0, ST.idx("red", "obj")] = 1.0
    est[0, ST.idx("red", "obj_x")], est[0, ST.idx("red", "obj_y")] = 0.30, 0.70
    est[0, ST.idx("blue", "obj_x")] = 0.9          # an absent object's position: gated away
    est[0, ST.INDEX["ee_x"]], est[0, ST.INDEX["ee_y"]] = 0.5, 0.5
    state = torch.tensor([[-0.6, 0.2, 0.0, 1.0]])  # the proprioceptive gripper at (0.2, 0.6) in state units
    role = torch.from_numpy(B.roles(["put the red cube in the blue bowl"]))
    for proprio, ee in ((True, (0.2, 0.6)), (False, (0.5, 0.5))):
        slots, glob = B.slot_inputs(est, state, torch.ones(1, 1), role, proprio)
        assert slots.shape == (1, B.NC, B.SLOT_FEATURES) and glob.shape == (1, B.N_GLOBAL)
        rel = slots[0, red, B.PC:B.PC + 2]
        assert torch.allclose(rel, torch.tensor([0.30 - ee[0], 0.70 - ee[1]]) * B.REL_SCALE, atol=1e-5)
    blue = ST.COLOUR_NAMES.index("blue")
    assert slots[0, blue, ST.PER_COLOUR.index("obj_x")] == 0
    # a masked state (neural data with masking) falls back to the estimated gripper
    slots_masked, _ = B.slot_inputs(est, state, torch.zeros(1, 1), role, True)
    assert torch.allclose(slots_masked, B.slot_inputs(est, state, torch.ones(1, 1), role, False)[0])


@pytest.mark.parametrize("family", ["dp", "gr00t"])
def test_state_policy_round_trips_and_reads_the_image_like_the_cache(family, estimator_dir, tmp_path):
    model = build(state_cfg(estimator_dir, family))
    model.obs.estimator.load_state_dict(B.load_estimator(estimator_dir).state_dict())
    b = fixed_batch()
    b["roles"] = torch.from_numpy(B.roles(["put the red cube in the blue bowl"] * 4))
    images = (b["image"].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    b["image"] = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    cached = dict(b, features=torch.from_numpy(B.estimate(model.obs.estimator, images)))
    assert torch.allclose(model.obs(b), model.obs(cached), atol=1e-5)
    save_policy(model, tmp_path)
    again = load_policy(tmp_path)
    assert torch.equal(model.eval().predict(b, torch.Generator().manual_seed(1)),
                       again.predict(b, torch.Generator().manual_seed(1)))
    assert not any(p.requires_grad for p in again.obs.estimator.parameters())


def test_state_encoder_refuses_missing_pieces(estimator_dir, tmp_path):
    with pytest.raises(PolicyError, match="estimator's config"):
        build(PolicyConfig(family="gr00t", embodiment="robot", action_names=ACT, state_names=STATE, encoder="state",
                           image_size=16))
    with pytest.raises(PolicyError, match="bench.image_size"):
        build(state_cfg(estimator_dir, image_size=32))
    with pytest.raises(PolicyError, match="no state estimator"):
        B.load_estimator(tmp_path / "nothing")
    with pytest.raises(PolicyError, match="roles"):
        build(state_cfg(estimator_dir)).obs(fixed_batch())


def test_state_arm_caches_features_and_learns_without_training_the_backbone(datasets, estimator_dir, tmp_path):
    real, neural = datasets
    arm = W.parse_arm("gr00t-r2-n4-s0")
    cfg = pipeline.policy_config(arm, str(real), str(neural), estimator_dir, image_size=16, encoder="state", chunk=8,
                                 width=16, layers=1)
    d = pipeline.prepare_arm(arm, cfg, str(real), str(neural), 0.5, False)
    frozen = {k: v.clone() for k, v in B.load_estimator(estimator_dir).state_dict().items()}
    model, result, _ = pipeline.fit_policy(cfg, d, TrainConfig(steps=80, lr=3e-3, seed=0, ckpt_every=100), 16,
                                           tmp_path, estimator_dir=estimator_dir)
    assert d.real.features.shape == (len(d.real), ST.DIM) and d.neural.features.shape == (len(d.neural), ST.DIM)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    for k, v in model.obs.estimator.state_dict().items():
        assert torch.equal(v, frozen[k]), k
    idx = np.arange(4)
    batch = W.window_batch(d.real, d.real_text, idx)
    assert batch["features"].shape == (4, ST.DIM) and batch["roles"].shape == (4, B.NC, 2)


def test_state_arm_without_estimator_dir_is_refused(datasets):
    real, neural = datasets
    with pytest.raises(PolicyError, match="estimator_dir"):
        pipeline.policy_config(W.parse_arm("gr00t-r2-n0-s0"), str(real), str(neural), image_size=16, encoder="state")


def test_keypoint_encoder_adds_tokens_that_follow_the_gripper():
    cfg = PolicyConfig(family="gr00t", embodiment="robot", action_names=ACT, state_names=STATE, encoder="keypoints",
                       keypoints=4, image_size=16, chunk=8, width=16, layers=1)
    model = build(cfg)
    b = fixed_batch()
    tokens = model.obs(b)
    assert tokens.shape == (4, (16 // 8) ** 2 + 4 + 2, 16)
    moved = dict(b, state=b["state"] + torch.tensor([0.5, 0.0, 0.0, 0.0]))
    n = (16 // 8) ** 2
    assert not torch.allclose(model.obs(moved)[:, n:n + 4], tokens[:, n:n + 4])   # relative positions changed
    assert torch.allclose(model.obs(moved)[:, :n], tokens[:, :n])                  # the patches did not
