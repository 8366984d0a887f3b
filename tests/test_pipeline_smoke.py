"""End to end: `dvc repro` of the smoke profile in a throwaway copy, checking real outputs."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dreamgen import data

pytestmark = pytest.mark.slow
IGNORE = shutil.ignore_patterns(".venv", ".git", "data", "reports", "__pycache__", ".pytest_cache", "*.egg-info",
                                "tmp", "cache")


def sh(args, cwd, check=True):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and out.returncode:
        raise AssertionError(f"{' '.join(args)} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


@pytest.fixture(scope="module")
def repo(root, tmp_path_factory):
    repo = tmp_path_factory.mktemp("smoke") / "repo"
    shutil.copytree(root, repo, ignore=IGNORE)
    sh(["git", "init", "-q"], repo)
    sh([sys.executable, "-m", "dreamgen.params", "profile", "smoke"], repo)
    sh([sys.executable, "-m", "dvc", "repro"], repo)
    return repo


def test_executed_notebooks_and_html(repo):
    for stage in ("01_world", "02_collect"):
        nb = json.loads((repo / f"reports/notebooks/{stage}.ipynb").read_text())
        assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert any(o.get("data", {}).get("image/png") for c in nb["cells"] for o in c.get("outputs", [])), \
            f"{stage}: no figure in the executed notebook"
        assert (repo / f"reports/notebooks/{stage}.html").stat().st_size > 10_000


def test_world_outputs(repo):
    spec = json.loads((repo / "data/world/spec.json").read_text())
    metrics = json.loads((repo / "reports/metrics/world.json").read_text())
    assert spec["image_size"] == 32 and len(spec["behaviours"]) >= 10 and spec["n_environments"] >= 8
    assert len(spec["web_embodiments"]) >= 6 and spec["robot"] not in spec["web_embodiments"]
    rates = [r for row in metrics["expert_success"].values() for r in row.values()]
    assert len(rates) == len(spec["behaviours"]) * (len(spec["web_embodiments"]) + 2)
    assert all(0.0 <= r <= 1.0 for r in rates) and metrics["steps_per_s_render"] > 0
    assert (repo / "reports/tables/world/expert_success.md").is_file()
    assert (repo / "reports/figures/world/gallery_robot.png").is_file()


def test_datasets_validate_and_match_the_recipe(repo):
    spec = json.loads((repo / "data/world/spec.json").read_text())
    want = dict(robot_cotrain=len(spec["behaviours"]), robot_pickplace_env0=2, robot_b=len(spec["behaviours"]),
                web=len(spec["web_embodiments"]) * len(spec["behaviours"]) * spec["n_environments"])
    metrics = json.loads((repo / "reports/metrics/collect.json").read_text())["datasets"]
    for name, n in want.items():
        root = repo / "data/datasets" / name
        assert data.validate_dataset(root) == [], name
        ds = data.Dataset(root)
        assert ds.num_episodes == n == metrics[name]["episodes"]
        assert metrics[name]["roundtrip_max_abs_error"] == 0
        ep = ds.episode(0)
        assert ep.frames.shape[1:] == (32, 32, 3)
        assert (ep.actions is None) == (name == "web")
    web = data.Dataset(repo / "data/datasets/web")
    assert {m["embodiment"] for m in web.episodes_meta} == set(spec["web_embodiments"])
    assert {m["embodiment"] for m in data.Dataset(repo / "data/datasets/robot_cotrain").episodes_meta} == {spec["robot"]}


def test_second_repro_runs_nothing_and_a_param_reruns_only_downstream(repo):
    again = sh([sys.executable, "-m", "dvc", "repro"], repo)
    assert "Running stage" not in again.stdout, again.stdout
    params = (repo / "params.yaml").read_text().replace("seed: 1000", "seed: 1001")
    assert params != (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params)
    status = sh([sys.executable, "-m", "dvc", "status", "--json"], repo)
    assert set(json.loads(status.stdout)) == {"collect"}, status.stdout


def test_bad_parameter_fails_the_stage_with_its_name(repo):
    text = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(text.replace("workers: 2", "workers: two", 1))
    try:
        out = sh([sys.executable, "-m", "dreamgen.run", "world"], repo, check=False)
    finally:
        (repo / "params.yaml").write_text(text)
    assert out.returncode == 2 and "world.workers: expected int" in out.stderr


def test_pretrain_world_model_outputs(repo):
    import numpy as np
    import torch

    from dreamgen.world_model import ClipSpec, load_pipeline, resize_frames

    nb = json.loads((repo / "reports/notebooks/03_pretrain_world_model.ipynb").read_text())
    assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    metrics = json.loads((repo / "reports/metrics/pretrain_world_model.json").read_text())
    assert metrics["steps"] == 30 and metrics["clip_spec"] == dict(num_frames=8, frame_stride=4, image_size=16)
    for part in ("heldout_web", "zero_shot_robot"):
        assert 0 <= metrics[part]["mae_dream"] <= 255 and metrics[part]["mae_copy_first"] > 0
        assert 0 <= metrics[part]["motion_hit"] <= 1
    assert metrics["final_loss"] < metrics["first_loss"]
    small = metrics["small"]  # the bench's smaller model: same steps, fewer parameters
    assert small["steps"] == 30 and small["params_m"] < metrics["params_m"] / 2
    assert 0 <= small["heldout_web"]["mae_dream"] <= 255
    assert load_pipeline(repo / "data/models/world_model/base_small").clip_spec == ClipSpec(8, 4, 16)
    for fig in ("loss.png", "samples_over_training.gif", "heldout_web.gif", "zero_shot_robot.gif"):
        assert (repo / "reports/figures/pretrain_world_model" / fig).is_file(), fig
    pipe = load_pipeline(repo / "data/models/world_model/base")
    assert pipe.clip_spec == ClipSpec(8, 4, 16)
    ep = data.Dataset(repo / "data/datasets/web").episode(0)
    first = resize_frames(ep.frames[0], 16)
    out = pipe(first, ep.task, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames
    assert out.shape == (1, 8, 16, 16, 3) and (out[0, 0] == first).all()
    assert np.isfinite(out.astype(float)).all()


def test_idm_checkpoint_metrics_and_replay(repo):
    from dreamgen.actions import idm

    cfg = idm.load_idm_config(repo / "data/models/idm")
    assert cfg.frame_stride == 4 and cfg.embodiment == "robot" and cfg.image_size == 16  # the world model's size
    assert cfg.action_names == ("vx", "vy", "wz", "grip") and cfg.extra["holdout_every"] == 10
    m = json.loads((repo / "reports/metrics/train_idm.json").read_text())
    assert m["train"]["steps"] == 30 and m["heldout_episodes"] >= 1
    assert m["replay"]["replay_true"] == 1.0  # true actions replayed from the true initial state succeed
    for key in ("action_mse", "action_mse_mean_baseline", "grip_sign_acc", "state_mae"):
        assert 0 <= m["idm"][key] < 10 and 0 <= m["idm_strided"][key] < 10


def test_lam_checkpoint_and_metrics(repo):
    from dreamgen.actions import lam

    cfg = lam.load_lam_config(repo / "data/models/lam")
    assert cfg.codebook_size == 8 and cfg.frame_stride == 4
    m = json.loads((repo / "reports/metrics/train_lam.json").read_text())
    assert 0 < m["robot_usage"] <= 1 and 1 <= m["robot_perplexity"] <= 8 and m["robot_mse_copy"] > 0


def test_labelled_heldout_datasets(repo):
    full, strided = repo / "data/neural/heldout_full", repo / "data/neural/heldout_strided"
    for root in (full, strided):
        assert data.validate_dataset(root) == []
        ds = data.Dataset(root)
        assert all(t.startswith("<RELABEL> ") for t in ds.tasks)
        assert "action.latent" in ds.info["features"] and ds.info["dreamgen"]["labeller"]["idm_sha256"]
        ep = ds.episode(0)
        assert ep.states.shape[1] == 4 and ep.meta["source_dataset"].endswith("robot_cotrain")
    assert data.Dataset(full).fps == 10 and data.Dataset(full).episode(0).actions.shape[1] == 4
    assert data.Dataset(strided).fps == 2.5 and data.Dataset(strided).episode(0).actions.shape[1] == 16
    m = json.loads((repo / "reports/metrics/label.json").read_text())
    assert m["frames_per_s"] > 0 and set(m["gap"]) == {"heldout_full", "heldout_strided", "idm_real"}


def test_idm_labelled_real_dataset_for_the_idm_arms(repo):
    """Every real co-training episode, labelled by the IDM the way dreams are (label.idm_real_path)."""
    import yaml

    path = yaml.safe_load((repo / "params.yaml").read_text())["label"]["idm_real_path"]
    real = data.Dataset(repo / "data/datasets/robot_cotrain")
    assert data.validate_dataset(repo / path) == []
    ds = data.Dataset(repo / path)
    assert ds.num_episodes == real.num_episodes and ds.fps == 2.5
    assert ds.info["dreamgen"]["label_mode"] == "strided" and ds.info["dreamgen"]["action_chunk"] == 4
    assert all(t.startswith("<RELABEL> ") for t in ds.tasks)
    for i in (0, ds.num_episodes - 1):
        ep, src = ds.episode(i), real.episode(i)
        assert ep.meta["source_episode"] == i and ep.meta["source_meta"]["behaviour"] == src.meta["behaviour"]
        assert ep.frames.shape == (len(range(0, len(src), 4)), 16, 16, 3)  # strided, at the IDM's size
        assert ep.actions.shape == (len(ep), 16) and ep.states.shape == (len(ep), 4)


def test_finetuned_variants_load_and_report_quality(repo):
    from dreamgen.world_model import variants

    m = json.loads((repo / "reports/metrics/finetune_world_model.json").read_text())
    assert set(m["quality"]) == {"cotrain/base", "cotrain/lora", "pickplace_env0/base", "pickplace_env0/lora",
                                 "pickplace_env0/full", "pickplace_env0/lora-r4-s8", "pickplace_env0/lora-r8-s4",
                                 "pickplace_env0/small", "cotrain/retake", "pickplace_env0/retake"}
    for q in m["quality"].values():
        assert 0 <= q["mae_dream"] <= 255 and 0 <= q["look"] <= 1 and q["fid_idm"] >= 0 and q["clips"] >= 1
    for e in ("cotrain", "pickplace_env0"):  # the teleoperator's second take: the same clips, closer than any copy
        retake, lora = m["quality"][f"{e}/retake"], m["quality"][f"{e}/lora"]
        assert retake["clips"] == lora["clips"] and retake["mae_dream"] < retake["mae_copy_first"]
    assert m["train"]["cotrain/lora"]["steps"] == 6
    assert m["train"]["cotrain/lora"]["trainable_params"] < m["train"]["pickplace_env0/full"]["trainable_params"]
    root = repo / "data/models/world_model"
    pipe, info = variants.load_variant(root / "base", root / "finetuned/pickplace_env0/lora")
    assert info["kind"] == "lora" and info["meta"]["trained_pairs"] == [["pick_place", 0]]
    pipe, info = variants.load_variant(root / "base", root / "finetuned/pickplace_env0/full")
    assert info["kind"] == "full"
    for name, (rank, steps) in (("lora-r4-s8", (4, 8)), ("lora-r8-s4", (8, 4))):  # the bench ranking's
        pipe, info = variants.load_variant(root / "base", root / f"finetuned/pickplace_env0/{name}")
        assert info["kind"] == "lora" and info["rank"] == rank and m["train"][f"pickplace_env0/{name}"]["steps"] == steps
    pipe, info = variants.load_variant(root / "base", root / "finetuned/pickplace_env0/small")
    assert info["kind"] == "model" and info["meta"]["trained_pairs"] == [["pick_place", 0]]
    assert m["train"]["pickplace_env0/small"]["trainable_params"] < m["train"]["pickplace_env0/full"]["trainable_params"]


def test_dreams_and_their_neural_trajectories(repo):
    spec = json.loads((repo / "data/world/spec.json").read_text())
    n_b, n_e = len(spec["behaviours"]), spec["n_environments"]
    want = {}
    for exp in ("cotrain", "pickplace_env0"):  # smoke: one dream per cell; cells follow the trained pairs
        pairs = json.loads((repo / f"data/models/world_model/finetuned/{exp}/lora/adapter_config.json").read_text())
        seen_b = {b for b, _ in pairs["meta"]["trained_pairs"]}
        want[exp] = len(pairs["meta"]["trained_pairs"]) + (n_b - len(seen_b)) + len(seen_b) * (n_e - 1)
    assert want["pickplace_env0"] == 1 + (n_b - 1) + (n_e - 1)
    for exp, n in want.items():
        root = repo / "data/dreams" / exp
        assert data.validate_dataset(root) == []
        ds = data.Dataset(root)
        assert ds.num_episodes == n and ds.fps == 2.5 and ds.info["robot_type"] == "robot"
        ep = ds.episode(0)
        assert ep.frames.shape == (15, 16, 16, 3) and ep.actions is None  # two chained 8-frame clips
        for key in ("world_model", "adapter", "prompt", "seed", "guidance_scale", "split", "sim_seed"):
            assert key in ep.meta, key
        neural = data.Dataset(repo / "data/neural" / f"dream_{exp}")
        assert data.validate_dataset(neural.root) == [] and neural.num_episodes == n
        assert all(t.startswith("<DREAM> ") for t in neural.tasks)
        nep = neural.episode(0)
        assert nep.actions.shape == (15, 16) and nep.states.shape == (15, 4)
        assert nep.meta["adapter"].endswith(f"{exp}/lora") and nep.meta["seed"] == ep.meta["seed"]
    m = json.loads((repo / "reports/metrics/dream.json").read_text())
    assert m["experiments"]["pickplace_env0"]["by_split"] == {"seen": 1, "new_behaviour": n_b - 1,
                                                              "unseen_environment": n_e - 1}


def test_policies_per_arm_and_their_evaluation(repo):
    import yaml

    arms = yaml.safe_load((repo / "params.yaml").read_text())["train_policy"]["arms"]
    assert len(arms) >= 3
    from dreamgen.policy.config import load_config
    from dreamgen.policy.windows import parse_arm

    assert any(a.endswith("-idm") for a in arms) and any("-s1" in a for a in arms)
    for arm in arms:
        m = json.loads((repo / f"reports/metrics/train_policy/{arm}.json").read_text())
        assert m["arm"] == arm and m["train"]["steps"] == 10 and m["parameters"] > 0
        # the default encoder reads the bench's frozen estimator, whose weights are not trained
        assert m["encoder"] == "state" and m["frozen_parameters"] > 0
        assert (m["real_windows"] > 0) == (m["real_per_behaviour"] > 0)
        assert (m["neural_windows"] > 0) == (m["neural_trajectories"] > 0)
        assert m["idm_labelled_real"] == arm.endswith("-idm")
        assert (repo / f"reports/notebooks/10_train_policy/{arm}.html").is_file()
    for arm in (a for a in arms if a.endswith("-idm")):  # the same real episodes, as IDM labels
        extra = load_config(repo / f"data/models/policies/{arm}").extra
        twin = load_config(repo / f"data/models/policies/{arm[:-len('-idm')]}").extra
        assert extra["idm"] and extra["idm_real_dataset"].endswith("idm_real_cotrain")
        assert extra["real_episodes"] == twin["real_episodes"] and extra["real_windows"] < twin["real_windows"]
    ev = json.loads((repo / "reports/metrics/evaluate.json").read_text())
    assert ev["expert"]["success"] >= 0.5 and ev["expert"]["episodes"] == 2  # 2 behaviours x 1 episode
    assert all(0 < v < 2 for v in ev["resolvable_difference"].values())
    assert set(ev["arms"]) == {parse_arm(a).config for a in arms}  # seeds pooled per configuration
    for row in ev["arms"].values():
        assert 0 <= row["success"] <= 1 and row["ci"][0] <= row["success"] <= row["ci"][1]
    assert ev["arms"]["gr00t-r1-n4"]["seeds"] == 2 and ev["arms"]["gr00t-r1-n4"]["episodes"] == 4
    # rows name their family when the arms have several (smoke: dp and gr00t)
    assert [r["row"] for r in ev["sanity"]] == ["expert (upper bound)", "gr00t: GT r1", "gr00t: IDM-labelled real (r1)"]
    (r1,) = ev["r1"]
    assert r1["real_per_behaviour"] == 1 and r1["gt_neural_per_seed"].count("s") == 2 and r1["idm_real"] is not None
    assert (repo / "reports/tables/evaluate/r1_sanity.md").is_file()
    assert (repo / "reports/figures/evaluate/r1_cotraining.png").is_file()


def test_bench_ranks_variants_and_correlates_with_policy_success(repo):
    import math

    import yaml

    p = yaml.safe_load((repo / "params.yaml").read_text())["bench"]
    m = json.loads((repo / "reports/metrics/bench.json").read_text())["rank"]
    variants = p["rank_variants"]
    assert len(variants) >= 5 and m["experiment"] == p["rank_experiment"]
    assert [r["variant"] for r in m["variants"]] == variants
    n_prompts = 3 * p["rank_prompts_per_split"]  # one split each: seen, new behaviour, unseen environment
    assert m["prompts"] == n_prompts
    for r in m["variants"]:
        assert r["videos"] == n_prompts and r["episodes"] == m["eval_episodes_per_policy"] == 3
        assert 0 <= r["if_state"] <= 1 and 0 <= r["if_success"] <= 1 and 0 <= r["pa"] <= 1 and 0 <= r["success"] <= 1
        assert r["bench"] == pytest.approx((r["if_success"] + r["pa"]) / 2)  # the pixel judge ranks
    assert {(r["variant"], r["split"]) for r in m["by_split"]} == {
        (v, s) for v in variants for s in ("seen", "new_behaviour", "unseen_environment")}
    for name in ("if_success", "if_state", "if_classifier", "pa", "bench"):
        c = m["correlation"][name]
        assert c["n"] == len(variants)
        if c["defined"]:
            assert -1 <= c["pearson"] <= 1 and -1 <= c["spearman"] <= 1
        else:  # undefined is reported as such, never as a number
            assert c["pearson"] is None and c["spearman"] is None and c["reason"]
    f = m["filter"]
    assert f["variant"] == p["filter_variant"] and f["kept"] == f["total"] == n_prompts  # smoke keeps everything
    assert f["filtered"]["episodes"] == f["unfiltered"]["episodes"]
    for v in variants + [f"{p['filter_variant']}-filtered"]:
        neural = data.Dataset(repo / p["rank_dir"] / "neural" / v)
        assert data.validate_dataset(neural.root) == [] and all(t.startswith("<DREAM> ") for t in neural.tasks)
        assert (repo / p["rank_dir"] / "policies" / v / "policy.json").is_file()
    for t in ("rank_by_split", "rank_variants", "rank_correlation"):
        assert (repo / "reports/tables/bench" / f"{t}.csv").is_file(), t
    assert (repo / "reports/figures/bench/rank_correlation.png").is_file()
    assert not math.isnan(m["seconds"])


def test_bench_validity_layout(repo):
    m = json.loads((repo / "reports/metrics/bench.json").read_text())
    v = m["validity"]
    for judge in ("IF success net", "IF state+predicate", "IF classifier"):
        for kind in ("real", "clean", "degraded"):
            assert 0 <= v[judge][kind]["accuracy"] <= 1, (judge, kind)
    kinds = {"all", "real", "clean", "degraded", "swapped", "shuffled", "teleport", "recolour", "vanish", "interpenetrate"}
    assert {"real", "clean", "degraded"} <= set(v["PA rules"]) <= kinds
    a = v["judge_truth_pearson"]
    assert a["paper_pearson"] == 0.94 and a["n"] > 0 and set(a["kinds"]) >= {"real", "clean", "swapped"}
    assert a["pearson"] is None or -1 <= a["pearson"] <= 1
    assert m["if_slack"]["slack"] >= 0 and m["real_by_behaviour"]


def test_paper_world_model_path_runs_the_same_stages(repo, tmp_path):
    """Stages 04 and 05 with `wan_model` set, as the paper profile runs them: a tiny random
    WanImageToVideoPipeline saved locally stands in for WAN2.1-14B (nothing downloads). Kept last:
    it re-executes the two notebooks in the smoke repository."""
    import yaml

    from dreamgen.tiny import tiny_wan_i2v
    from dreamgen.world_model import wan_stage

    wan_dir = tmp_path / "wan"
    tiny_wan_i2v().save_pretrained(wan_dir)
    out = tmp_path / "out"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["finetune_world_model"] |= dict(
        wan_model=str(wan_dir), wan_size=32, wan_num_frames=5, wan_dtype="float32", full_experiments=[],
        extra_loras=[], small_experiments=[], out_dir=str(out / "finetuned"), ckpt_dir=str(out / "ckpt"),
        metrics_path=str(out / "finetune.json"), figures_dir=str(out / "finetune_figures"))
    params["dream"] |= dict(variants_dir=str(out / "finetuned"), out_dir=str(out / "dreams"),
                            metrics_path=str(out / "dream.json"), figures_dir=str(out / "dream_figures"))
    (repo / "params_wan.yaml").write_text(yaml.safe_dump(params))
    for stage in ("finetune_world_model", "dream"):
        sh([sys.executable, "-m", "dreamgen.run", stage, "--params", "params_wan.yaml"], repo)

    size = params["pretrain_world_model"]["image_size"]  # dreams come back at the size the IDM labels
    ft = json.loads((out / "finetune.json").read_text())
    assert ft["wan"]["model"] == str(wan_dir) and ft["clip_spec"]["num_frames"] == 5
    assert ft["clip_spec"]["image_size"] == size
    assert set(ft["quality"]) == {f"{e}/{v}" for e in ("cotrain", "pickplace_env0")
                                  for v in ("base", "lora", "retake")}
    for e in ("cotrain", "pickplace_env0"):
        assert wan_stage.is_wan_variant(out / "finetuned" / e / "lora")
        assert ft["train"][f"{e}/lora"]["steps"] == params["finetune_world_model"]["lora_steps"]
        assert ft["quality"][f"{e}/lora"]["clips"] > 0
    assert [p.name for p in (out / "finetuned" / "pickplace_env0").iterdir()] == ["lora"]
    dream = json.loads((out / "dream.json").read_text())
    for e in ("cotrain", "pickplace_env0"):
        ds = data.Dataset(out / "dreams" / e)
        assert data.validate_dataset(ds.root) == []
        assert ds.num_episodes == dream["experiments"][e]["dreams"] > 0
        assert ds.episode(0).frames.shape == (1 + params["dream"]["segments"] * 4, size, size, 3)
        assert {m["world_model"] for m in ds.episodes_meta} == {str(wan_dir)}
