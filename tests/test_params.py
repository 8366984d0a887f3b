"""Unit tests of parameter validation and profiles."""
import subprocess
import sys

import pytest
import yaml

from dreamgen.params import STAGES, ParamError, apply_profile, load_params, set_args, validate


@pytest.fixture()
def world(root):
    return dict(load_params(root / "params.yaml")["world"])


def test_default_params_validate(root):
    params = load_params(root / "params.yaml")
    assert validate("world", params["world"]).image_size == params["world"]["image_size"]
    validate("collect", params["collect"])


@pytest.mark.parametrize("change, words", [
    ({"imagesize": 64}, ["world.imagesize: unknown key", "image_size"]),
    ({"image_size": "64"}, ["world.image_size: expected int", "got str"]),
    ({"image_size": True}, ["world.image_size: expected int"]),
    ({"image_size": 8}, ["world.image_size: 8 is out of range", "[16, 256]"]),
    ({"min_expert_success": 1.5}, ["world.min_expert_success", "out of range"]),
    ({"workers": 0}, ["world.workers: 0 is out of range"]),
])
def test_bad_values_name_the_key_and_the_fix(world, change, words):
    world.update(change)
    with pytest.raises(ParamError) as err:
        validate("world", world)
    for w in words:
        assert w in str(err.value)
    assert "Fix:" in str(err.value)


def test_missing_key_and_every_problem_reported(world):
    del world["seed"]
    world["workers"] = -1
    msg = str(pytest.raises(ParamError, validate, "world", world).value)
    assert "world.seed: missing" in msg and "world.workers" in msg


def test_a_list_range_applies_to_each_item(root):
    section = dict(load_params(root / "params.yaml")["finetune_world_model"])
    assert validate("finetune_world_model", section | {"sampler_etas": [0, 1.0]}).sampler_etas == [0, 1.0]
    msg = str(pytest.raises(ParamError, validate, "finetune_world_model",
                            section | {"sampler_etas": [0.0, 1.5, 0.5, -0.1]}).value)
    assert "finetune_world_model.sampler_etas: 1.5 at index 1 is out of range. Fix: use values in [0.0, 1.0]" in msg
    assert "finetune_world_model.sampler_etas: -0.1 at index 3 is out of range" in msg
    assert "0.5 at index 2" not in msg and msg.count("sampler_etas:") == 2  # one problem per bad item


@pytest.fixture()
def evaluate(root):
    return dict(load_params(root / "params.yaml")["evaluate"])


def test_environment_indices_are_checked_against_the_world(evaluate):
    from dreamgen.world import ENVIRONMENTS
    last = len(ENVIRONMENTS) - 1
    assert validate("evaluate", evaluate | {"environments": [0, last]}).environments == [0, last]
    msg = str(pytest.raises(ParamError, validate, "evaluate", evaluate | {"environments": [0, 99, -1]}).value)
    assert f"evaluate.environments: 99 at index 1 is out of range. Fix: use values in [0, {last}]" in msg
    assert "evaluate.environments: -1 at index 2 is out of range" in msg
    msg = str(pytest.raises(ParamError, validate, "evaluate", evaluate | {"environments": [last + 1]}).value)
    assert f"{last + 1} at index 0 is out of range" in msg


def test_behaviour_names_are_checked_against_the_world(evaluate):
    from dreamgen.world import BEHAVIOURS
    assert validate("evaluate", evaluate | {"behaviours": list(BEHAVIOURS)}).behaviours == list(BEHAVIOURS)
    assert validate("evaluate", evaluate | {"behaviours": []}).behaviours == []  # empty: all of them
    msg = str(pytest.raises(ParamError, validate, "evaluate",
                            evaluate | {"behaviours": ["push", "pick-place", "juggle"]}).value)
    assert "evaluate.behaviours: 'pick-place' at index 1 is not one of" in msg
    assert "Fix: use 'pick_place', or pick one of them" in msg  # the closest name is suggested
    assert "evaluate.behaviours: 'juggle' at index 2 is not one of" in msg and "'push' at index" not in msg


def test_keys_that_must_agree_are_checked_together(root):
    ft = dict(load_params(root / "params.yaml")["finetune_world_model"])
    assert validate("finetune_world_model", ft).wan_model == ""  # the mini model: the full fine-tune is fine
    with pytest.raises(ParamError) as err:
        validate("finetune_world_model", ft | dict(wan_model="some/wan", wan_size=200, wan_num_frames=8))
    msg = str(err.value)
    assert "finetune_world_model.full_experiments: ['pickplace_env0'], but the WAN path" in msg
    assert "Fix: set extra_loras to []" in msg and "Fix: set small_experiments to []" in msg
    assert "wan_size: 200 is not a multiple of 16. Fix: use e.g. 208" in msg
    assert "wan_num_frames: 8 is not 1 + 4 n" in msg and "Fix: use 5" in msg
    ok = ft | dict(wan_model="some/wan", full_experiments=[], extra_loras=[], small_experiments=[])
    assert validate("finetune_world_model", ok).wan_model == "some/wan"


def test_float_accepts_int(world):
    world["expert_noise"] = 1
    assert validate("world", world).expert_noise == 1


def test_unknown_stage():
    with pytest.raises(ParamError, match="known stages"):
        validate("nope", {})


def test_profile_may_only_change_existing_keys(root):
    base = load_params(root / "params.yaml")
    before = base["world"]["seed"]
    merged = apply_profile(base, {"world": {"seed": before + 7}})
    assert merged["world"]["seed"] == before + 7
    assert base["world"]["seed"] == before, "applying a profile must not change its base"
    with pytest.raises(ParamError, match="world.sed is not a key"):
        apply_profile(base, {"world": {"sed": 7}})
    with pytest.raises(ParamError, match="section 'wrld'"):
        apply_profile(base, {"wrld": {"seed": 7}})


@pytest.mark.parametrize("profile", ["smoke", "paper", "long", "gpu"])
def test_every_profile_yields_valid_params(root, profile):
    override = yaml.safe_load((root / "profiles" / f"{profile}.yaml").read_text())
    merged = apply_profile(load_params(root / "params.yaml"), override)
    for stage in STAGES:  # every section, and the keys that must agree with each other
        validate(stage, merged[stage])


def test_set_args_round_trip():
    args = set_args({"world": {"seed": 3, "expert_noise": 0.5}, "collect": {"camera": "top"}})
    assert args == ["-S", "world.seed=3", "-S", "world.expert_noise=0.5", "-S", 'collect.camera="top"']


def test_cli_profile_writes_merged_file(root, tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "params.yaml").write_text((root / "params.yaml").read_text())
    (tmp_path / "profiles" / "smoke.yaml").write_text((root / "profiles" / "smoke.yaml").read_text())
    out = subprocess.run([sys.executable, "-m", "dreamgen.params", "profile", "smoke",
                          "--params", str(tmp_path / "params.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    merged = load_params(tmp_path / "params.yaml")
    assert merged["world"]["image_size"] == yaml.safe_load(
        (root / "profiles" / "smoke.yaml").read_text())["world"]["image_size"]
    (tmp_path / "profiles" / "bad.yaml").write_text("world: {imagesize: 3}\n")
    bad = subprocess.run([sys.executable, "-m", "dreamgen.params", "profile", "bad",
                          "--params", str(tmp_path / "params.yaml")], capture_output=True, text=True)
    assert bad.returncode == 2 and "world.imagesize is not a key" in bad.stderr
