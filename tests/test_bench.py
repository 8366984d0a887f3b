"""DreamGen Bench judges: the state, the predicates, the physics rules, the classifier, scoring, correlation."""
import numpy as np
import pytest
import torch

from dreamgen.bench import correlation, judges, nets, physics, score, simulate, state, validity
from dreamgen.collect import WorldConfig
from dreamgen.tiny import tiny_qwen_judge
from dreamgen.world.behaviours import BEHAVIOURS

torch.set_num_threads(1)
WORLD = WorldConfig(64, 2, 80)
CLIP = dict(num_frames=8, stride=4)


@pytest.fixture(scope="module")
def clean():
    """Two expert episodes per behaviour with their true states (32x32 frames)."""
    return simulate.simulate_many(simulate.make_jobs(2, BEHAVIOURS, 8, 900_000), WORLD, 32)


@pytest.fixture(scope="module")
def corrupted():
    return {kind: simulate.simulate_many(simulate.make_jobs(2, simulate.corruptible(kind), 8, 910_000 + 1000 * k,
                                                            corruption=kind, corrupt_steps=(4, 8)), WORLD, 32)
            for k, kind in enumerate(simulate.CORRUPTIONS)}


def test_predicates_on_true_states_match_the_simulator(clean):
    n = 0
    for e in clean:
        for t in range(len(e)):
            assert state.instruction_success(e.job.behaviour, e.task, e.states[0], e.states[t]) == e.success[t], \
                (e.job.behaviour, e.task, t)
            n += 1
    assert n > 200 and any(e.success.any() for e in clean)


def test_if_on_clips_and_swapped_instructions(clean):
    """IF of a dream-like clip (frame 0, then 7 more 4 steps apart) = success at its last frame;
    the same clip judged against another behaviour's instruction is not a success."""
    seen = set()
    for e in clean:
        i = simulate.clip_indices(len(e), **CLIP)
        s0, s1 = e.states[i[0]], e.states[i[-1]]
        assert state.instruction_success(e.job.behaviour, e.task, s0, s1) == e.success[i[-1]]
        seen.add(bool(e.success[i[-1]]))
        other = next(o for o in clean if o.job.behaviour != e.job.behaviour and o.job.behaviour != "wipe")
        if e.success[i[-1]] and e.job.behaviour != "wipe":
            assert not state.instruction_success(other.job.behaviour, other.task, s0, s1)
    assert seen == {True, False}


def test_instruction_colours_reading_order():
    assert state.instruction_colours("put the red cube in the blue bowl") == ["red", "blue"]
    assert state.instruction_colours("wipe away the dark red spill") == ["dark red"]
    with pytest.raises(ValueError, match="names 0 colours"):
        state.instruction_success("pick_place", "put it there", np.zeros(state.DIM), np.zeros(state.DIM))


def test_pa_passes_clean_clips_and_flags_corruptions(clean, corrupted):
    thr = physics.Thresholds()
    for e in clean:
        pa, v = physics.physics_alignment(e.states, thr)
        assert pa == 1.0, (e.job, [physics.RULES[j] for j in np.nonzero(v.any(0))[0]])
    for kind, eps in corrupted.items():
        flagged = [physics.physics_alignment(e.states[simulate.clip_indices(len(e), **CLIP)], thr)[0] < 1
                   for e in eps if 0 <= e.corrupted_at < len(e)]
        assert flagged and all(flagged), kind


def test_pa_teleport_on_a_hand_made_trajectory():
    s = np.zeros((3, state.DIM), np.float32)
    s[:, state.idx("red", "obj")] = 1
    s[:, [state.INDEX["ee_x"], state.INDEX["ee_y"]]] = 0.2
    s[:, [state.idx("red", "obj_x"), state.idx("red", "obj_y")]] = [[0.7, 0.7], [0.7, 0.7], [0.3, 0.8]]
    pa, v = physics.physics_alignment(s, physics.Thresholds())
    assert pa == 0.5 and v[1, physics.RULES.index("jump")] and not v[0].any()
    s[2, state.idx("red", "obj")] = 0.0  # vanishing instead
    assert physics.physics_alignment(s, physics.Thresholds())[1][1, physics.RULES.index("flip")]


def test_calibration_only_raises_thresholds(clean):
    base = physics.Thresholds()
    noisy = [e.states + np.random.default_rng(0).normal(0, 0.03, e.states.shape).astype(np.float32) for e in clean]
    cal = physics.calibrate(noisy, 0.99, base)
    assert cal.untouched >= base.untouched and cal.jump >= base.jump and cal.overlap <= base.overlap
    assert cal.untouched > base.untouched  # 3-unit noise moves "untouched" objects by more than 4 units


def test_estimator_shapes_loss_and_size_check():
    est = nets.StateEstimator(nets.EstimatorConfig(32, 8, 32))
    frames = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    out = est.estimate(frames)
    assert out.shape == (5, state.DIM) and out.dtype == np.float32
    assert (out[:, state.BINARY] >= 0).all() and (out[:, state.BINARY] <= 1).all()
    batch = dict(frames=nets.to_tensor(frames), states=torch.zeros(5, state.DIM), masks=torch.ones(5, state.DIM))
    loss, logs = est.loss(batch)
    assert torch.isfinite(loss) and set(logs) == {"bce", "se"}
    with pytest.raises(ValueError, match="resize_frames"):
        est.estimate(np.zeros((2, 64, 64, 3), np.uint8))


def test_estimator_learns_positions(clean, tmp_path):
    """A few hundred steps on simulator frames already cut the error of the best constant guess by 40%."""
    frames, states, masks = judges.frame_pool(clean)
    est = nets.StateEstimator(nets.EstimatorConfig(32, 8, 64))
    from dreamgen.training import TrainConfig
    judges.fit(est, judges.estimator_sampler(frames, states, masks, 32), TrainConfig(300, 3e-3, 0, 1000), tmp_path, "t")
    ee = [state.INDEX["ee_x"], state.INDEX["ee_y"]]
    err = np.abs(est.estimate(frames)[:, ee] - states[:, ee]).mean()
    constant = np.abs(states[:, ee] - states[:, ee].mean(0)).mean()  # the best constant guess, ~15 units
    assert err < 0.6 * constant, (err * state.SCALE, constant * state.SCALE)  # untrained: ~1x


class _FakeText:
    """A fixed random vector per instruction, standing in for the MiniLM sentence embedder."""

    def __init__(self, dim=16):
        self.dim, self.cache = dim, {}

    def __call__(self, texts):
        for t in texts:
            self.cache.setdefault(t, np.random.default_rng(len(self.cache)).standard_normal(self.dim).astype(np.float32))
        return np.stack([self.cache[t] for t in texts])


def test_colour_slots_name_object_then_target():
    slots = nets.colour_slots(["put the red cube in the blue bowl", "open the drawer", "press the cyan button"])
    red, blue, cyan = (state.COLOUR_NAMES.index(c) for c in ("red", "blue", "cyan"))
    none = len(state.COLOUR_NAMES)
    assert slots.tolist() == [[red, blue], [none, none], [cyan, none]]


def test_classifier_learns_done_from_state_clips_and_reloads(clean, tmp_path):
    """On (noisy) true state trajectories the classifier learns to accept a finished clip with its own
    instruction and to reject clips that stop short or are asked about another instruction."""
    from dreamgen.training import TrainConfig

    text = _FakeText()
    clf = nets.StateClassifier(nets.ClassifierConfig(hidden=32, text_dim=16))
    sample = judges.classifier_sampler(clean, [e.states for e in clean], text, 32, **CLIP)
    judges.fit(clf, sample, TrainConfig(300, 3e-3, 0, 1000), tmp_path / "ckpt", "t")
    batch = sample(np.random.default_rng(12345), 0)
    tasks = {tuple(v): t for t, v in text.cache.items()}
    asked = [tasks[tuple(v)] for v in batch["text"].numpy()]
    p = clf.prob(batch["states"].numpy(), asked, batch["text"].numpy())
    y = batch["labels"].numpy() > 0.5
    assert validity.auc(p, y) > 0.9 and ((p > 0.5) == y).mean() > 0.8, (validity.auc(p, y), ((p > 0.5) == y).mean())
    nets.save(clf, tmp_path / "clf")
    np.testing.assert_allclose(nets.load(tmp_path / "clf").prob(batch["states"].numpy(), asked, batch["text"].numpy()), p)
    with pytest.raises(ValueError, match="states must be"):
        clf.prob(batch["states"].numpy()[:, :, :5], asked, batch["text"].numpy())


def test_auc_and_binary_metrics():
    assert validity.auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert validity.auc([0.1, 0.2, 0.9], [1, 1, 0]) == 0.0
    assert validity.auc([0.5, 0.5], [1, 0]) == 0.5
    assert np.isnan(validity.auc([0.5], [1]))
    m = validity.binary_metrics([1, 1, 0, 0], [1, 0, 0, 0])
    assert m["accuracy"] == 0.75 and m["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2)


def test_correlation_helper():
    x = np.array([0.1, 0.3, 0.4, 0.6, 0.9])
    r = correlation.bench_policy_correlation(x, 2 * x + 0.1, n_boot=300)
    assert r["pearson"] == pytest.approx(1.0) and r["spearman"] == pytest.approx(1.0) and r["n"] == 5
    assert r["pearson_ci"][0] > 0.99
    r = correlation.bench_policy_correlation(x, [0.5, 0.1, 0.9, 0.2, 0.4], n_boot=300)
    lo, hi = r["spearman_ci"]
    assert lo < r["spearman"] < hi and hi - lo > 0.5
    with pytest.raises(ValueError, match="at least 3"):
        correlation.bench_policy_correlation([0.1, 0.2], [0.3, 0.4])
    with pytest.raises(ValueError, match="constant"):
        correlation.bench_policy_correlation([0.1, 0.1, 0.1], [0.3, 0.4, 0.5])


@pytest.fixture(scope="module")
def tiny_judges():
    return judges.Judges(nets.StateEstimator(nets.EstimatorConfig(32, 8, 32)), None, physics.Thresholds())


def test_score_videos_in_memory_and_bad_input(clean, tiny_judges, tmp_path):
    e = clean[0]
    good = e.frames[simulate.clip_indices(len(e), **CLIP)]
    meta = dict(behaviour=e.job.behaviour, split="seen", fps=2.5)
    df = score.score_videos([(good, e.task, meta), (good, e.task, meta)], tiny_judges, num_frames=8, fps=2.5)
    assert len(df) == 2 and set(df.columns) >= {"if_state", "if_classifier", "pa", "split"}
    assert df.if_state.isin([0.0, 1.0]).all() and df.pa.between(0, 1).all()
    table = score.ranking_table(df)
    assert list(table.videos) == [2]
    big = np.repeat(np.repeat(good, 2, 1), 2, 2)
    with pytest.raises(ValueError, match="32x32.*resize_frames"):
        score.score_videos([(big, e.task, meta)], tiny_judges)
    with pytest.raises(ValueError, match="6 frames, the judges expect 8"):
        score.score_videos([(good[:6], e.task, meta)], tiny_judges, num_frames=8)
    with pytest.raises(ValueError, match="10 frames per second, the judges expect 2.5"):
        score.score_videos([(good, e.task, dict(meta, fps=10))], tiny_judges, fps=2.5)
    with pytest.raises(ValueError, match="no 'behaviour'"):
        score.score_videos([(good, e.task, {})], tiny_judges)
    with pytest.raises(ValueError, match="uint8"):
        score.score_videos([(good.astype(np.float32), e.task, meta)], tiny_judges)
    (tmp_path / "broken" / "meta").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a readable LeRobot dataset"):
        score.score_videos(tmp_path / "broken", tiny_judges)


def test_score_videos_reads_a_lerobot_dataset(clean, tiny_judges, tmp_path):
    """A dataset on disk: scored per episode; a frame rate other than the judges' is refused."""
    from dreamgen import data
    from dreamgen.episode import Episode

    eps = [Episode(frames=e.frames[simulate.clip_indices(len(e), **CLIP)], task=e.task,
                   meta=dict(behaviour=e.job.behaviour, split="seen")) for e in clean[:2]]
    root = tmp_path / "dreams"
    data.write_dataset(root, eps, fps=10, robot_type="robot")
    df = score.score_videos(root, tiny_judges, num_frames=8)
    assert len(df) == 2 and (df.behaviour == [e.meta["behaviour"] for e in eps]).all()
    with pytest.raises(ValueError, match="frames per second"):
        score.score_videos(root, tiny_judges, fps=2.5)
    next(root.glob("videos/**/episode_000001.mp4")).write_bytes(b"not a video")
    with pytest.raises(ValueError, match="episode 1: unreadable"):
        score.score_videos(root, tiny_judges)


def test_vlm_judge_on_a_tiny_random_qwen():
    from dreamgen.bench import vlm

    judge = tiny_qwen_judge()
    video = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    assert list(vlm.sample_frames(video, 4)[:, 0, 0, 0]) == list(video[[0, 2, 5, 7], 0, 0, 0])
    images = [__import__("PIL.Image").Image.fromarray(f) for f in vlm.sample_frames(video, 4)]
    inputs = vlm.encode(judge.tokenizer, judge.image_processor, "Does 1", images, 2)
    pads = int((inputs["input_ids"] == judge.model.config.image_token_id).sum())
    assert pads == int(inputs["image_grid_thw"].prod(-1).sum()) // 4 and pads > 0
    a = judge.judge(video, "put the red cube in the blue bowl")
    b = judge.judge(video, "open the blue drawer")
    assert set(a) == {"if_vlm", "if_vlm_p", "pa_vlm", "pa_vlm_p"}
    assert 0 < a["if_vlm_p"] < 1 and a["if_vlm"] == float(a["if_vlm_p"] > 0.5)
    assert a["if_vlm_p"] != b["if_vlm_p"] and a["pa_vlm_p"] == b["pa_vlm_p"]  # only IF reads the instruction
    with pytest.raises(ValueError, match="uint8"):
        judge.judge(video.astype(np.float32), "open the blue drawer")


# --------------------------------------------------------------------------- ranking variants (R8)

def test_spread_counts_and_rank_cells_give_each_split_its_prompts():
    from dreamgen.bench import rank

    assert rank.spread_counts(7, 9) == [2, 2, 1, 1, 1, 1, 1]
    assert rank.spread_counts(9, 4) == [1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert rank.spread_counts(0, 5) == []
    with pytest.raises(ValueError):
        rank.spread_counts(3, -1)
    cells = rank.rank_cells({("pick_place", 0)}, list(BEHAVIOURS), list(range(8)), 9)
    by = {}
    for c in cells:
        by.setdefault(c.split, []).append(c)
    assert {s: sum(c.count for c in v) for s, v in by.items()} == {"seen": 9, "new_behaviour": 9, "unseen_environment": 9}
    assert [(c.behaviour, c.environment) for c in by["seen"]] == [("pick_place", 0)]
    assert {c.behaviour for c in by["new_behaviour"]} == set(BEHAVIOURS) - {"pick_place"}
    assert all(c.environment == 0 for c in by["new_behaviour"])
    assert sorted(c.environment for c in by["unseen_environment"]) == list(range(1, 8))
    small = rank.rank_cells({("pick_place", 0)}, list(BEHAVIOURS), list(range(8)), 1)
    assert [(c.split, c.count) for c in small] == [("seen", 1), ("new_behaviour", 1), ("unseen_environment", 1)]
    with pytest.raises(ValueError, match="rank_prompts_per_split"):
        rank.rank_cells({("pick_place", 0)}, list(BEHAVIOURS), [0], 0)


def test_trained_pairs_and_variant_folders(tmp_path):
    from dreamgen.bench import rank

    infos = {"base": dict(kind="base"), "lora": dict(kind="lora", meta=dict(trained_pairs=[["pick_place", 0]])),
             "full": dict(kind="full", meta=dict(trained_pairs=[("pick_place", 0)]))}
    assert rank.trained_pairs(infos) == {("pick_place", 0)}
    with pytest.raises(ValueError, match="disagree"):
        rank.trained_pairs(infos | {"x": dict(kind="lora", meta=dict(trained_pairs=[["push", 0]]))})
    with pytest.raises(ValueError, match="at least one fine-tuned"):
        rank.trained_pairs({"base": dict(kind="base")})
    assert rank.variant_folder(tmp_path, "exp", "base") is None
    (tmp_path / "exp" / "lora").mkdir(parents=True)
    assert rank.variant_folder(tmp_path, "exp", "lora") == tmp_path / "exp" / "lora"
    with pytest.raises(FileNotFoundError, match="lora-r4-s300.*finetune_world_model"):
        rank.variant_folder(tmp_path, "exp", "lora-r4-s300")


def test_eval_jobs_for_cells_share_initial_states_across_plans():
    from dreamgen.bench import rank
    from dreamgen.world_model.dreams import DreamCell

    a = rank.eval_jobs_for_cells([DreamCell("push", 0, "new_behaviour", 1)], 2, 100, "robot")
    b = rank.eval_jobs_for_cells([DreamCell("pick_place", 0, "seen", 3), DreamCell("push", 0, "new_behaviour", 1)],
                                 2, 100, "robot")
    assert len(a) == 2 and len(b) == 4 and b[2:] == a  # a cell's seeds do not depend on the other cells
    assert len({j.seed for j in b}) == 4
    with pytest.raises(ValueError):
        rank.eval_jobs_for_cells([DreamCell("push", 0, "seen", 1)], 0, 100, "robot")


def test_filter_mask_and_policy_arm():
    import pandas as pd

    from dreamgen.bench import rank

    df = pd.DataFrame(dict(pa=[1.0, 0.9, 0.5, 1.0], if_state=[0.0, 1.0, 1.0, 1.0]))
    assert rank.filter_mask(df, 0.9, False).tolist() == [True, True, False, True]
    assert rank.filter_mask(df, 0.9, True).tolist() == [False, True, False, True]
    assert rank.filter_mask(df, 0.0, False).all()
    with pytest.raises(ValueError):
        rank.filter_mask(df, 1.5, False)
    assert rank.policy_arm(27) == "gr00t-r0-n27-s0"
    with pytest.raises(ValueError):
        rank.policy_arm(0)


def test_variant_and_split_tables():
    import pandas as pd

    from dreamgen.bench import rank

    scores = pd.DataFrame(dict(variant=["b", "b", "a", "a"], split=["unseen_environment", "seen", "seen", "seen"],
                               if_state=[0.0, 1.0, 1.0, 1.0], if_classifier=[0.2, 0.4, 0.6, 0.8], pa=[0.5, 1.0, 1.0, 0.0]))
    eps = pd.DataFrame(dict(variant=["a", "a", "a", "b", "b", "b"], success=[True, False, False, False, False, False]))
    t = rank.variant_table(scores, eps)
    assert t.variant.tolist() == ["b", "a"]  # order of first appearance
    b, a = t.iloc[0], t.iloc[1]
    assert b.if_state == 0.5 and b.pa == 0.75 and b.bench == pytest.approx(0.625) and b.success == 0
    assert a.successes == 1 and a.episodes == 3 and a.success == pytest.approx(1 / 3)
    assert a.ci_lo < 1 / 3 < a.ci_hi
    s = rank.split_table(scores)
    assert list(zip(s.variant, s.split)) == [("b", "seen"), ("b", "unseen_environment"), ("a", "seen")]
    assert s.videos.tolist() == [1, 1, 2]


def test_correlation_report_is_nan_with_a_reason_when_success_is_constant():
    import json

    from dreamgen.bench import rank

    ok = correlation.correlation_report([0.1, 0.2, 0.3, 0.5, 0.4], [0.0, 0.1, 0.2, 0.4, 0.3], n_boot=200)
    assert ok["defined"] and ok["pearson"] > 0.95 and ok["spearman"] == pytest.approx(1.0) and ok["reason"] == ""
    assert ok["pearson_ci"][0] <= ok["pearson"] <= ok["pearson_ci"][1]
    bad = correlation.correlation_report([0.1, 0.2, 0.3, 0.5, 0.4], [0.0] * 5)
    assert not bad["defined"] and np.isnan(bad["pearson"]) and np.isnan(bad["spearman"]) and "constant" in bad["reason"]
    assert not correlation.correlation_report([0.1, 0.2], [0.0, 1.0])["defined"]  # too few variants
    with pytest.raises(ValueError):
        correlation.correlation_report([0.1, 0.2, 0.3], [0.0, 1.0])  # mismatched lengths are a bug, not NaN
    safe = rank.json_safe(dict(c=bad, x=[np.float32(1.5), float("inf")]))
    assert safe["c"]["pearson"] is None and safe["c"]["pearson_ci"] == [None, None] and safe["x"] == [1.5, None]
    json.dumps(safe, allow_nan=False)


def test_predicates_read_occluded_fixtures_from_the_first_frame():
    """An object on its bowl hides the bowl in the last frame: the bowl's presence and position
    are read where nothing covers them (the first frame); a bowl absent from both frames fails."""
    first, last = np.zeros(state.DIM, np.float32), np.zeros(state.DIM, np.float32)
    for s in (first, last):
        s[state.idx("red", "obj")] = 1
    first[state.idx("blue", "zone")] = 1
    first[state.idx("blue", "zone_x")], first[state.idx("blue", "zone_y")] = 0.5, 0.5
    first[state.idx("red", "obj_x")], first[state.idx("red", "obj_y")] = 0.2, 0.2
    last[state.idx("red", "obj_x")], last[state.idx("red", "obj_y")] = 0.51, 0.49  # in the bowl; bowl unseen now
    task = "put the red cube in the blue bowl"
    assert state.instruction_success("pick_place", task, first, last)
    assert not state.instruction_success("pick_place", task, first, first)  # not moved there
    no_bowl = first.copy()
    no_bowl[state.idx("blue", "zone")] = 0
    assert not state.instruction_success("pick_place", task, no_bowl, last)
    btn0, btn1 = np.zeros(state.DIM, np.float32), np.zeros(state.DIM, np.float32)
    btn0[state.idx("green", "button")] = 1
    btn1[state.idx("green", "button_pressed")] = 1  # pressed: its look changed, presence missed
    assert state.instruction_success("press_button", "press the green button", btn0, btn1)
    assert not state.instruction_success("press_button", "press the green button", np.zeros(state.DIM), btn1)



def test_correlation_over_indistinguishable_successes_is_flagged():
    from dreamgen.bench import correlation

    bench = [0.47, 0.45, 0.44, 0.46, 0.47]
    one_success = correlation.correlation_report(bench, [0, 0, 1 / 26, 0, 0], n_boot=200,
                                                 successes=[0, 0, 1, 0, 0], episodes=[26] * 5)
    assert one_success["defined"] and not one_success["distinguishable"]
    assert "indistinguishable" in one_success["reason"] and "1 successes in 130" in one_success["reason"]
    clear = correlation.correlation_report(bench, [0.9, 0.1, 0.05, 0.5, 0.95], n_boot=200,
                                           successes=[90, 10, 5, 50, 95], episodes=[100] * 5)
    assert clear["distinguishable"] and clear["reason"] == "" and clear["pearson"] > 0.5
    assert "distinguishable" not in correlation.correlation_report(bench, [0.9, 0.1, 0.05, 0.5, 0.95], n_boot=50)


def test_loading_a_judge_of_an_unknown_kind_says_to_rerun_the_stage(tmp_path):
    (tmp_path / nets.CONFIG).write_text('{"kind": "ClipClassifier", "width": 12}')
    with pytest.raises(ValueError, match="re-run the bench stage"):
        nets.load(tmp_path)


def test_success_and_failure_clips_balance_each_behaviour(clean):
    clip = dict(num_frames=15, stride=4)  # the stage's: 56 steps, past the end of these episodes
    rows = validity.success_and_failure_clips(clean, kind="clean", source="sim", seed=0, **clip)
    for b in BEHAVIOURS:
        t = [r["if_truth"] for r in rows if r["behaviour"] == b]
        assert t.count(0.0) >= 1 and t.count(1.0) >= 1, (b, t)
    for r in rows:
        e = next(e for e in clean if e.task == r["instruction"] and np.array_equal(e.frames[0], r["clip"][0]))
        last = next(t for t in range(len(e)) if np.array_equal(e.frames[t], r["clip"][-1]))
        assert r["clip"].shape[0] == clip["num_frames"] and bool(e.success[last]) == (r["if_truth"] == 1.0)
    # the same seed gives the same cuts
    again = validity.success_and_failure_clips(clean, kind="clean", source="sim", seed=0, **clip)
    assert all(np.array_equal(a["clip"], b["clip"]) for a, b in zip(rows, again))


def test_replayed_dataset_episodes_are_the_recorded_ones(tmp_path):
    from dreamgen import collect, data

    eps = list(collect.collect_successes([("robot", "push", 1, 2)], 123, WORLD, 1.0, 3.0))
    data.write_dataset(tmp_path / "ds", eps, fps=10, robot_type="robot")
    ds = data.Dataset(tmp_path / "ds")
    got = validity.resimulate_dataset(ds, [0, 1], WORLD, 32)
    assert [e.job.seed for e in got] == [m["seed"] for m in ds.episodes_meta]
    assert all(e.success[-3] or e.success[-1] for e in got)  # recorded successes stay successes
    with pytest.raises(ValueError, match="does not reproduce"):  # another renderer setting: other pixels
        validity.resimulate_dataset(ds, [0], WorldConfig(64, 1, 80), 32)


def test_if_slack_widens_zones_and_calibrates_on_boundary_successes():
    s = np.zeros(state.DIM, np.float32)
    s[[state.idx("red", "obj"), state.idx("blue", "zone")]] = 1
    s[[state.idx("blue", "zone_x"), state.idx("blue", "zone_y")]] = 0.5
    s[[state.idx("red", "obj_x"), state.idx("red", "obj_y")]] = [0.555, 0.5]  # 5.5 units from a push square's centre
    task = "push the red cube onto the blue square"
    assert not state.instruction_success("push", task, s, s)
    assert state.instruction_success("push", task, s, s, slack=1.0)
    far = s.copy()
    far[state.idx("red", "obj_x")] = 0.65
    rows = [dict(behaviour="push", instruction=task, if_truth=1.0), dict(behaviour="push", instruction=task, if_truth=0.0)]
    slack, scores = judges.calibrate_slack(np.stack([np.stack([s, s]), np.stack([far, far])]), rows)
    assert 0.5 <= slack < 15.0 and scores[slack] == 1.0 and scores[0.0] == 0.5


def test_pa_calibration_lets_the_asked_share_of_clean_clips_pass(clean):
    noisy = [e.states + np.random.default_rng(k).normal(0, 0.02, e.states.shape).astype(np.float32)
             for k, e in enumerate(clean)]
    for share in (0.5, 1.0):
        thr = physics.calibrate(noisy, share)
        passed = np.mean([physics.physics_alignment(s, thr)[0] == 1.0 for s in noisy])
        assert passed >= share - 1e-9, (share, passed)


def test_interpenetration_sinks_an_object_into_another():
    e = simulate.simulate(WORLD, simulate.SimJob("stack", 0, 4242, corruption="interpenetrate", corrupt_step=3), 32)
    assert e.corrupted_at == 3  # three free blocks at step 3: it acts at once
    s = e.states[3]
    present = [c for c in state.COLOUR_NAMES if s[state.idx(c, "obj")] > 0.5]
    xy = np.array([[s[state.idx(c, "obj_x")], s[state.idx(c, "obj_y")]] for c in present]) * state.SCALE
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 1e9
    assert d.min() <= 5.0 + 1e-6
    pa, v = physics.physics_alignment(e.states[2:6], physics.Thresholds())
    assert pa < 1 and v[:, physics.RULES.index("overlap")].any()


def test_success_net_learns_done_from_first_and_last_frames_and_reloads(clean, tmp_path):
    """On its own training episodes the pixel judge separates finished frames from unfinished ones,
    and a saved one reloads to the same answers."""
    from dreamgen.training import TrainConfig

    torch.manual_seed(0)
    net = nets.SuccessNet(nets.SuccessConfig(32, 8, 32))
    judges.fit(net, judges.success_sampler(clean, 32), TrainConfig(400, 3e-3, 0, 1000), tmp_path / "ck", "t")
    first = np.stack([e.frames[0] for e in clean for _ in (0, 1)])
    last = np.stack([f for e in clean for f in (e.frames[-1], e.frames[len(e) // 3])])
    truth = np.array([t for e in clean for t in (e.success[-1], e.success[len(e) // 3])])
    beh = [BEHAVIOURS.index(e.job.behaviour) for e in clean for _ in (0, 1)]
    p = net.prob(first, last, [e.task for e in clean for _ in (0, 1)], beh)
    assert p.shape == (len(first),) and ((p > 0.5) == truth).mean() >= 0.8, ((p > 0.5) == truth).mean()
    nets.save(net, tmp_path / "s")
    again = nets.load(tmp_path / "s").prob(first, last, [e.task for e in clean for _ in (0, 1)], beh)
    assert np.array_equal(p, again)
    with pytest.raises(ValueError, match="resize_frames"):
        net.prob(np.zeros((1, 64, 64, 3), np.uint8), np.zeros((1, 64, 64, 3), np.uint8), ["open the drawer"], [2])


def test_judge_training_is_bit_reproducible(clean, tmp_path):
    """Two trainings of the same configuration (two threads, as the stage) give identical weights."""
    from dreamgen.training import TrainConfig

    frames, states, masks = judges.frame_pool(clean)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        weights = []
        for k in range(2):
            torch.manual_seed(0)
            est = nets.StateEstimator(nets.EstimatorConfig(32, 8, 32))
            judges.fit(est, judges.estimator_sampler(frames, states, masks, 16), TrainConfig(30, 3e-3, 0, 15),
                       tmp_path / f"est{k}", "t")
            torch.manual_seed(0)
            net = nets.SuccessNet(nets.SuccessConfig(32, 8, 16))
            judges.fit(net, judges.success_sampler(clean, 16), TrainConfig(30, 3e-3, 0, 15), tmp_path / f"succ{k}", "t")
            weights.append(est.state_dict() | {f"s.{n}": v for n, v in net.state_dict().items()})
    finally:
        torch.set_num_threads(old)
    assert all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])


def test_degraded_clips_and_judge_truth_agreement():
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = [dict(clip=rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8), if_truth=1.0, pa_truth=1.0, kind="real")]
    d = validity.degraded(rows, 0)[0]
    assert d["kind"] == "degraded" and d["if_truth"] == 1.0 and d["clip"].dtype == np.uint8
    assert not np.array_equal(d["clip"], rows[0]["clip"])
    truth = rng.integers(0, 2, 200).astype(float)
    df = pd.DataFrame(dict(if_truth=truth, pa_truth=1.0, kind="real", if_state=truth, pa=1.0))
    df.loc[:20, "if_state"] = 1 - df.loc[:20, "if_state"]  # about 10% of the judge's answers wrong
    a = validity.judge_truth_agreement(df, "if_state", n_boot=200)
    assert 0.6 < a["pearson"] < 0.95 and a["pearson_ci"][0] < a["pearson"] < a["pearson_ci"][1] and a["n"] == 200


def test_named_colours_are_seen_through_lighting_tints_and_ground_the_success_judge(clean):
    table = np.full((2, 32, 32, 3), 200, np.uint8)                # a grey table
    clip = table.copy()
    clip[:, 10:13, 10:13] = (41, 90, 156)                         # a blue bowl under warm light
    assert nets.colour_pixels(clip, "blue").tolist() == [9, 9]
    assert nets.colour_pixels(clip, "red").tolist() == [0, 0] and nets.colour_pixels(table, "blue").max() == 0
    with pytest.raises(ValueError, match="unknown colour"):
        nets.colour_pixels(clip, "mauve")
    seen = nets.named_colours_seen(np.stack([clip, table]), ["rotate the blue bar", "rotate the blue bar"])
    assert seen.tolist() == [True, False]
    # every simulated clip shows the colours its own instruction names
    clips = np.stack([e.frames[simulate.clip_indices(len(e), **CLIP)] for e in clean])
    assert nets.named_colours_seen(clips, [e.task for e in clean]).all()


def test_pa_reversal_flags_an_arm_that_jitters_back_and_forth():
    s = np.zeros((5, state.DIM), np.float32)
    ee = [state.INDEX["ee_x"], state.INDEX["ee_y"]]
    s[:, ee] = np.stack([np.linspace(0.2, 0.6, 5), np.full(5, 0.5)], -1)       # a straight reach: 10 units a move
    assert physics.physics_alignment(s, physics.Thresholds())[0] == 1.0
    s[:, ee[0]] = [0.2, 0.35, 0.2, 0.35, 0.2]                                     # 15 units there and back, twice
    pa, v = physics.physics_alignment(s, physics.Thresholds())
    r = physics.RULES.index("reversal")
    assert not v[0, r] and v[1:, r].all() and pa == 0.25


def test_pa_appear_needs_an_object_absent_so_far_and_present_from_then_on():
    s = np.zeros((4, state.DIM), np.float32)
    s[:, [state.INDEX["ee_x"], state.INDEX["ee_y"]]] = 0.2
    s[:, [state.idx("red", "obj_x"), state.idx("red", "obj_y")]] = 0.7
    a = physics.RULES.index("appear")
    s[:, state.idx("red", "obj")] = [0, 0, 1, 1]       # made from nothing at the second transition
    v = physics.physics_alignment(s, physics.Thresholds())[1]
    assert v[:, a].tolist() == [False, True, False]
    s[:, state.idx("red", "obj")] = [0, 1, 0, 1]       # flicker: no frame after the first keeps it for good
    assert physics.transition_stats(s)["appear"].max() == 0.0


def test_pa_undo_flags_a_stain_growing_back_and_a_button_unpressing():
    s = np.zeros((4, state.DIM), np.float32)
    s[:, [state.INDEX["ee_x"], state.INDEX["ee_y"]]] = 0.5
    s[:, state.INDEX["stain"]] = 1
    s[:, state.INDEX["stain_mass"]] = [1.0, 0.6, 0.2, 0.2]          # wiped down: valid
    u = physics.RULES.index("undo")
    assert physics.physics_alignment(s, physics.Thresholds())[0] == 1.0
    s[3, state.INDEX["stain_mass"]] = 0.7                            # the stain grows back
    assert physics.physics_alignment(s, physics.Thresholds())[1][:, u].tolist() == [False, False, True]
    s[:, state.INDEX["stain"]] = 0
    s[:, state.idx("cyan", "button")] = 1
    s[:, state.idx("cyan", "button_pressed")] = [0, 1, 1, 0]        # a latched button comes back up
    assert physics.physics_alignment(s, physics.Thresholds())[1][:, u].tolist() == [False, False, True]


def test_pa_gone_flags_an_object_missing_where_nothing_could_hide_it():
    s = np.zeros((5, state.DIM), np.float32)
    ee = [state.INDEX["ee_x"], state.INDEX["ee_y"]]
    s[:, ee] = 0.2                                                   # the gripper waits far away (SCALE 100: 20 units)
    s[:, [state.idx("red", "obj_x"), state.idx("red", "obj_y")]] = 0.7
    s[:, state.idx("red", "obj")] = [1, 1, 0, 0, 0]                  # gone after the second frame
    g = physics.RULES.index("gone")
    v = physics.physics_alignment(s, physics.Thresholds())[1]
    assert v[:, g].tolist() == [False, True, False, False]
    s[2:, ee] = 0.7                                                  # the gripper is over it from then on: hidden
    assert physics.transition_stats(s)["gone"].max() == 0.0
    s[:, ee] = 0.2
    s[:, state.idx("blue", "obj")] = [0, 0, 1, 1, 1]                 # a cube set down on it: hidden too
    s[:, [state.idx("blue", "obj_x"), state.idx("blue", "obj_y")]] = 0.72
    assert physics.transition_stats(s)["gone"].max() == 0.0
    s[:, state.idx("blue", "obj")] = 0
    s[:, state.idx("red", "obj")] = [1, 1, 0, 1, 1]                  # one frame's flicker is forgiven
    assert physics.transition_stats(s)["gone"].max() == 0.0
