"""A params.yaml or profile that cannot be read: one message naming the file, where and the fix; no traceback."""
import subprocess
import sys

import pytest

from dreamgen.params import ParamError, apply_profile, load_params, load_profile


@pytest.fixture()
def project(root, tmp_path):
    """A copy of params.yaml and the profiles in tmp_path (the repository's own files are never touched)."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "params.yaml").write_text((root / "params.yaml").read_text())
    for prof in (root / "profiles").glob("*.yaml"):
        (tmp_path / "profiles" / prof.name).write_text(prof.read_text())
    return tmp_path


def cli(*args):
    return subprocess.run([sys.executable, "-m", "dreamgen.params", *map(str, args)], capture_output=True, text=True)


def assert_clean_failure(out, *words):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr  # one message
    for w in words:
        assert w in out.stderr, (w, out.stderr)


def break_line(path, old, new):
    """Replace the first line `old` of the file by `new`; the 1-based number of that line."""
    lines = path.read_text().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if line.rstrip("\n") == old)
    lines[n] = new + "\n"
    path.write_text("".join(lines))
    return n + 1


def test_yaml_syntax_error_in_params(project):
    params = project / "params.yaml"
    line = break_line(params, "  supersample: 3", "  supersample: 3: 4")  # a second ':' on the line
    out = cli("check", "--params", params)
    assert_clean_failure(out, f"{params}:{line}:", "invalid YAML", "mapping values are not allowed here",
                         f"Fix: fix the YAML syntax at line {line}, column 17 of {params}")
    with pytest.raises(ParamError, match=f"line {line}, column 17"):  # the API raises the same, not a yaml error
        load_params(params)


def test_yaml_syntax_error_in_a_profile(project):
    smoke = project / "profiles" / "smoke.yaml"
    line = break_line(smoke, "  image_size: 32", "  image_size: [32")  # an unclosed flow sequence
    out = cli("profile", "smoke", "--params", project / "params.yaml")
    assert_clean_failure(out, f"{smoke}:", "invalid YAML", "flow sequence", f"starts at line {line}",
                         "Fix: fix the YAML syntax at line")
    with pytest.raises(ParamError, match="invalid YAML"):
        load_profile(smoke)
    assert load_params(project / "params.yaml")["world"]["image_size"] == 64, "a failed profile writes nothing"


def test_a_tab_indent_names_its_line_and_column(project):
    params = project / "params.yaml"
    line = break_line(params, "  supersample: 3", "\tsupersample: 3")
    assert_clean_failure(cli("check", "--params", params), f"{params}:{line}:1:", "'\\t'",
                         f"fix the YAML syntax at line {line}, column 1")


def test_missing_params_file(project):
    missing = project / "nope.yaml"
    assert_clean_failure(cli("check", "--params", missing), f"{missing}: no such file. Fix:")
    with pytest.raises(ParamError, match="no such file"):
        load_params(missing)


def test_missing_profile_lists_the_profiles(project):
    assert_clean_failure(cli("profile", "smok", "--params", project / "params.yaml"),
                         "no profile file", "smok.yaml", "Fix: pick one of gpu, long, paper, smoke")


@pytest.mark.parametrize("text, words", [
    ("- world\n- collect\n", ["the top level is a list", "not a mapping of stage sections", "Fix:"]),
    ("just a string\n", ["the top level is a str", "Fix:"]),
    ("# nothing but a comment\n", ["the top level is empty", "Fix:"]),
    ("world: [1, 2]\n", ["section 'world' is a list", "Fix: indent its `key: value` lines under `world:`"]),
])
def test_params_whose_top_level_is_not_a_mapping(project, text, words):
    params = project / "params.yaml"
    params.write_text(text)
    assert_clean_failure(cli("check", "--params", params), str(params), *words)
    with pytest.raises(ParamError, match="not a mapping"):
        load_params(params)


@pytest.mark.parametrize("text, words", [
    ("- world\n", ["the top level is a list", "not a mapping of sections", "Fix:"]),
    ("world: 3\n", ["section 'world' is an int", "Fix: indent"]),
])
def test_profile_whose_top_level_is_not_a_mapping(project, text, words):
    (project / "profiles" / "bad.yaml").write_text(text)
    assert_clean_failure(cli("profile", "bad", "--params", project / "params.yaml"), "bad.yaml", *words)


def test_an_empty_profile_changes_nothing(project):
    (project / "profiles" / "empty.yaml").write_text("# no overrides\n")
    assert load_profile(project / "profiles" / "empty.yaml") == {}
    base = load_params(project / "params.yaml")
    assert apply_profile(base, {}) == base


def test_api_callers_get_param_error_for_bad_shapes(project):
    base = load_params(project / "params.yaml")
    with pytest.raises(ParamError, match="top level is a list"):
        apply_profile(base, ["world"])
    with pytest.raises(ParamError, match="section 'world' is a list"):
        apply_profile(base, {"world": [1]})


def test_bytes_that_are_not_text_name_line_and_column(project):
    params = project / "params.yaml"
    params.write_bytes(b"world:\n  seed: \xff\n")
    assert_clean_failure(cli("check", "--params", params), f"{params}:2:9:", "invalid YAML",
                         "fix the YAML syntax at line 2, column 9")
