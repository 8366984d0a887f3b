"""The stage runner on a throwaway repository: parameters checked first, failing cells named."""
import json
import shutil
import subprocess
import sys

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dreamgen.run import run_stage


def make_repo(root, tmp_path, body):
    """A repository with the real params.yaml and a world notebook whose work is `body`."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    src = json.loads((root / "notebooks" / "01_world.ipynb").read_text())
    params = next(c for c in src["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell = new_code_cell("".join(params["source"]))
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell("# test"), cell, new_code_cell(body)],
                      metadata={"kernelspec": {"name": "dreamgen", "display_name": "d", "language": "python"}})
    nbformat.write(nb, tmp_path / "notebooks" / "01_world.ipynb")
    return tmp_path


def test_runs_notebook_with_stage_params_and_exports_html(root, tmp_path):
    repo = make_repo(root, tmp_path, "open('seen.txt', 'w').write(str(image_size))")
    assert run_stage("world", repo / "params.yaml", repo) == 0
    # the params.yaml value (not the notebook default) reached the kernel, whose cwd is the repo root
    wanted = yaml.safe_load((repo / "params.yaml").read_text())["world"]["image_size"]
    assert int((repo / "seen.txt").read_text()) == wanted != 32  # 32 is the notebook's own default
    assert (repo / "reports/notebooks/01_world.ipynb").is_file()
    assert "<html" in (repo / "reports/notebooks/01_world.html").read_text()[:2000].lower()


def test_failing_cell_is_named_and_partial_notebook_kept(root, tmp_path, capsys):
    repo = make_repo(root, tmp_path, "x = 1\nraise RuntimeError('boom in the third cell')")
    assert run_stage("world", repo / "params.yaml", repo) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: boom in the third cell" in err and "cell" in err
    executed = nbformat.read(repo / "reports/notebooks/01_world.ipynb", as_version=4)
    assert any(o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", []))


def test_bad_parameter_stops_before_any_work(root, tmp_path, capsys):
    repo = make_repo(root, tmp_path, "open('ran.txt', 'w').write('yes')")
    text = (repo / "params.yaml").read_text().replace("image_size: 64", "image_size: sixty-four", 1)
    (repo / "params.yaml").write_text(text)
    (repo / "reports/notebooks").mkdir(parents=True)
    (repo / "reports/notebooks/01_world.ipynb").write_text("previous output")
    assert run_stage("world", repo / "params.yaml", repo) == 2
    assert "world.image_size: expected int" in capsys.readouterr().err
    assert not (repo / "ran.txt").exists()
    assert (repo / "reports/notebooks/01_world.ipynb").read_text() == "previous output"


def test_unknown_stage_exits_2(root, tmp_path):
    repo = make_repo(root, tmp_path, "pass")
    out = subprocess.run([sys.executable, "-m", "dreamgen.run", "nope"], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 2 and "no section" in out.stderr and "sections present: world" in out.stderr
