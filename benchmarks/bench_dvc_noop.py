"""Where the seconds of a no-op `dvc repro` go (issue 21), on the checkout it runs in.

    python benchmarks/bench_dvc_noop.py [--repeats 3]

Run it where the pipeline is up to date (after `dvc repro`); it changes nothing. It prints the
median wall time of: starting Python and importing DVC; `dvc status`; a no-op `dvc repro`;
parsing dvc.lock, dvc.yaml and params.yaml with the YAML parser DVC uses (pure Python, and the
libyaml-based C parser of ruamel.yaml.clib when installed); and the number of files DVC stats
for the pipeline's dependencies and outputs. Machines here are shared: compare ratios from one run.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def yaml_parse(path: Path, pure: bool, repeats: int) -> float | None:
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    if not pure and CParser is None:
        return None
    text = path.read_text()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        YAML(typ="safe", pure=pure).load(text)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def tracked_files() -> int:
    """Files under every path dvc.lock records (each is stat-ed on a status check)."""
    import yaml

    lock = yaml.safe_load(open("dvc.lock"))
    paths = {e["path"] for s in lock["stages"].values() for e in s.get("deps", []) + s.get("outs", [])}
    return sum(sum(1 for f in Path(p).rglob("*") if f.is_file()) if Path(p).is_dir() else Path(p).exists()
               for p in paths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    dvc = [sys.executable, "-m", "dvc"]
    rows = [("python -c 'import dvc.cli'", wall([sys.executable, "-c", "import dvc.cli"], args.repeats)),
            ("dvc --version", wall(dvc + ["--version"], args.repeats)),
            ("dvc status", wall(dvc + ["status"], args.repeats)),
            ("dvc repro (no-op)", wall(dvc + ["repro"], args.repeats))]
    for name in ("dvc.lock", "dvc.yaml", "params.yaml"):
        for pure in (True, False):
            t = yaml_parse(Path(name), pure, args.repeats)
            rows.append((f"parse {name} ({'pure Python' if pure else 'libyaml C'})",
                         float("nan") if t is None else t))
    for name, t in rows:
        print(f"{name:40s} {t:7.3f} s")
    print(f"{'files under tracked paths':40s} {tracked_files():7d}")
    print(f"{'dvc.lock':40s} {sum(1 for _ in open('dvc.lock')):7d} lines")


if __name__ == "__main__":
    main()
