"""Closed-loop evaluation: shared seeded initial states, expert and zero-action bounds, intervals."""
import numpy as np
import pytest
import torch

from dreamgen import evaluate as ev
from dreamgen.collect import WorldConfig
from dreamgen.policy.config import PolicyConfig, PolicyError, save_policy
from dreamgen.policy.models import build

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
    # a second family run at the middle regime only meets the paper's middle row, not its first
    rows += [dict(arm=a, success=i < 3) for a in ("gr00t-r10-n0-s0", "gr00t-r10-n100-s0") for i in range(10)]
    both = ev.r1_table(ev.pool_seeds(ev.arm_table(rows)), r1_neural=100).set_index("family")
    assert both.loc["gr00t", "paper_demos"] == 100 and both.loc["dp", "paper_demos"].tolist() == [30, 100]


def test_seeds_are_averaged_with_a_pooled_interval_and_listed():
    rates = {"gr00t-r10-n0-s0": 2, "gr00t-r10-n0-s1": 6, "gr00t-r10-n100-s0": 5, "gr00t-r10-n100-s1": 5}
    rows = [dict(arm=a, success=i < k) for a, k in rates.items() for i in range(10)]
    rows += [dict(arm="gr00t-r10-n0-s2", success=i < 2) for i in range(20)]  # a seed that played more episodes
    pooled = ev.pool_seeds(ev.arm_table(rows)).set_index("config")
    gt = pooled.loc["gr00t-r10-n0"]
    assert gt.seeds == 3 and gt.episodes == 40 and gt.successes == 10 and gt.per_seed == "s0 0.20, s1 0.60, s2 0.10"
    assert gt.success == pytest.approx(0.3) and gt.pooled_success == 0.25  # mean over seeds, not over episodes
    assert (gt.ci_lo, gt.ci_hi) == pytest.approx(ev.wilson_interval(10, 40))
    r1 = ev.r1_table(pooled.reset_index(), r1_neural=100)
    assert r1.seeds.tolist() == [2] and r1.gt_neural_per_seed.tolist() == ["s0 0.50, s1 0.50"]
    assert r1.delta.tolist() == pytest.approx([0.2]) and np.isnan(r1.idm_real[0])


def test_idm_arms_form_the_sanity_rows_and_stay_out_of_r1_and_r2():
    rates = {"gr00t-r10-n0-s0": 4, "gr00t-r10-n0-s0-idm": 1, "gr00t-r10-n0-s1-idm": 3, "gr00t-r10-n100-s0": 5,
             "gr00t-r10-n100-s0-idm": 9, "gr00t-r10-n25-s0": 3}
    rows = [dict(arm=a, success=i < k) for a, k in rates.items() for i in range(10)]
    arms = ev.arm_table(rows)
    pooled = ev.pool_seeds(arms)
    idm = pooled.set_index("config").loc["gr00t-r10-n0-idm"]
    assert idm.idm and idm.seeds == 2 and idm.success == pytest.approx(0.2)
    r1 = ev.r1_table(pooled, r1_neural=100)
    assert len(r1) == 1 and r1["gt"][0] == 0.4 and r1.gt_neural[0] == 0.5 and r1.idm_real[0] == pytest.approx(0.2)
    assert ev.r2_points(pooled, 10).config.tolist() == ["gr00t-r10-n25", "gr00t-r10-n100"]
    assert ev.r2_seed_points(arms, 10).arm.tolist() == ["gr00t-r10-n25-s0", "gr00t-r10-n100-s0"]
    sanity = ev.sanity_table(pooled, dict(successes=9, episodes=10))
    assert sanity.row.tolist() == ["expert (upper bound)", "GT r10", "IDM-labelled real (r10)",
                                   "GT r10 + 100 neural", "IDM-labelled real (r10) + 100 neural"]
    assert sanity.success.tolist() == pytest.approx([0.9, 0.4, 0.2, 0.5, 0.9])
    assert sanity.per_seed[2] == "s0 0.10, s1 0.30"
    assert ev.sanity_table(pooled[~pooled.idm], dict(successes=9, episodes=10)).row.tolist() == ["expert (upper bound)"]


def test_r2_fit_uses_every_seed_point():
    rates = {"dp-r10-n25-s0": 2, "dp-r10-n100-s0": 4, "dp-r10-n100-s1": 6, "dp-r10-n400-s0": 8, "gr00t-r10-n25-s0": 1}
    rows = [dict(arm=a, success=i < k) for a, k in rates.items() for i in range(10)]
    points = ev.r2_seed_points(ev.arm_table(rows), r2_real=10)
    fits = ev.r2_fits(points)
    assert set(fits) == {"dp"}  # gr00t has a single count: no fit
    assert fits["dp"]["points"] == 4 and fits["dp"]["seeds"] == {25: 1, 100: 2, 400: 1}
    want = ev.loglinear_fit([25, 100, 100, 400], [0.2, 0.4, 0.6, 0.8])
    assert fits["dp"]["slope"] == pytest.approx(want["slope"]) and fits["dp"]["r2"] == pytest.approx(want["r2"])


def test_resolvable_difference_shrinks_with_episodes():
    from dreamgen.evaluate import resolvable_difference

    assert abs(resolvable_difference(100, 100) - 0.1386) < 1e-3       # 1.96 * sqrt(0.25 * 2 / 100)
    assert resolvable_difference(200, 200) < resolvable_difference(100, 100)
    assert resolvable_difference(100, 100, p=0.1) < resolvable_difference(100, 100, p=0.5)
    with pytest.raises(ValueError):
        resolvable_difference(0, 10)
