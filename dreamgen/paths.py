"""Where things live. Every path in the project is relative to the repository root."""
from __future__ import annotations

from pathlib import Path

NOTEBOOKS = Path("notebooks")
REPORTS = Path("reports")
EXECUTED = REPORTS / "notebooks"
PARAMS = Path("params.yaml")
PROFILES = Path("profiles")


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) holding dvc.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise FileNotFoundError(f"no dvc.yaml at or above {here}: run from inside the repository")


def notebook_for(stage: str, root: Path) -> Path:
    """The notebook `notebooks/NN_<stage>.ipynb` that implements a stage."""
    found = sorted((root / NOTEBOOKS).glob(f"[0-9][0-9]_{stage}.ipynb"))
    if len(found) != 1:
        known = sorted(p.stem[3:] for p in (root / NOTEBOOKS).glob("[0-9][0-9]_*.ipynb"))
        raise FileNotFoundError(f"stage {stage!r}: expected one notebooks/NN_{stage}.ipynb, "
                                f"found {len(found)}; known stages: {', '.join(known)}")
    return found[0]
