"""Closed-loop evaluation: shared seeded initial states, expert and zero-action bounds, intervals."""
import numpy as np
import pytest
import torch

from dreamgen import evaluate as ev
from dreamgen.collect import WorldConfig
from dreamgen.policy.config import PolicyConfig, PolicyError, build, save_policy

torch.set_num_threads(1)
WORLD = WorldConfig(image_size=32, supersample=1, max_steps=60)


def test_jobs_are_seeded_per_cell_and_shared():
    a = ev.eval_jobs(["pick_place", "push"], [0, 1], 3, base_seed=900_000)
    b = ev.eval_jobs(["push"], [1], 3, base_seed=900_000)
    assert len(a) == 12 and len({j.seed for j in a}) == 12
    assert [j for j in a if j.behaviour == "push" and j.environment == 1] == b  # independent of other cells
    assert ev.eval_jobs(["push"], [1], 3, base_seed=900_000) == b


def test_scripted_expert_succeeds_and_doing_nothing_fails():
    jobs = ev.eval_jobs(["pick_place", "press_button"], [0], 3, base_seed=900_000)
    expert = ev.evaluate(("expert", 0.0), jobs, WORLD, execute=1)
    zero = ev.evaluate(("zero",), jobs, WORLD, execute=8)
    assert sum(r["success"] for r in expert) >= 5
    assert not any(r["success"] for r in zero) and all(r["steps"] == WORLD.max_steps for r in zero)


def tiny_policy(folder, embodiment="robot"):
    cfg = PolicyConfig(family="dp", embodiment=embodiment, action_names=("vx", "vy", "wz", "grip"),
                       state_names=("x", "y", "yaw", "opening"), image_size=16, chunk=8, width=16, inference_steps=2)
    torch.manual_seed(0)
    save_policy(build(cfg), folder)
    return str(folder)


def test_policy_rollouts_are_deterministic_and_independent_of_workers(tmp_path):
    spec = ("policy", tiny_policy(tmp_path / "p"))
    jobs = ev.eval_jobs(["push"], [0, 3], 2, base_seed=7)
    one = ev.evaluate(spec, jobs, WORLD, execute=4, workers=1)
    two = ev.evaluate(spec, jobs, WORLD, execute=4, workers=2)
    assert one == two
    rec = ev.record_episode(spec, jobs[1], WORLD, execute=4)
    assert rec["steps"] == one[1]["steps"] and rec["frames"].shape == (rec["steps"] + 1, 32, 32, 3)


def test_policy_on_another_embodiment_is_refused_before_any_episode(tmp_path):
    spec = ("policy", tiny_policy(tmp_path / "p"))
    jobs = ev.eval_jobs(["push"], [0], 1, base_seed=0, embodiment="robot_b")
    with pytest.raises(PolicyError, match="trained for embodiment 'robot'"):
        ev.evaluate(spec, jobs, WORLD, execute=4)


def test_success_table_has_wilson_intervals():
    rows = [dict(arm="a", success=s) for s in [True] * 3 + [False] * 7] + [dict(arm="b", success=True)] * 4
    tab = ev.success_table(rows, ["arm"]).set_index("arm")
    assert tab.loc["a", "success"] == 0.3 and tab.loc["a", "episodes"] == 10
    assert tab.loc["a", "ci_lo"] == pytest.approx(0.1078, abs=1e-3) and tab.loc["a", "ci_hi"] == pytest.approx(0.6032, abs=1e-3)
    assert tab.loc["b", "ci_hi"] == 1.0 and tab.loc["b", "ci_lo"] < 1.0


def test_loglinear_fit_recovers_slope_and_r2():
    n = np.array([10, 30, 100, 300])
    fit = ev.loglinear_fit(n, 0.1 + 0.2 * np.log10(n))
    assert fit["slope"] == pytest.approx(0.2) and fit["intercept"] == pytest.approx(0.1) and fit["r2"] == pytest.approx(1)
    noisy = ev.loglinear_fit(n, [0.3, 0.1, 0.35, 0.2])
    assert noisy["r2"] < 0.5 and ev.loglinear_fit(n, [0.2] * 4)["r2"] is None
    with pytest.raises(ValueError):
        ev.loglinear_fit([10, 10], [0.1, 0.2])


def test_r1_r2_tables_from_arm_rows():
    rates = {"dp-r3-n0-s0": 2, "dp-r3-n100-s0": 4, "dp-r3-n100-s1": 6, "dp-r10-n0-s0": 5, "dp-r10-n100-s0": 7,
             "dp-r10-n30-s0": 6, "dp-r0-n100-s0": 1}
    rows = [dict(arm=a, success=i < k) for a, k in rates.items() for i in range(10)]
    pooled = ev.pool_seeds(ev.arm_table(rows)).set_index("config")
    assert pooled.loc["dp-r3-n100", "episodes"] == 20 and pooled.loc["dp-r3-n100", "success"] == 0.5
    r1 = ev.r1_table(pooled.reset_index(), r1_neural=100)
    assert r1.real_per_behaviour.tolist() == [3, 10] and r1.paper_demos.tolist() == [30, 100]
    assert r1.delta.tolist() == pytest.approx([0.3, 0.2])
    r2 = ev.r2_points(pooled.reset_index(), r2_real=10)
    assert r2.neural.tolist() == [30, 100]
