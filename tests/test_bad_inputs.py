"""A battery of bad inputs (issue 21): each one is refused with a message naming what is wrong and where.

Every case builds its input small in tmp_path (the repository's params.yaml, profiles and data are only
read, never touched), runs one API call or one command line, and checks that
- an API call raises the exception it should (a project exception where the code has one), whose
  message holds the given words (the key, the path, the fix);
- a command line exits non-zero without a traceback and prints those words;
- every file of the folder the call could touch is byte-identical afterwards (hashes before and after).
Cases where the code misbehaves are kept, marked xfail(strict=True) with what happens.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from dreamgen import data
from dreamgen.actions.label import LabelError
from dreamgen.data import DATA_PATH, DatasetError
from dreamgen.episode import Episode
from dreamgen.params import ParamError, apply_profile, load_params, load_profile, stage_section, validate
from dreamgen.policy.config import PolicyError

from test_policy import ACT, STATE, neural_dataset, real_dataset, tiny_cfg
from test_world_model import new_pipe, text  # noqa: F401  (the tiny text encoder fixture)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
VIDEO = "videos/chunk-000/observation.images.top/episode_{:06d}.mp4"
CLI = "cli"  # `raises` of a command-line case


# --------------------------------------------------------------------------- the harness

@dataclass
class Case:
    """setup(tmp, ctx) -> (folder the call could touch, the call). For a CLI case the call returns a
    CompletedProcess; otherwise it must raise `raises` with all `words` in its message."""
    setup: Callable[[Path, "Ctx"], tuple[Path, Callable[[], Any]]]
    raises: Any
    words: tuple[str, ...]


@dataclass
class Ctx:
    """Pristine inputs built once per module; a case copies what it breaks into its own tmp_path."""
    real: Path
    neural: Path
    request: Any
    _pipe: Any = field(default=None)

    def copy(self, src: Path, tmp: Path, name: str | None = None) -> Path:
        dst = tmp / (name or src.name)
        shutil.copytree(src, dst)
        return dst

    @property
    def pipe(self):
        """A tiny DreamGen world model (16x16 frames, the tiny text encoder of test_world_model)."""
        if self._pipe is None:
            self._pipe = new_pipe(self.request.getfixturevalue("text"))
        return self._pipe


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    return real_dataset(root / "real", per_behaviour=1, t=6), neural_dataset(root / "neural", n=3)


@pytest.fixture()
def ctx(inputs, request):
    return Ctx(*inputs, request)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` (hidden ones too): path -> sha256 of the bytes, or 'dir'."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def project(tmp: Path) -> Path:
    """A copy of params.yaml, profiles/ and a stub dvc.yaml (so the runner finds its root) in tmp/repo."""
    repo = tmp / "repo"
    (repo / "profiles").mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    for prof in (ROOT / "profiles").glob("*.yaml"):
        shutil.copy(prof, repo / "profiles" / prof.name)
    (repo / "dvc.yaml").write_text("stages: {}\n")
    return repo


def run_cli(module: str, *args, cwd: Path):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def section(repo: Path, stage: str) -> dict:
    return dict(load_params(repo / "params.yaml")[stage])


def replace_in(path: Path, old: str, new: str) -> None:
    text_ = path.read_text()
    assert old in text_, (old, path)
    path.write_text(text_.replace(old, new, 1))


def edit_info(root: Path, **changes) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    info.update(changes)
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))


def parquet(root: Path, i: int) -> Path:
    return root / DATA_PATH.format(episode_chunk=0, episode_index=i)


# --------------------------------------------------------------------------- parameters and profiles (API)

def params_validate(stage, change=None, drop=()):
    def setup(tmp, ctx):
        repo = project(tmp)
        values = section(repo, stage) | (change or {})
        for k in drop:
            del values[k]
        return repo, lambda: validate(stage, values)
    return setup


def params_yaml_syntax(tmp, ctx):
    repo = project(tmp)
    replace_in(repo / "params.yaml", "  supersample: 3\n", "  supersample: 3: 4\n")
    return repo, lambda: load_params(repo / "params.yaml")


def params_missing_file(tmp, ctx):
    repo = project(tmp)
    return repo, lambda: load_params(repo / "nope.yaml")


def params_no_section(tmp, ctx):
    repo = project(tmp)
    return repo, lambda: stage_section(load_params(repo / "params.yaml"), "wrld", repo / "params.yaml")


def profile_file(text_):
    def setup(tmp, ctx):
        repo = project(tmp)
        (repo / "profiles" / "bad.yaml").write_text(text_)
        return repo, lambda: apply_profile(load_params(repo / "params.yaml"),
                                           load_profile(repo / "profiles" / "bad.yaml"),
                                           str(repo / "profiles" / "bad.yaml"))
    return setup


# --------------------------------------------------------------------------- command lines

def cli_params_check_broken(tmp, ctx):
    repo = project(tmp)
    replace_in(repo / "params.yaml", "  supersample: 3\n", "  supersampel: 3\n")
    return repo, lambda: run_cli("dreamgen.params", "check", "--params", repo / "params.yaml", cwd=repo)


def cli_params_profile_unknown_key(tmp, ctx):
    repo = project(tmp)
    (repo / "profiles" / "bad.yaml").write_text("world:\n  image_sise: 32\n")
    return repo, lambda: run_cli("dreamgen.params", "profile", "bad", "--params", repo / "params.yaml", cwd=repo)


def cli_params_profile_without_name(tmp, ctx):
    repo = project(tmp)
    return repo, lambda: run_cli("dreamgen.params", "profile", "--params", repo / "params.yaml", cwd=repo)


def cli_run(*args, edit=None):
    def setup(tmp, ctx):
        repo = project(tmp)
        if edit:
            replace_in(repo / "params.yaml", *edit)
        return repo, lambda: run_cli("dreamgen.run", *args, cwd=repo)
    return setup


# --------------------------------------------------------------------------- datasets

def broken_real(corrupt, call=lambda root: data.assert_valid(root)):
    def setup(tmp, ctx):
        root = ctx.copy(ctx.real, tmp)
        corrupt(root)
        return tmp, lambda: call(root)
    return setup


def truncate_parquet(root):
    p = parquet(root, 1)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def garbage_video(root):
    (root / VIDEO.format(2)).write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())


def garble_info(root):
    (root / "meta/info.json").write_text('{"codebase_version": "v2.1", "fps": ')


def write_empty(tmp, ctx):
    return tmp, lambda: data.write_dataset(tmp / "empty", [], fps=10, robot_type="robot")


def write_over_existing(tmp, ctx):
    root = ctx.copy(ctx.real, tmp)
    ep = data.Dataset(root).episode(0)
    return tmp, lambda: data.write_dataset(root, [ep], fps=10, robot_type="robot")


def write_mixed_sizes(tmp, ctx):
    rng = np.random.default_rng(0)
    eps = [Episode(rng.integers(0, 256, (4, s, s, 3), dtype=np.uint8), "t") for s in (16, 24)]
    return tmp, lambda: data.write_dataset(tmp / "mixed", eps, fps=10, robot_type="robot")


# --------------------------------------------------------------------------- neural datasets and policies

def neural_layout(corrupt):
    def setup(tmp, ctx):
        from dreamgen.policy import windows as W

        root = ctx.copy(ctx.neural, tmp)
        corrupt(root)
        return tmp, lambda: W.dataset_layout(data.Dataset(root))
    return setup


def rename_actions(root):
    info = json.loads((root / "meta/info.json").read_text())
    names = info["features"]["action"]["names"]
    info["features"]["action"]["names"] = [n.replace("@", "#") for n in names]
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))


def web_dataset(tmp, ctx):
    from dreamgen.policy import windows as W

    rng = np.random.default_rng(0)
    eps = [Episode(rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8), "clip") for _ in range(2)]
    root = tmp / "web"
    data.write_dataset(root, eps, fps=10, robot_type="web")
    return tmp, lambda: W.dataset_layout(data.Dataset(root))


def neural_without_latents(tmp, ctx):
    from dreamgen.policy import pipeline, windows as W

    root = ctx.copy(ctx.neural, tmp)
    info = json.loads((root / "meta/info.json").read_text())
    del info["dreamgen"]["latent_actions"]
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return tmp, lambda: pipeline.policy_config(W.parse_arm("dp-r1-n2-s0-lam"), str(ctx.real), str(root),
                                               image_size=16, chunk=8)


def too_many_neural(tmp, ctx):
    from dreamgen.policy import pipeline, windows as W

    real, neural = ctx.copy(ctx.real, tmp), ctx.copy(ctx.neural, tmp)
    return tmp, lambda: pipeline.prepare_arm(W.parse_arm("dp-r1-n9-s0"), tiny_cfg(), str(real), str(neural),
                                             0.5, False)


def other_embodiment(tmp, ctx):
    from dreamgen.policy import pipeline, windows as W

    other = real_dataset(tmp / "robot_b", per_behaviour=1, t=6, robot="robot_b")
    return tmp, lambda: pipeline.prepare_arm(W.parse_arm("dp-r1-n0-s0"), tiny_cfg(), str(other),
                                             str(ctx.neural), 0.5, False)


def label_video(shape, fps, embodiment):
    def setup(tmp, ctx):
        from dreamgen.actions.idm import IDMConfig
        from dreamgen.actions.label import video_mode

        cfg = IDMConfig(embodiment="robot", image_size=16, frame_stride=4, control_fps=10,
                        action_names=ACT, state_names=STATE)
        return tmp, lambda: video_mode(cfg, shape, fps, embodiment, "dreams/episode 3")
    return setup


def policy_folder(config_text=None, weights=None):
    def setup(tmp, ctx):
        from dreamgen.policy.config import save_policy
        from dreamgen.policy.models import build, load_policy

        folder = save_policy(build(tiny_cfg()), tmp / "policy")
        if config_text is not None:
            (folder / "policy.json").write_text(config_text) if config_text else (folder / "policy.json").unlink()
        if weights is not None:
            (folder / "policy.pt").write_bytes(weights)
        return tmp, lambda: load_policy(folder)
    return setup


def policy_json_with(**changes):
    from dataclasses import asdict

    return json.dumps(asdict(tiny_cfg()) | changes)


def bad_policy_config(**kw):
    def setup(tmp, ctx):
        return tmp, lambda: tiny_cfg(**kw)
    return setup


def bad_arm(name):
    def setup(tmp, ctx):
        from dreamgen.policy import windows as W

        return tmp, lambda: W.parse_arm(name)
    return setup


def idm_without_config(tmp, ctx):
    from dreamgen.actions.idm import load_idm

    (tmp / "idm").mkdir()
    (tmp / "idm" / "idm.pt").write_bytes(b"weights")
    return tmp, lambda: load_idm(tmp / "idm")


# --------------------------------------------------------------------------- world models, checkpoints, adapters

def world_model_folder(files: dict):
    def setup(tmp, ctx):
        from dreamgen.world_model import load_pipeline

        folder = tmp / "world_model"
        folder.mkdir()
        for name, content in files.items():
            (folder / name).write_text(content)
        return tmp, lambda: load_pipeline(folder)
    return setup


def adapter_without_weights(tmp, ctx):
    from dreamgen.world_model import lora

    folder = tmp / "lora"
    folder.mkdir()
    (folder / lora.CONFIG).write_text(json.dumps({"rank": 4, "alpha": 4, "targets": ["to_q"], "base": "x"}))
    return tmp, lambda: lora.load_adapter(ctx.pipe, folder)


def adapter_of_another_base(tmp, ctx):
    from dreamgen.world_model import lora

    folder = tmp / "lora"
    folder.mkdir()
    (folder / lora.CONFIG).write_text(json.dumps({"rank": 4, "alpha": 4, "targets": ["to_q"], "base": "0" * 16,
                                                  "clip_spec": ctx.pipe.clip_spec.to_dict(), "meta": {}}))
    (folder / lora.WEIGHTS).write_bytes(b"not read")
    return tmp, lambda: lora.load_adapter(ctx.pipe, folder)


def empty_variant(tmp, ctx):
    from dreamgen.world_model.variants import variant_kind

    (tmp / "variant").mkdir()
    return tmp, lambda: variant_kind(tmp / "variant")


def incompatible_checkpoint(tmp, ctx):
    from dreamgen.world_model.fit import MODEL_CARD, check_resumable, model_card

    ckpt = tmp / "ckpt"
    ckpt.mkdir()
    card = model_card(ctx.pipe)
    old = json.loads(json.dumps(card))
    first = next(iter(old["transformer"]))
    old["transformer"][first] = "something else"
    (ckpt / MODEL_CARD).write_text(json.dumps(old, indent=1))
    (ckpt / "train_state.pt").write_bytes(b"an older run")
    return tmp, lambda: check_resumable(ckpt, card)


def wan_missing(tmp, ctx):
    from dreamgen.world_model import wan

    return tmp, lambda: wan.load_wan_i2v(tmp / "wan_nowhere")


# --------------------------------------------------------------------------- prompts and frames

def dream(image=None, prompt="move right"):
    def setup(tmp, ctx):
        img = np.zeros((16, 16, 3), np.uint8) if image is None else image
        return tmp, lambda: ctx.pipe(img, prompt)
    return setup


def bad_video_frames(tmp, ctx):
    return tmp, lambda: data.write_video(tmp / "clip.mp4", np.zeros((4, 16, 16, 3), np.float32), 10)


# --------------------------------------------------------------------------- the battery

def case(id, setup, raises, *words, xfail=None):
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(Case(setup, raises, words), id=id, marks=marks)


CASES = [
    # parameters (API)
    case("params-unknown-key", params_validate("world", {"imagesize": 64}), ParamError,
         "world.imagesize: unknown key", "Fix:", "image_size"),
    case("params-wrong-type", params_validate("world", {"image_size": "64"}), ParamError,
         "world.image_size: expected int", "got str", "Fix:"),
    case("params-out-of-range", params_validate("world", {"workers": 0}), ParamError,
         "world.workers: 0 is out of range", "Fix: use a value in [1, 64]"),
    case("params-missing-key", params_validate("collect", drop=["seed"]), ParamError,
         "collect.seed: missing", "Fix: add it to params.yaml"),
    case("params-bad-choice", params_validate("train_idm", {"backbone": "resnet"}), ParamError,
         "train_idm.backbone: 'resnet' is not one of", "Fix:"),
    case("params-keys-that-disagree", params_validate(
        "finetune_world_model", dict(wan_model="some/wan", wan_size=200)), ParamError,
         "finetune_world_model.wan_size: 200 is not a multiple of 16", "Fix: use e.g. 208"),
    case("params-yaml-syntax", params_yaml_syntax, ParamError,
         "params.yaml:", "invalid YAML", "Fix: fix the YAML syntax at line"),
    case("params-missing-file", params_missing_file, ParamError, "nope.yaml: no such file", "Fix:"),
    case("params-no-such-section", params_no_section, ParamError,
         "wrld: no section in", "params.yaml", "Fix: add a `wrld:` section"),
    # profiles (API)
    case("profile-unknown-key", profile_file("world:\n  sed: 7\n"), ParamError,
         "bad.yaml: world.sed is not a key of params.yaml", "Fix: a profile may only change existing keys"),
    case("profile-unknown-section", profile_file("wrld:\n  seed: 7\n"), ParamError,
         "bad.yaml: section 'wrld' is not in params.yaml", "Fix:"),
    case("profile-not-a-mapping", profile_file("- world\n"), ParamError,
         "bad.yaml: the top level is a list", "Fix:"),
    # command lines: python -m dreamgen.params
    case("cli-params-check-broken-copy", cli_params_check_broken, CLI,
         "world.supersampel: unknown key", "world.supersample: missing", "Fix:"),
    case("cli-params-profile-unknown-key", cli_params_profile_unknown_key, CLI,
         "bad.yaml: world.image_sise is not a key", "Fix:"),
    case("cli-params-profile-without-name", cli_params_profile_without_name, CLI,
         "profile needs a name", "smoke"),
    # command lines: python -m dreamgen.run
    case("cli-run-unknown-stage", cli_run("wrld"), CLI, "wrld: no section", "sections present: world", "Fix:"),
    case("cli-run-unknown-option", cli_run("world", "--bogus", "1"), CLI,
         "unrecognized arguments: --bogus", "usage: python -m dreamgen.run"),
    case("cli-run-bad-arm", cli_run("train_policy", "--arm", "dp-r9-n9-s9"), CLI,
         "arm 'dp-r9-n9-s9' is not in train_policy.arms", "Fix:"),
    case("cli-run-missing-params", cli_run("world", "--params", "nope.yaml"), CLI,
         "nope.yaml: no such file", "Fix:"),
    case("cli-run-bad-value", cli_run("world", edit=("  image_size: 64\n", "  image_size: sixty-four\n")), CLI,
         "world.image_size: expected int", "'sixty-four'", "Fix:"),
    # real datasets
    case("dataset-truncated-parquet", broken_real(truncate_parquet), DatasetError,
         "episode 1: parquet file data/chunk-000/episode_000001.parquet is unreadable"),
    case("dataset-garbage-video", broken_real(garbage_video), DatasetError,
         "episode 2: video videos/chunk-000/observation.images.top/episode_000002.mp4 is unreadable"),
    case("dataset-missing-episode-file", broken_real(lambda r: parquet(r, 0).unlink()), DatasetError,
         "episode 0: parquet file data/chunk-000/episode_000000.parquet is missing"),
    case("dataset-garbled-info-json", broken_real(garble_info), DatasetError,
         "invalid dataset at", "meta/info.json is not valid JSON"),
    case("dataset-info-lacks-keys", broken_real(lambda r: (r / "meta/info.json").write_text("{}")), DatasetError,
         "info.json lacks", "'fps'"),
    case("dataset-fps-zero", broken_real(lambda r: edit_info(r, fps=0)), DatasetError,
         "fps is 0"),
    case("dataset-open-garbled-info", broken_real(garble_info, call=data.Dataset), DatasetError,
         "meta/info.json is not valid", "Fix:"),
    case("dataset-open-missing-folder", broken_real(lambda r: None, call=lambda r: data.Dataset(r.parent / "nowhere")),
         DatasetError, "nowhere", "no such folder", "Fix:"),
    case("dataset-read-truncated-parquet", broken_real(truncate_parquet, call=lambda r: data.Dataset(r).episode(1)),
         DatasetError, "episode 1: parquet file", "episode_000001.parquet", "is unreadable", "Fix:"),
    case("dataset-write-no-episodes", write_empty, ValueError, "empty: no episodes to write",
         "Fix: pass at least one Episode"),
    case("dataset-write-over-existing", write_over_existing, FileExistsError,
         "real exists and is not empty", "pass overwrite=True"),
    case("dataset-write-mixed-frame-sizes", write_mixed_sizes, ValueError,
         "episode 1: frames (24, 24, 3) differ from episode 0's (16, 16, 3)"),
    # neural datasets
    case("neural-actions-not-a-flattened-chunk", neural_layout(rename_actions), PolicyError,
         "neural: action names", "are not a flattened chunk of 4 steps"),
    case("neural-web-videos-without-actions", web_dataset, PolicyError,
         "web: no ['action', 'observation.state'] columns", "a policy needs actions and states"),
    case("neural-no-latent-actions", neural_without_latents, PolicyError, "neural: no latent actions recorded"),
    case("neural-too-many-trajectories", too_many_neural, PolicyError,
         "neural: 9 neural trajectories asked, the dataset has 3"),
    case("real-dataset-of-another-embodiment", other_embodiment, PolicyError,
         "robot_b: does not fit the policy", "embodiment 'robot_b'"),
    case("label-video-wrong-fps", label_video((5, 16, 16, 3), 3.0, "robot"), LabelError,
         "dreams/episode 3: video at 3.0 fps", "labels 10 fps or 2.5 fps videos"),
    case("label-video-another-embodiment", label_video((5, 16, 16, 3), 2.5, "robot_b"), LabelError,
         "dreams/episode 3: video of embodiment 'robot_b'", "train an IDM on that robot's data"),
    case("label-frame-wrong-size", label_video((5, 32, 32, 3), 2.5, "robot"), LabelError,
         "dreams/episode 3: frames are 32x32, the IDM takes 16x16"),
    # policies and IDM checkpoints
    case("policy-missing-policy-json", policy_folder(config_text=""), FileNotFoundError,
         "policy/policy.json: no policy here", "train one with the train_policy stage"),
    case("policy-garbled-policy-json", policy_folder(config_text="{\"family\": \"dp\", "), PolicyError,
         "policy.json: not valid JSON", "re-train the policy"),
    case("policy-unknown-family-in-json", policy_folder(config_text=policy_json_with(family="mlp")), PolicyError,
         "unknown policy family 'mlp'", "use one of ('dp', 'gr00t')"),
    case("policy-garbage-weights", policy_folder(weights=b"not a torch file"), PolicyError,
         "policy.pt: not a policy checkpoint", "re-train the policy"),
    case("policy-config-bad-chunk", bad_policy_config(chunk=6), PolicyError,
         "chunk must be a multiple of 4", "got 6"),
    case("policy-bad-arm-name", bad_arm("gr00t-r3-n0-s0-foo"), PolicyError, "unknown suffix '-foo'"),
    case("idm-missing-config", idm_without_config, FileNotFoundError,
         "idm/idm.json: no IDM config here", "train one with the train_idm stage"),
    # world models, checkpoints and adapters
    case("world-model-missing-model-index", world_model_folder({}), FileNotFoundError,
         "world_model: no world model here (no model_index.json)"),
    case("world-model-of-another-class", world_model_folder({"model_index.json": '{"_class_name": "WanPipeline"}'}),
         ValueError, "world_model: incompatible checkpoint: it holds a WanPipeline"),
    case("checkpoint-of-another-configuration", incompatible_checkpoint, ValueError,
         "ckpt: incompatible checkpoint (differs in", "delete the folder to start over"),
    case("adapter-missing-weights", adapter_without_weights, FileNotFoundError,
         "lora: no LoRA adapter here (expected adapter_model.safetensors", "run the finetune_world_model stage"),
    case("adapter-of-another-base", adapter_of_another_base, ValueError,
         "lora: adapter was trained on base model 0000000000000000", "load the base it was fine-tuned from"),
    case("variant-folder-empty", empty_variant, FileNotFoundError,
         "variant: no world-model variant here", "run the finetune_world_model stage first"),
    case("wan-model-missing", wan_missing, FileNotFoundError, "wan_nowhere: no such folder"),
    # prompts and frames
    case("prompt-empty-list", dream(prompt=[]), ValueError,
         "prompt: got an empty list", "give one instruction per initial frame"),
    case("prompt-blank", dream(prompt="  "), ValueError, "prompt: empty or non-string instruction at position"),
    case("prompt-count-mismatch", dream(image=np.zeros((2, 16, 16, 3), np.uint8), prompt=["a", "b", "c"]),
         ValueError, "3 prompts for 2 initial frames", "give 1 or 2"),
    case("frame-wrong-size", dream(image=np.zeros((32, 32, 3), np.uint8)), ValueError,
         "frames are 32x32 but this world model makes 16x16"),
    case("frame-wrong-dtype", dream(image=np.zeros((16, 16, 3), np.float32)), ValueError,
         "image: expected", "uint8, got (1, 16, 16, 3) float32"),
    case("video-frames-wrong-dtype", bad_video_frames, ValueError,
         "frames must be (T,H,W,3) uint8, got (4, 16, 16, 3) float32"),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case: Case, ctx, tmp_path):
    watch, call = case.setup(tmp_path, ctx)
    before = snapshot(watch)
    if case.raises == CLI:
        out = call()
        shown = out.stdout + out.stderr
        assert out.returncode != 0, shown
        assert "Traceback" not in shown, shown
        missing = [w for w in case.words if w not in shown]
        assert not missing, (missing, shown)
    else:
        with pytest.raises(case.raises) as err:
            call()
        missing = [w for w in case.words if w not in str(err.value)]
        assert not missing, (missing, f"{type(err.value).__name__}: {err.value}")
    assert snapshot(watch) == before, "the failed call changed files it should have left alone"
