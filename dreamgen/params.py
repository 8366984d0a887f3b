"""Stage parameters: the schema of each `params.yaml` section, its validation, and profiles.

`params.yaml` is the only configuration. Each stage reads its own section; a profile
(`profiles/<name>.yaml`) is a sparse override of it that may only change existing keys.

Command line:
    python -m dreamgen.params check [--params params.yaml]
    python -m dreamgen.params profile smoke [--set-args] [--params params.yaml]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml


class ParamError(ValueError):
    """One or more parameters are wrong; the message names each `section.key` and the fix."""


def key(help: str, *, lo: float | None = None, hi: float | None = None,
        choices: tuple | None = None) -> Any:
    """A schema field: its help text and the range or choices it must respect."""
    return field(metadata=dict(help=help, lo=lo, hi=hi, choices=choices))


@dataclass(frozen=True)
class WorldParams:
    seed: int = key("seed of the gallery and of the expert-success episodes", lo=0)
    image_size: int = key("camera resolution in pixels (square)", lo=16, hi=256)
    supersample: int = key("render at this multiple of image_size, then average down", lo=1, hi=8)
    max_steps: int = key("control steps (10 Hz) before an episode is cut", lo=10, hi=1000)
    expert_noise: float = key("teleoperator noise scale; 0 is a clean scripted expert", lo=0.0, hi=5.0)
    episodes_per_cell: int = key("expert episodes per embodiment x behaviour", lo=1)
    min_expert_success: float = key("a behaviour below this expert success fails the stage", lo=0.0, hi=1.0)
    gallery_frames: int = key("frames per clip in the animated gallery", lo=2, hi=200)
    workers: int = key("processes for the expert-success episodes", lo=1, hi=64)
    spec_path: str = key("world spec + measured expert success, read by later stages")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")
    tables_dir: str = key("folder of this stage's tables")


@dataclass(frozen=True)
class CollectParams:
    seed: int = key("base seed of every collected episode", lo=0)
    spec_path: str = key("world spec written by the world stage")
    expert_noise: float = key("teleoperator noise scale", lo=0.0, hi=5.0)
    cotrain_per_behaviour: int = key("robot demos per behaviour, lab only (co-training results)", lo=1)
    pickplace_episodes: int = key("robot pick-and-place demos in the lab (generalization results)", lo=1)
    robot_b_per_behaviour: int = key("demos per behaviour of the second robot", lo=1)
    web_per_cell: int = key("web clips per web embodiment x behaviour x environment", lo=1)
    max_attempt_factor: float = key("give up after this many attempts per kept episode", lo=1.0, hi=10.0)
    workers: int = key("processes that simulate episodes", lo=1, hi=64)
    camera: str = key("camera name in the LeRobot video key observation.images.<camera>")
    data_dir: str = key("folder holding one LeRobot dataset per name")
    metrics_path: str = key("DVC metrics file of this stage")
    figures_dir: str = key("folder of this stage's figures")


STAGES: dict[str, type] = {"world": WorldParams, "collect": CollectParams}


def _type_ok(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if get_origin(kind) is list:
        (item,) = get_args(kind)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    return isinstance(value, kind)


def _kind_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def validate(stage: str, values: dict[str, Any]) -> Any:
    """Check a stage's section against its schema and return it as the stage's dataclass.

    Raises ParamError listing every problem as `stage.key: what is wrong. Fix: ...`.
    """
    if stage not in STAGES:
        raise ParamError(f"{stage}: no such stage; known stages: {', '.join(STAGES)}")
    schema = {f.name: f for f in dataclasses.fields(STAGES[stage])}
    hints = {f.name: (eval(f.type) if isinstance(f.type, str) else f.type) for f in schema.values()}
    problems = []
    for name in values:
        if name not in schema:
            problems.append(f"{stage}.{name}: unknown key. Fix: remove it or correct its spelling; "
                            f"known keys: {', '.join(schema)}")
    for name, f in schema.items():
        if name not in values:
            problems.append(f"{stage}.{name}: missing. Fix: add it to params.yaml ({f.metadata['help']})")
            continue
        value, kind, m = values[name], hints[name], f.metadata
        if not _type_ok(value, kind):
            problems.append(f"{stage}.{name}: expected {_kind_name(kind)}, got {type(value).__name__} "
                            f"{value!r}. Fix: give a {_kind_name(kind)} ({m['help']})")
            continue
        if m["choices"] is not None and value not in m["choices"]:
            problems.append(f"{stage}.{name}: {value!r} is not one of {list(m['choices'])}. "
                            f"Fix: pick one of them")
        if m["lo"] is not None and value < m["lo"] or m["hi"] is not None and value > m["hi"]:
            lo = "-inf" if m["lo"] is None else m["lo"]
            hi = "inf" if m["hi"] is None else m["hi"]
            problems.append(f"{stage}.{name}: {value!r} is out of range. Fix: use a value in "
                            f"[{lo}, {hi}] ({m['help']})")
    if problems:
        raise ParamError("invalid parameters:\n  " + "\n  ".join(problems))
    return STAGES[stage](**values)


def from_namespace(stage: str, namespace: dict[str, Any]) -> Any:
    """Validate the stage's parameters as a notebook holds them, as globals of its kernel."""
    names = [f.name for f in dataclasses.fields(STAGES[stage])]
    return validate(stage, {n: namespace[n] for n in names if n in namespace})


def load_params(path: str | Path = "params.yaml") -> dict[str, dict[str, Any]]:
    with open(path) as fh:
        params = yaml.safe_load(fh) or {}
    if not isinstance(params, dict):
        raise ParamError(f"{path}: expected a mapping of stage sections")
    return params


def stage_section(params: dict, stage: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    if stage not in params:
        raise ParamError(f"{stage}: no section in {path}. Fix: add a `{stage}:` section "
                         f"(sections present: {', '.join(params)})")
    return params[stage]


def apply_profile(base: dict, override: dict, where: str = "profile") -> dict:
    """A copy of `base` with `override`'s values; an override key that `base` lacks is an error."""
    merged = {s: dict(v) for s, v in base.items()}
    problems = []
    for section, values in (override or {}).items():
        if section not in base:
            problems.append(f"{where}: section {section!r} is not in params.yaml")
            continue
        for name, value in values.items():
            if name not in base[section]:
                problems.append(f"{where}: {section}.{name} is not a key of params.yaml")
            merged[section][name] = value
    if problems:
        raise ParamError("\n".join(problems) + "\nFix: a profile may only change existing keys")
    return merged


def set_args(override: dict) -> list[str]:
    """`dvc exp run` arguments that apply a profile: ['-S', 'world.seed=1', ...]."""
    out = []
    for section, values in override.items():
        for name, value in values.items():
            out += ["-S", f"{section}.{name}={json.dumps(value)}"]  # JSON is valid YAML
    return out


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dreamgen.params", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["check", "profile"])
    ap.add_argument("name", nargs="?", help="profile name (profiles/<name>.yaml)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--set-args", action="store_true",
                    help="print `dvc exp run` -S arguments instead of rewriting params.yaml")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        if args.command == "profile":
            if not args.name:
                ap.error("profile needs a name, e.g. smoke or paper")
            prof = Path(args.params).parent / "profiles" / f"{args.name}.yaml"
            if not prof.is_file():
                raise ParamError(f"no profile file {prof}")
            override = yaml.safe_load(prof.read_text()) or {}
            params = apply_profile(params, override, str(prof))
            if args.set_args:
                print(" ".join(set_args(override)))
                return 0
        for stage in STAGES:
            if stage in params:
                validate(stage, params[stage])
        if args.command == "profile":
            Path(args.params).write_text(yaml.safe_dump(params, sort_keys=False))
            print(f"wrote profile {args.name} into {args.params} (undo: git checkout {args.params})")
        else:
            print(f"{args.params}: all sections valid")
    except ParamError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main())
