"""Contract tests: notebooks, params.yaml, profiles and dvc.yaml agree with each other."""
import ast
import dataclasses
import json
import re

import pytest
import yaml

from dreamgen.params import STAGES, apply_profile, load_params

TEMPLATE = re.compile(r"\$\{(\w+)\.(\w+)\}")


def notebooks(root):
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def parameters_cell(nb_path):
    cells = json.loads(nb_path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb_path.name}: needs exactly one cell tagged 'parameters'"
    return "".join(tagged[0]["source"])


def literal_assignments(source):
    """name -> value of each `name = <literal>` line (the cell must hold nothing else)."""
    out = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, \
            f"parameters cells hold flat assignments only, got: {ast.unparse(node)}"
        out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def stages(root):
    params = load_params(root / "params.yaml")
    text = TEMPLATE.sub(lambda m: str(params[m[1]][m[2]]), (root / "dvc.yaml").read_text())
    # a foreach stage (one run per experiment arm) is checked through its `do` template
    return {name: spec.get("do", spec) for name, spec in yaml.safe_load(text)["stages"].items()}


def paths_of(entries):
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def test_every_stage_has_one_notebook_and_one_section(root):
    names = [nb.stem[3:] for nb in notebooks(root)]
    assert names == list(stages(root)), "dvc.yaml stages must be the notebooks, in pipeline order"
    assert set(names) == set(STAGES), "every stage needs a schema in dreamgen.params.STAGES"
    assert set(load_params(root / "params.yaml")) == set(names)


@pytest.mark.parametrize("profile", ["default", "smoke", "paper", "long", "gpu"])
def test_parameters_cell_matches_params_section(root, profile):
    params = load_params(root / "params.yaml")
    if profile != "default":
        params = apply_profile(params, yaml.safe_load((root / "profiles" / f"{profile}.yaml").read_text()))
    for nb in notebooks(root):
        stage = nb.stem[3:]
        cell = literal_assignments(parameters_cell(nb))
        schema = [f.name for f in dataclasses.fields(STAGES[stage])]
        assert list(cell) == list(params[stage]) == schema, f"{nb.name}: keys differ from params.yaml / schema"
        for k, v in params[stage].items():
            assert type(cell[k]) is type(v) or isinstance(v, float) and isinstance(cell[k], int), \
                f"{nb.name}: {k} is {type(cell[k]).__name__} in the notebook, {type(v).__name__} in {profile}"


def test_parameters_cell_lines_carry_a_why_comment_or_are_paths(root):
    for nb in notebooks(root):
        for line in parameters_cell(nb).splitlines():
            name = line.split("=")[0].strip()
            assert "#" in line or name.endswith(("_path", "_dir")), f"{nb.name}: `{name}` needs a why-comment"


def test_stage_declares_deps_params_and_outs(root):
    params = load_params(root / "params.yaml")
    for stage, spec in stages(root).items():
        nb = next(n for n in notebooks(root) if n.stem[3:] == stage)
        per_arm = "${item}" in spec["cmd"]  # foreach: the runner runs one arm, its notebook under NN_stage/
        assert spec["cmd"] == f"python -m dreamgen.run {stage}" + (" --arm ${item}" if per_arm else "")
        deps, outs = paths_of(spec.get("deps")), paths_of(spec.get("outs")) + paths_of(spec.get("metrics"))
        params_ok = stage in spec["params"] or per_arm and all(p.startswith(f"{stage}.") for p in spec["params"])
        assert f"notebooks/{nb.name}" in deps and params_ok
        executed = f"reports/notebooks/{nb.stem}" + ("/${item}" if per_arm else "")
        assert {f"{executed}.ipynb", f"{executed}.html"} <= set(outs)
        for key, value in params[stage].items():
            if key.endswith(("_path", "_dir")):
                declared = value in deps + outs or any(p.startswith(value + "/") for p in outs)
                assert declared, f"{stage}.{key} = {value} is neither a dep nor an out (nor holds outs)"
        # every dreamgen module the notebook imports is a dependency, so editing it re-runs the stage
        source = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
        used = set(re.findall(r"from dreamgen\.(\w+)", source))
        for group in re.findall(r"from dreamgen import ([\w, ]+)", source):
            used |= {m.split(" as ")[0].strip() for m in group.split(",")}
        for module in used - {"params"}:  # validation only; see below
            assert f"dreamgen/{module}.py" in deps or f"dreamgen/{module}" in deps, f"{stage}: dreamgen.{module} not a dep"
        # The runner shapes every executed notebook, so it is a dep. dreamgen/params.py is not:
        # it holds every stage's schema, and adding one stage must not invalidate the others;
        # the values that matter are tracked by `params:`.
        for path in ("dreamgen/run.py", "dreamgen/paths.py"):
            assert path in deps, f"{stage}: the runner's {path} is not a dep"
        assert "dreamgen/params.py" not in deps, f"{stage}: drop dreamgen/params.py from deps"


def test_outputs_are_not_shared_between_stages(root):
    seen = {}
    for stage, spec in stages(root).items():
        for out in paths_of(spec.get("outs")) + paths_of(spec.get("metrics")):
            assert out not in seen, f"{out} is an output of both {seen[out]} and {stage}"
            seen[out] = stage


def test_notebooks_are_committed_without_outputs(root):
    for nb in notebooks(root):
        for cell in json.loads(nb.read_text())["cells"]:
            assert not cell.get("outputs") and cell.get("execution_count") is None, \
                f"{nb.name}: clear outputs before committing (executed copies live in reports/notebooks)"


def test_notebooks_open_with_a_title_and_purpose(root):
    for nb in notebooks(root):
        first = json.loads(nb.read_text())["cells"][0]
        title = f"# {nb.stem[:2]} · "
        assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith(title), \
            f"{nb.name}: open with a title line `{title}...`"
        assert "**Inputs:**" in "".join(first["source"]), f"{nb.name}: say the inputs and outputs"


def test_environment_yml_pins_match_requirements(root):
    reqs = {l.split("==")[0].lower(): l.split("==")[1] for l in (root / "requirements.txt").read_text().splitlines()
            if "==" in l and not l.startswith("#")}
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = {l.split("==")[0].lower(): l.split("==")[1] for l in pip if "==" in l}
    assert pinned == reqs
    assert reqs["torch"] == "2.13.0"
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_ci_runs_the_readme_test_command(root):
    readme = (root / "README.md").read_text()
    ci = [l for l in (root / ".ci" / "run").read_text().splitlines() if l and not l.startswith(("#", "set ", "cd "))]
    assert ci == ["make test"] and "make test" in readme and "make repro" in readme


def test_dvc_analytics_off(root):
    assert re.search(r"analytics\s*=\s*false", (root / ".dvc" / "config").read_text())
