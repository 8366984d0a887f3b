"""Run one pipeline stage: validate its parameters, execute its notebook, export the result.

    python -m dreamgen.run STAGE [--params params.yaml] [--arm NAME]

Executes `notebooks/NN_STAGE.ipynb` with papermill, injecting the stage's `params.yaml`
section, and writes `reports/notebooks/NN_STAGE.ipynb` plus an HTML export. Exit codes:
0 success, 1 a cell failed (named; the partly executed notebook is kept), 2 bad parameters
(named; nothing was run or written).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from dreamgen import paths
from dreamgen.params import ParamError, load_params, stage_section, validate

KERNEL = "dreamgen"


def export_html(executed: Path) -> Path:
    """Write an HTML copy next to an executed notebook, for reading in a browser offline."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def _failed_cell(executed: Path) -> str:
    """Describe the first cell of an executed notebook that holds an error."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = cell.source.strip().splitlines()[:1]
                return (f"cell {i} (execution count {cell.get('execution_count')}, starts "
                        f"{first[0][:60]!r}): {out.get('ename')}: {out.get('evalue')}")
    return "no error output found"


def run_stage(stage: str, params_file: Path, root: Path, kernel: str = KERNEL, arm: str | None = None) -> int:
    """arm: for a stage with an `arms` list (a DVC foreach), run that one arm: its `arm` key is set
    to it and the executed notebook goes to reports/notebooks/NN_STAGE/ARM.ipynb."""
    try:
        section = stage_section(load_params(params_file), stage, params_file)
        if arm is not None:
            if arm not in section.get("arms", []):
                raise ParamError(f"{stage}: arm {arm!r} is not in {stage}.arms {section.get('arms')}. "
                                 f"Fix: add it to {stage}.arms or pick one of them")
            section = dict(section, arm=arm)
        validate(stage, section)
        notebook = paths.notebook_for(stage, root)
    except (ParamError, FileNotFoundError) as err:
        print(f"dreamgen.run {stage}: {err}", file=sys.stderr)
        return 2

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    executed = root / paths.EXECUTED / (notebook.name if arm is None else f"{notebook.stem}/{arm}.ipynb")
    executed.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{stage}] executing {notebook.relative_to(root)} -> {executed.relative_to(root)}", flush=True)
    start = time.time()
    # Figures must embed in the executed notebook even where a shell sets another backend.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters=section, kernel_name=kernel,
                            cwd=str(root), progress_bar=False, log_output=False)
    except PapermillExecutionError:
        export_html(executed)
        print(f"[{stage}] FAILED after {time.time() - start:.1f} s in {_failed_cell(executed)}\n"
              f"[{stage}] the partly executed notebook is kept at {executed.relative_to(root)}",
              file=sys.stderr)
        return 1
    html = export_html(executed)
    print(f"[{stage}] done in {time.time() - start:.1f} s; wrote {html.relative_to(root)}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dreamgen.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage")
    ap.add_argument("--params", default=str(paths.PARAMS))
    ap.add_argument("--kernel", default=KERNEL, help="Jupyter kernel (registered by `make setup`)")
    ap.add_argument("--arm", default=None, help="one arm of a stage with an `arms` list (DVC foreach item)")
    args = ap.parse_args(argv)
    root = paths.repo_root()
    return run_stage(args.stage, root / args.params, root, args.kernel, args.arm)


if __name__ == "__main__":
    sys.exit(main())
