"""benchmarks/pipeline_clock.py: stage times from the metrics files, their sum and the budgets."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "pipeline_clock.py"


@pytest.fixture(scope="module")
def clock():
    spec = importlib.util.spec_from_file_location("pipeline_clock", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def metrics(tmp_path):
    """world without a time, collect's seconds_total, a resumed pretrain over budget, two fine-tunes
    and two policy arms."""
    def put(name, d):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(d))
    put("world.json", dict(expert_success_mean=1.0, steps_per_s_render=300.0))
    put("collect.json", dict(datasets={"web": dict(seconds=100.0)}, seconds_total=100.0))
    put("pretrain_world_model.json", dict(stage_seconds=1800.0, resumed_from=500, steps=1000,
                                          steps_per_s=2.0, train_seconds=250.0))
    put("finetune_world_model.json", dict(stage_seconds=500.0, train={
        "a/lora": dict(seconds=100.0, steps=200, steps_per_s=2.0),
        "a/full": dict(seconds=100.0, steps=200, steps_per_s=2.0)}))
    put("train_policy/arm-a.json", dict(stage_seconds=60.0, train=dict(seconds=50.0, steps=100, steps_per_s=2.0)))
    put("train_policy/arm-b.json", dict(stage_seconds=90.0))
    return tmp_path


def by_stage(table):
    return {r["stage"]: r for r in table["rows"]}


def test_sum_missing_and_verdicts(clock, metrics):
    table = clock.clock(metrics)
    rows = by_stage(table)
    assert rows["world"]["seconds"] is None and rows["world"]["within"] == "-"
    assert "not recorded" in rows["world"]["note"] and "stage_seconds" in rows["world"]["note"]
    assert rows["collect"]["seconds"] == 100.0 and rows["collect"]["within"] == "-"
    assert rows["pretrain_world_model"]["within"] == "no"          # 30 min > 25
    assert "RESUMED" in rows["pretrain_world_model"]["note"] and "500" in rows["pretrain_world_model"]["note"]
    ft = rows["finetune_world_model"]
    assert ft["budget_seconds"] == 600 and ft["within"] == "yes" and "RESUMED" not in ft["note"]
    assert rows["train_policy"]["seconds"] == 150.0 and "2 arms" in rows["train_policy"]["note"]
    # stages with no file at all: not recorded, left out of the sum
    assert {"world", "dream", "train_idm", "train_lam", "label", "bench", "evaluate"} == set(table["missing"])
    assert rows["train_policy + evaluate"]["seconds"] is None
    total = table["total"]
    assert total["seconds"] == 100.0 + 1800.0 + 500.0 + 150.0
    assert total["within"] == "yes" and "lower bound" in total["note"] and "world" in total["note"]


def test_finetune_without_list_and_restored_checkpoint(clock, tmp_path):
    (tmp_path / "finetune_world_model.json").write_text(json.dumps(dict(stage_seconds=90.0, train={})))
    (tmp_path / "dream.json").write_text(json.dumps(dict(stage_seconds=700.0)))
    (tmp_path / "train_lam.json").write_text(json.dumps(
        dict(stage_seconds=5.0, train=dict(seconds=0.01, steps=1000, steps_per_s=25.0))))
    rows = by_stage(clock.clock(tmp_path))
    assert rows["finetune_world_model"]["budget"] == "-" and rows["finetune_world_model"]["within"] == "-"
    assert "5 min per fine-tune" in rows["finetune_world_model"]["note"]
    assert rows["dream"]["within"] == "no"
    assert "RESUMED" in rows["train_lam"]["note"] and "1000 of 1000 steps" in rows["train_lam"]["note"]


def test_cli_prints_the_table_and_writes_json(metrics, tmp_path):
    out = tmp_path / "clock.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--metrics-dir", str(metrics), "--json", str(out)],
                         capture_output=True, text=True, check=True)
    lines = res.stdout.splitlines()
    world = next(l for l in lines if l.startswith("world "))
    assert "not recorded" in world
    pretrain = next(l for l in lines if l.startswith("pretrain_world_model"))
    assert pretrain.split()[1:4] == ["1800.0", "30.0", "<="] and " no " in pretrain
    total = next(l for l in lines if l.startswith("total"))
    assert "2550.0" in total and "42.5" in total
    assert any(l.startswith("note:") and "world" in l for l in lines)
    table = json.loads(out.read_text())
    assert table["total"]["seconds"] == 2550.0 and "world" in table["missing"]
    assert by_stage(table)["world"]["seconds"] is None


def test_runs_on_the_committed_metrics():
    res = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1].startswith(("note:", "total"))
