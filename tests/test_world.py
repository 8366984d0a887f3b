"""Tests for the simulated tabletop world (dreamgen.world)."""
import re
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from dreamgen.episode import Episode
from dreamgen.world import (BEHAVIOURS, EMBODIMENTS, ENVIRONMENT_NAMES, ENVIRONMENTS, ROBOT, ROBOT_B,
                            WEB_EMBODIMENTS, TabletopEnv, can_perform, instruction_templates, run_expert_episode)

EMBODIMENT_WORDS = re.compile(r"\b(robot|robots|hand|hands|arm|arms|gripper|claw|finger|fingers|human|suction)\b", re.I)


def _reset(env, seed, **options):
    return env.reset(seed=seed, options=options)


def test_catalogue_sizes():
    assert len(BEHAVIOURS) >= 10 and len(set(BEHAVIOURS)) == len(BEHAVIOURS)
    assert len(WEB_EMBODIMENTS) >= 6
    assert set(EMBODIMENTS) == {ROBOT, ROBOT_B, *WEB_EMBODIMENTS}
    assert len(ENVIRONMENTS) >= 8 and len(ENVIRONMENT_NAMES) == len(ENVIRONMENTS)
    assert EMBODIMENTS[ROBOT].kind == "robot" and all(EMBODIMENTS[w].kind == "web" for w in WEB_EMBODIMENTS)
    assert all(can_perform(e, b) for e in EMBODIMENTS for b in BEHAVIOURS)
    assert not can_perform("nobody", BEHAVIOURS[0])


def test_reset_is_deterministic_and_seed_dependent():
    env = TabletopEnv()
    opts = dict(embodiment=ROBOT, behaviour="pick_place", environment=3)
    a, info_a = _reset(env, 5, **opts)
    frames_a = [env.step(env.action_space.sample() * 0 + [0.5, -0.3, 0.0, 1.0])[0]["image"] for _ in range(3)]
    b, info_b = _reset(env, 5, **opts)
    frames_b = [env.step(env.action_space.sample() * 0 + [0.5, -0.3, 0.0, 1.0])[0]["image"] for _ in range(3)]
    assert info_a["instruction"] == info_b["instruction"]
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(np.stack(frames_a), np.stack(frames_b))
    c, _ = _reset(env, 6, **opts)
    assert not np.array_equal(a["image"], c["image"])
    # Missing options are drawn from the seed, reproducibly.
    (_, i1), (_, i2) = env.reset(seed=11), env.reset(seed=11)
    assert {k: i1[k] for k in ("embodiment", "behaviour", "environment", "instruction")} == \
           {k: i2[k] for k in ("embodiment", "behaviour", "environment", "instruction")}


def test_expert_episode_is_deterministic():
    env = TabletopEnv()
    e1 = run_expert_episode(env, 3, ROBOT, "push", 2)
    e2 = run_expert_episode(env, 3, ROBOT, "push", 2)
    np.testing.assert_array_equal(e1.frames, e2.frames)
    np.testing.assert_array_equal(e1.actions, e2.actions)


def test_a_retake_replays_the_same_reset_with_other_teleoperation_noise():
    from dreamgen.collect import WorldConfig, retake

    world = WorldConfig(image_size=32, supersample=2, max_steps=40)
    env = TabletopEnv(image_size=32, supersample=2, max_steps=40)
    recorded = [run_expert_episode(env, s, ROBOT, "pick_place", 0, noise=0.5, paraphrase=s == 2) for s in (1, 2)]
    from dreamgen.world.expert import NOISE_STREAM

    same = retake([e.meta for e in recorded], world, NOISE_STREAM)  # the recorded stream: the same episode
    other = retake([e.meta for e in recorded], world, NOISE_STREAM + 1)
    for rec, a, b in zip(recorded, same, other):
        np.testing.assert_array_equal(rec.frames, a.frames)
        assert b.task == rec.task and (b.frames[0] == rec.frames[0]).all()  # same reset, same instruction
        n = min(len(b.actions), len(rec.actions)) - 1
        assert not np.allclose(b.actions[:n], rec.actions[:n]), "another stream must give another take"
    with pytest.raises(ValueError, match="different noise levels"):
        retake([recorded[0].meta, dict(recorded[1].meta, noise=1.0)], world, 1)


@pytest.mark.parametrize("size,ss", [(64, 3), (32, 2)])
def test_image_shape_and_dtype(size, ss):
    env = TabletopEnv(image_size=size, supersample=ss)
    obs, _ = _reset(env, 0, embodiment="hand_medium", behaviour="stack", environment=1)
    assert obs["image"].shape == (size, size, 3) and obs["image"].dtype == np.uint8
    frame = env.render()
    assert frame.shape == (size, size, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # not a blank image


@pytest.mark.parametrize("embodiment", list(EMBODIMENTS))
def test_action_and_state_dims(embodiment):
    spec = EMBODIMENTS[embodiment]
    assert len(spec.action_names) == spec.action_dim and len(spec.state_names) == spec.state_dim
    env = TabletopEnv(image_size=32, supersample=1)
    obs, info = _reset(env, 1, embodiment=embodiment, behaviour="press_button", environment=0)
    assert info["embodiment"] == embodiment
    assert obs["state"].shape == (spec.state_dim,) and obs["state"].dtype == np.float32
    assert env.action_space.shape == (spec.action_dim,)
    action = env.expert_action(1.0, np.random.default_rng(0))
    assert action.shape == (spec.action_dim,) and np.all(np.abs(action) <= 1)
    obs, *_ = env.step(action)
    assert np.all(np.abs(obs["state"]) <= 1)


def test_robot_b_moves_through_its_joints():
    env = TabletopEnv(image_size=32, supersample=1)
    obs, _ = _reset(env, 0, embodiment=ROBOT_B, behaviour="wipe", environment=0)
    obs2, *_ = env.step(np.array([0.5, 0.0, 0.0, -1.0], np.float32))
    dq = obs2["state"][:3] - obs["state"][:3]
    assert dq[0] > 0 and abs(dq[1]) < 1e-6 and abs(dq[2]) < 1e-6


def test_instructions_never_name_the_embodiment():
    for b in BEHAVIOURS:
        for paraphrase in (False, True):
            for t in instruction_templates(b, paraphrase):
                assert not EMBODIMENT_WORDS.search(t), t
    env = TabletopEnv(image_size=32, supersample=1, render_obs=False)
    for seed in range(40):
        _, info = env.reset(seed=seed, options=dict(paraphrase=bool(seed % 2)))
        assert info["instruction"] and not EMBODIMENT_WORDS.search(info["instruction"]), info["instruction"]
        assert "{" not in info["instruction"]


def test_paraphrases_are_held_out():
    env = TabletopEnv(image_size=32, supersample=1, render_obs=False)
    for b in BEHAVIOURS:
        train, held = instruction_templates(b), instruction_templates(b, paraphrase=True)
        assert len(train) >= 2 and len(held) >= 1 and not set(train) & set(held)
        plain = {_reset(env, s, behaviour=b, environment=0)[1]["instruction"] for s in range(6)}
        para = {_reset(env, s, behaviour=b, environment=0, paraphrase=True)[1]["instruction"] for s in range(6)}
        assert not plain & para


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_success_false_at_reset_and_expert_succeeds(behaviour):
    env = TabletopEnv(image_size=32, supersample=1)
    for seed, embodiment in enumerate([ROBOT, ROBOT_B, WEB_EMBODIMENTS[0], WEB_EMBODIMENTS[-1]]):
        _, info = _reset(env, 100 + seed, embodiment=embodiment, behaviour=behaviour, environment=seed)
        assert not info["is_success"] and not env.is_success()
        ep = run_expert_episode(env, 100 + seed, embodiment, behaviour, seed, noise=1.0, render=False)
        assert ep.meta["success"], (behaviour, embodiment, seed)
        assert ep.meta["steps"] <= env.max_steps


def test_episode_layout():
    env = TabletopEnv()
    ep = run_expert_episode(env, 7, ROBOT, "press_button", 0, noise=1.0)
    assert isinstance(ep, Episode)
    t = len(ep)
    assert ep.frames.shape == (t, 64, 64, 3) and ep.actions.shape == (t, 4) and ep.states.shape == (t, 4)
    assert np.all(ep.actions[-1] == 0) and ep.meta["steps"] == t - 1
    assert ep.meta["success"] and ep.meta["steps"] < env.max_steps
    assert set(ep.meta) >= {"embodiment", "behaviour", "environment", "seed", "success", "steps", "noise"}
    assert ep.task and not EMBODIMENT_WORDS.search(ep.task)
    # It stops a couple of steps after success: replaying shows success first reached at t-3.
    env.reset(seed=7, options=dict(embodiment=ROBOT, behaviour="press_button", environment=0))
    hits = [env.step(a)[4]["is_success"] for a in ep.actions[:-1]]
    assert hits.index(True) == len(hits) - 3
    fast = run_expert_episode(env, 7, ROBOT, "press_button", 0, render=False)
    assert fast.frames.shape[1:] == (1, 1, 3) and len(fast) == t
    assert env.render_obs  # restored


def test_truncation_and_noop():
    env = TabletopEnv(image_size=32, supersample=1, max_steps=5)
    _reset(env, 0, embodiment=ROBOT, behaviour="sort", environment=0)
    for i in range(5):
        _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert reward == 0.0 and not terminated and truncated == (i == 4)


def test_gymnasium_api():
    env = TabletopEnv(image_size=32, supersample=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=False)
    # The only tolerated warning: alternative render modes need a registered spec.
    assert [str(w.message) for w in caught if "spec" not in str(w.message)] == []


@pytest.mark.parametrize("options,words", [
    (dict(embodiment="octopus"), ["robot", "hand_medium"]),
    (dict(behaviour="juggle"), ["pick_place", "wipe"]),
    (dict(environment=99), ["0..", str(len(ENVIRONMENTS) - 1)]),
    (dict(environment=-1), ["0.."]),
    (dict(colour="red"), ["embodiment", "paraphrase"]),
])
def test_bad_options_raise(options, words):
    env = TabletopEnv(image_size=32, supersample=1)
    with pytest.raises(ValueError) as err:
        env.reset(seed=0, options=options)
    assert all(w in str(err.value) for w in words)
