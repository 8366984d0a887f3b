"""The pipeline's clock: each stage's wall time from the last run's own metrics, beside its budget.

    python benchmarks/pipeline_clock.py                      # reads reports/metrics
    python benchmarks/pipeline_clock.py --json clock.json    # also writes the table as JSON

Nothing is run or timed here; the figures are those the stages wrote into their metrics files:
`stage_seconds` (or `seconds_total` in collect.json, which sums the datasets' write times only),
and for train_policy the sum of every arm's `stage_seconds` in train_policy/*.json. A stage whose
file records no wall time is printed "not recorded", with the key that would have to hold it,
and left out of the sum.

Budgets (2-core CPU, from the project's issues): pretrain_world_model <= 25 min; finetune_world_model
<= 5 min per fine-tune (counted from the `train` entries of finetune_world_model.json);
dream <= 10 min; bench <= 10 min; train_policy + evaluate about 40 min; the default pipeline <= 90 min.

Caveats:
- The committed metrics may come from runs that resumed from checkpoints; their time is then
  the resumed run's, not a from-scratch time. Where a file records it (`resumed_from`, or a
  training whose `seconds` x `steps_per_s` falls short of its `steps`: when nothing is left to
  train, `steps_per_s` is the speed of the run that trained them), the table says so.
- DVC re-runs only the stages whose inputs changed, so the files, and the sum, may come from
  runs made at different times rather than one end-to-end run.
- `stage_seconds` is measured inside each notebook: the runner's kernel start and HTML export
  (a few seconds a stage, and per train_policy arm) are not in it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dreamgen.params import STAGES as PARAM_STAGES

ROOT = Path(__file__).resolve().parents[1]
MIN = 60.0
# the pipeline's stages, in order (a contract test keeps them dvc.yaml's); train_policy is one metrics
# file per arm under train_policy/.
STAGES = list(PARAM_STAGES)
TIME_KEYS = ("stage_seconds", "seconds_total")
BUDGETS = {"pretrain_world_model": 25 * MIN, "dream": 10 * MIN, "bench": 10 * MIN}
FINETUNE_BUDGET = 5 * MIN        # per fine-tune
POLICY_EVAL_BUDGET = 40 * MIN    # train_policy + evaluate together (about)
PIPELINE_BUDGET = 90 * MIN


def trainings(obj):
    """Every dict in `obj` that records one training: steps, steps_per_s and seconds."""
    if isinstance(obj, dict):
        secs = obj.get("seconds", obj.get("train_seconds"))
        if all(isinstance(v, (int, float)) for v in (obj.get("steps"), obj.get("steps_per_s"), secs)):
            yield obj["steps"], obj["steps_per_s"], secs
        for v in obj.values():
            yield from trainings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from trainings(v)


def resumed_note(metrics: list[dict]) -> str:
    """What the files say about resuming from checkpoints, or ''."""
    parts = []
    froms = [m["resumed_from"] for m in metrics if isinstance(m.get("resumed_from"), (int, float)) and m["resumed_from"] > 0]
    if froms:
        parts.append("resumed_from " + ", ".join(str(f) for f in froms))
    runs = [t for m in metrics for t in trainings(m)]
    # steps trained in this run = seconds * steps_per_s; the rest came from a checkpoint
    restored = [(steps, steps - secs * speed) for steps, speed, secs in runs]
    restored = [(steps, r) for steps, r in restored if r > max(1.0, 0.01 * steps)]
    if restored:
        parts.append(f"{len(restored)} of {len(runs)} trainings restored from checkpoints "
                     f"({sum(r for _, r in restored):.0f} of {sum(s for s, _ in restored)} steps)")
    return ("RESUMED: " + "; ".join(parts) + ": not a from-scratch time") if parts else ""


def load(metrics_dir: Path, stage: str) -> list[tuple[Path, dict]]:
    if stage == "train_policy":
        paths = sorted((metrics_dir / stage).glob("*.json"))
    else:
        paths = [metrics_dir / f"{stage}.json"]
    return [(p, json.loads(p.read_text())) for p in paths if p.is_file()]


def show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def verdict(seconds, budget) -> str:
    if seconds is None or budget is None:
        return "-"
    return "yes" if seconds <= budget else "no"


def row(stage, seconds, budget, budget_text, notes) -> dict:
    return dict(stage=stage, seconds=None if seconds is None else round(seconds, 1),
                minutes=None if seconds is None else round(seconds / MIN, 1),
                budget_seconds=budget, budget=budget_text, within=verdict(seconds, budget),
                note="; ".join(n for n in notes if n))


def clock(metrics_dir: Path) -> dict:
    rows, missing, times = [], [], {}
    for stage in STAGES:
        files = load(metrics_dir, stage)
        notes, seconds = [], None
        shown = show(metrics_dir / (f"{stage}/*.json" if stage == "train_policy" else f"{stage}.json"))
        notebook = f"notebooks/{STAGES.index(stage) + 1:02d}_{stage}.ipynb"
        if not files:
            notes.append(f"not recorded: no {shown}")
        else:
            found = [(next((k for k in TIME_KEYS if isinstance(m.get(k), (int, float))), None), m) for _, m in files]
            if any(k is None for k, _ in found):
                lacking = [p.name for (p, _), (k, _) in zip(files, found) if k is None]
                notes.append(f"not recorded: {shown} has no wall time; {notebook} would have to write `stage_seconds` there"
                             + (f" (missing in {', '.join(lacking)})" if stage == "train_policy" else ""))
            else:
                seconds = sum(m[k] for k, m in found)
                keys = sorted({k for k, _ in found})
                if stage == "train_policy":
                    notes.append(f"sum of {len(files)} arms' stage_seconds")
                elif keys != ["stage_seconds"]:
                    notes.append(f"from `{keys[0]}`" + (" (the datasets' write times only)" if keys[0] == "seconds_total" else ""))
            notes.append(resumed_note([m for _, m in files]))
        budget, budget_text = BUDGETS.get(stage), "-"
        if budget is not None:
            budget_text = f"<= {budget / MIN:.0f} min"
        if stage == "finetune_world_model":
            train = files[0][1].get("train") if files else None
            if isinstance(train, dict) and train:
                budget = FINETUNE_BUDGET * len(train)
                budget_text = f"<= {budget / MIN:.0f} min ({len(train)}x5)"
            else:
                notes.append("budget 5 min per fine-tune; the file lists no fine-tunes to count")
        if stage in ("train_policy", "evaluate"):
            budget_text = "(together)"
        if seconds is None:
            missing.append(stage)
        times[stage] = seconds
        rows.append(row(stage, seconds, budget, budget_text, notes))
        if stage == "evaluate":
            both = None if None in (times.get("train_policy"), seconds) else times["train_policy"] + seconds
            rows.append(row("train_policy + evaluate", both, POLICY_EVAL_BUDGET, f"~ {POLICY_EVAL_BUDGET / MIN:.0f} min", []))
    total = sum(s for s in times.values() if s is not None)
    note = (f"lower bound: leaves out {', '.join(missing)} (not recorded)" if missing else "")
    recorded = len(STAGES) - len(missing)
    return dict(metrics_dir=show(metrics_dir), rows=rows, missing=missing,
                total=row(f"total ({recorded} of {len(STAGES)} stages)", total, PIPELINE_BUDGET,
                          f"<= {PIPELINE_BUDGET / MIN:.0f} min", [note]))


def fmt(r: dict) -> str:
    secs = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
    mins = "-" if r["minutes"] is None else f"{r['minutes']:.1f}"
    return f"{r['stage']:<26}{secs:>9}{mins:>8}  {r['budget']:<16}{r['within']:<7}{r['note']}".rstrip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metrics-dir", type=Path, default=ROOT / "reports" / "metrics")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the table as JSON")
    args = ap.parse_args(argv)
    if not args.metrics_dir.is_dir():
        ap.error(f"no metrics directory {args.metrics_dir}")
    table = clock(args.metrics_dir)
    print(f"pipeline clock from {show(args.metrics_dir)} (the stages' own records; nothing re-run)")
    print(f"{'stage':<26}{'seconds':>9}{'minutes':>8}  {'budget':<16}{'within':<7}note")
    for r in table["rows"]:
        print(fmt(r))
    print("-" * 80)
    print(fmt(table["total"]))
    if table["missing"]:
        print(f"note: {len(table['missing'])} stage(s) not in the sum: {', '.join(table['missing'])}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
