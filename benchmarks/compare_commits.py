"""Same benchmarks on two commits, alternating: the new/old cost ratio of every figure.

Timed: the figures that bench_collection.py (collect_table per format), bench_features.py
(layer 1, 2 and 3 builds, the per-event loop, the PyG `Data` objects), bench_trainer.py
(LayerTrainer per 100 epochs, wall and CPU, --no-lightning) and bench_scoring.py (collect, score
end to end) report, at reduced size (--rows 500000, --epochs 5) so that the whole comparison
takes about 13 minutes on this two-core machine (12.8 min at a load average of 2.3 to 5.6).

How: --old and --new (default: the working tree as it is, uncommitted and untracked files
included) are each checked out in a temporary folder (a detached `git worktree`; removed at
the end) beside a link to ../shared, so each commit runs its OWN copy of each script, with
identical flags, in a fresh subprocess of the .venv's python with PYTHONPATH set to that copy.
The subprocess drops the editable install's finder (it maps `training` to the main checkout)
and fails if `training` or any of its submodules was imported from outside the copy. Each
script runs with --repeats 1; the runs alternate old, new, old, new, ... --repeats times per
script, the scripts taking turns within each round. The figure of each run is read from the
JSON the script writes under its copy's benchmarks/out (the trainer's from its stdout).

Per figure: median over the runs of each commit, and new cost / old cost (time new/old, or
rate old/new), so <= --max-ratio (1.05) is the target. Figures marked "control" (pyarrow's own
read, the trainer's plain loop) run no code of the package: their ratio is the machine's
drift. A script missing in one commit, failing, or whose output no longer has the figures is
reported as such, not guessed around. The table is printed and written to
benchmarks/out/compare_commits.json.

    .venv/bin/python benchmarks/compare_commits.py --old HEAD~1 --new HEAD   # the noise floor
    .venv/bin/python benchmarks/compare_commits.py --old b8ffad7             # against the working tree
    .venv/bin/python benchmarks/compare_commits.py --old HEAD --benchmarks trainer --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # the scripts read their data from <their repo>/../shared

# Run in each subprocess: argv = tree, script, script's flags.
CHILD = r"""
import runpy, sys
from pathlib import Path
tree, script, argv = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3:]
# The .venv's editable install resolves `training` and any submodule missing from PYTHONPATH
# in the main checkout: drop its finder so that such an import fails instead.
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]

def outside() -> list[str]:
    bad = []
    for name, module in list(sys.modules.items()):
        if name == "training" or name.startswith("training."):
            files = [getattr(module, "__file__", None)] + list(getattr(module, "__path__", []))
            if not any(f and Path(f).resolve().is_relative_to(tree) for f in files):
                bad.append(f"{name} ({files[0] or files[1:]})")
    return bad

import training
print(f"compare_commits: training from {training.__file__}", file=sys.stderr, flush=True)
sys.argv = [script, *argv]
sys.path.insert(0, str(Path(script).parent))  # as `python script.py` does
try:
    runpy.run_path(script, run_name="__main__")
finally:
    if bad := outside():
        sys.stderr.write(f"compare_commits: imported from outside {tree}: {', '.join(bad)}\n")
        sys.exit(3)
"""


class IncompatibleOutput(ValueError):
    """A script's output lacks the figures this comparison reads."""


class RunFailed(RuntimeError):
    """A benchmark subprocess exited with an error."""


@dataclass(frozen=True)
class Figure:
    """One reported figure of one run."""

    name: str
    value: float
    unit: str
    higher_is_better: bool = False
    control: bool = False  # no package code in it: its ratio is the machine's drift

    def cost(self, value: float) -> float:
        return 1 / value if self.higher_is_better else value


def collection_figures(report: dict) -> list[Figure]:
    figures = []
    for row in report["throughput"]:
        figures.append(Figure(f"{row['format']} collect_table", row["ours_s"], "s"))
        figures.append(Figure(f"{row['format']} pyarrow read", row["pyarrow_s"], "s", control=True))
    return figures


def feature_figures(report: dict) -> list[Figure]:
    figures = []
    for run in report["runs"]:
        label = f"{run['layer']} {run['layout']}"
        figures.append(Figure(f"{label} build", run["build_s"], "s"))
        if "to_data_s" in run:
            figures.append(Figure(f"{label} Data objects", run["to_data_s"], "s"))
        if "per_event_loop_events_per_s" in run:
            figures.append(Figure(f"{label} per-event loop", run["per_event_loop_events_per_s"],
                                  "events/s", higher_is_better=True))
    return figures


TRAINER_LINE = re.compile(r"^batch\s+(\d+)\s+(\S+)\s+wall\s+([\d.]+) s .*cpu\s+([\d.]+) s", re.MULTILINE)


def trainer_figures(stdout: str) -> list[Figure]:
    figures = []
    for batch, name, wall, cpu in TRAINER_LINE.findall(stdout):
        control = name == "baseline"  # the plain loop: the model's code only
        for kind, value in (("wall", wall), ("cpu", cpu)):
            figures.append(Figure(f"{name} batch {batch} {kind}", float(value), "s/100 ep",
                                  control=control))
    if not figures:
        raise IncompatibleOutput("no 'batch N NAME wall X s ... cpu Y s' line in its stdout")
    return figures


def scoring_figures(report: dict) -> list[Figure]:
    return [Figure("collect", report["seconds"]["collect"], "s"),
            Figure("score end to end", report["seconds"]["score"], "s")]


@dataclass(frozen=True)
class Workload:
    """A benchmark script, its flags, and where its figures come from."""

    script: str  # relative to the checkout
    flags: Callable[[argparse.Namespace], list[str]]
    output: str | None  # JSON under the checkout's benchmarks/out; None: stdout
    figures: Callable[[dict | str], list[Figure]]


WORKLOADS: dict[str, Workload] = {
    "collection": Workload(
        "benchmarks/bench_collection.py",
        lambda a: ["--rows", str(a.rows), "--repeats", "1"], "collection.json", collection_figures),
    "features": Workload(
        "benchmarks/bench_features.py",
        lambda a: ["--rows", str(a.rows), "--layout", "days", "--layers", "layer1", "layer2",
                   "layer3", "--repeats", "1"], "features.json", feature_figures),
    "trainer": Workload(
        "benchmarks/bench_trainer.py",
        lambda a: ["--epochs", str(a.epochs), "--repeats", "1", "--batch-sizes", "32", "256",
                   "--threads", "1", "--no-lightning"], None, trainer_figures),
    "scoring": Workload(
        "benchmarks/bench_scoring.py",
        lambda a: ["--rows", str(a.rows), "--repeats", "1"], "scoring.json", scoring_figures),
}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout.strip()


def checkout(rev: str | None, folder: Path) -> str:
    """`rev` as a detached worktree in `folder`, or (None) a copy of the working tree as it is.

    Returns:
        A label: the commit, or the working tree's HEAD and whether it has changes.
    """
    if rev is not None:
        commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
        git("worktree", "add", "--detach", str(folder), commit)
        return f"{rev} ({commit[:9]})"
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for rel in filter(None, listed.split("\0")):
        source = REPO / rel
        if source.is_file() or source.is_symlink():  # deleted files are still listed
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / rel, follow_symlinks=False)
    dirty = bool(git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no"))
    return f"working tree (HEAD {git('rev-parse', '--short=9', 'HEAD')}" + \
        (" + uncommitted changes)" if dirty else ", clean)")


def run_once(tree: Path, workload: Workload, args: argparse.Namespace) -> tuple[dict, str]:
    """One run of `workload` in `tree`: its figures by name, and where `training` came from."""
    output = tree / "benchmarks" / "out" / workload.output if workload.output else None
    if output is not None:
        output.unlink(missing_ok=True)  # never read a previous run's figures
    command = [args.python, "-c", CHILD, str(tree), str(tree / workload.script),
               *workload.flags(args)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        proc = subprocess.run(command, check=False, cwd=tree, env=env, capture_output=True, text=True,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired as error:
        raise RunFailed(f"timed out after {args.timeout} s") from error
    if proc.returncode != 0:
        hint = (" (its flags differ from this comparison's)"
                if "unrecognized arguments" in proc.stderr or "invalid choice" in proc.stderr else "")
        raise RunFailed(f"exit {proc.returncode}{hint}:\n" + "\n".join(proc.stderr.splitlines()[-15:]))
    found = re.search(r"^compare_commits: training from (.+)$", proc.stderr, re.MULTILINE)
    if not found or not Path(found[1]).resolve().is_relative_to(tree):
        raise RunFailed(f"training not imported from {tree}: {found[1] if found else 'no report'}")
    try:
        report = json.loads(output.read_text()) if output is not None else proc.stdout
        figures = {f.name: f for f in workload.figures(report)}
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise IncompatibleOutput(f"{error.__class__.__name__}: {error}") from error
    return figures, found[1]


def summarize(runs: dict[str, list[dict]], max_ratio: float) -> list[dict]:
    """Per figure: both commits' values, medians and the new/old cost ratio."""
    names = [n for n in runs["old"][0] if n in runs["new"][0]]
    rows = []
    for name in names:
        values = {side: [run[name].value for run in runs[side]] for side in ("old", "new")}
        figure = runs["old"][0][name]
        old, new = statistics.median(values["old"]), statistics.median(values["new"])
        ratio = figure.cost(new) / figure.cost(old)
        rows.append({"figure": name, "unit": figure.unit, "control": figure.control,
                     "higher_is_better": figure.higher_is_better, "old": values["old"],
                     "new": values["new"], "old_median": old, "new_median": new,
                     "ratio": ratio, "ok": None if figure.control else ratio <= max_ratio})
    return rows


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def compare(trees: dict[str, Path], labels: dict[str, str], args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    problems: dict[str, str] = {}
    runs = {name: {"old": [], "new": []} for name in args.benchmarks}
    loads: list[float] = []
    imported: dict[str, str] = {}
    for name in args.benchmarks:
        script = WORKLOADS[name].script
        missing = [side for side in trees if not (trees[side] / script).is_file()]
        if missing:
            problems[name] = f"{script} missing in " + ", ".join(f"{s} = {labels[s]}" for s in missing)
    for round_ in range(args.repeats):
        for name in args.benchmarks:
            for side in ("old", "new"):
                if name in problems:
                    break
                loads.append(os.getloadavg()[0])
                t = time.perf_counter()
                try:
                    figures, imported[side] = run_once(trees[side], WORKLOADS[name], args)
                except (RunFailed, IncompatibleOutput) as error:
                    problems[name] = f"{side} = {labels[side]}: {error.__class__.__name__}: {error}"
                    print(f"{name}: {problems[name]}", file=sys.stderr, flush=True)
                    break
                if runs[name][side] and figures.keys() != runs[name][side][0].keys():
                    problems[name] = f"{side}: figures changed between runs"
                    break
                runs[name][side].append(figures)
                print(f"[{time.perf_counter() - started:6.0f} s] round {round_ + 1}/{args.repeats} "
                      f"{name:10s} {side}: {time.perf_counter() - t:5.1f} s, load {loads[-1]:.2f}",
                      flush=True)
    rows, differences = [], {}
    for name in args.benchmarks:
        if name in problems:
            continue
        only = {side: sorted(set(runs[name][side][0]) - set(runs[name][other][0]))
                for side, other in (("old", "new"), ("new", "old"))}
        if any(only.values()):
            differences[name] = {f"only in {side}": v for side, v in only.items() if v}
        rows += [{"benchmark": name, **row} for row in summarize(runs[name], args.max_ratio)]
    same_script = {name: (trees["old"] / WORKLOADS[name].script).read_bytes()
                   == (trees["new"] / WORKLOADS[name].script).read_bytes()
                   for name in args.benchmarks if name not in problems}
    return {"old": labels["old"], "new": labels["new"], "repeats": args.repeats,
            "flags": {n: WORKLOADS[n].flags(args) for n in args.benchmarks},
            "same_script": same_script, "training_imported_from": imported,
            "figures": rows, "figures_in_one_commit_only": differences, "problems": problems,
            "max_ratio": args.max_ratio, "seconds": time.perf_counter() - started,
            "load_average_1min": {"min": min(loads, default=None), "max": max(loads, default=None),
                                  "median": statistics.median(loads) if loads else None}}


def print_table(result: dict) -> None:
    print(f"\nold = {result['old']}\nnew = {result['new']}\n{result['repeats']} runs each, "
          f"medians; ratio = new cost / old cost (target <= {result['max_ratio']})\n")
    print(f"{'benchmark':11s} {'figure':30s} {'unit':9s} {'old median':>11s} {'new median':>11s} "
          f"{'new/old':>8s}")
    for row in result["figures"]:
        verdict = "control" if row["control"] else ("ok" if row["ok"] else "OVER")
        print(f"{row['benchmark']:11s} {row['figure']:30s} {row['unit']:9s} {row['old_median']:11.4g} "
              f"{row['new_median']:11.4g} {row['ratio']:8.3f}  {verdict}")
    for name, same in result["same_script"].items():
        if not same:
            print(f"note: {WORKLOADS[name].script} differs between the commits (each ran its own)")
    for name, only in result["figures_in_one_commit_only"].items():
        print(f"note: {name}: figures not compared: {only}")
    for name, problem in result["problems"].items():
        print(f"NOT COMPARED {name}: {problem}")
    over = [f"{r['benchmark']} {r['figure']}" for r in result["figures"] if r["ok"] is False]
    load = result["load_average_1min"]
    print(f"\n{len(over)} figure(s) over {result['max_ratio']}" + (f": {', '.join(over)}" if over else "")
          + f"; {result['seconds'] / 60:.1f} min; 1-min load average {load['min']:.2f} to "
          f"{load['max']:.2f} (median {load['median']:.2f}) before the runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="git revision of the baseline")
    parser.add_argument("--new", default=None,
                        help="git revision to compare (default: the working tree as it is)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each script per commit")
    parser.add_argument("--rows", type=int, default=500_000,
                        help="events for collection, features and scoring")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per trainer run")
    parser.add_argument("--benchmarks", nargs="+", choices=sorted(WORKLOADS),
                        default=list(WORKLOADS))
    parser.add_argument("--max-ratio", type=float, default=1.05)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per subprocess")
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "compare_commits.json")
    args = parser.parse_args()
    for flag in ("repeats", "rows", "epochs"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED} (../shared/datasets)")
    load_start = uptime()
    with tempfile.TemporaryDirectory(prefix="compare_commits.") as tmp:
        root = Path(tmp)
        (root / "shared").symlink_to(SHARED)
        trees = {"old": root / "old", "new": root / "new"}
        labels: dict[str, str] = {}
        try:
            labels["old"] = checkout(args.old, trees["old"])
            labels["new"] = checkout(args.new, trees["new"])
            result = compare(trees, labels, args)
        finally:
            for side, rev in (("old", args.old), ("new", args.new)):
                if rev is not None and trees[side].exists():
                    git("worktree", "remove", "--force", str(trees[side]))
            git("worktree", "prune")
    result["uptime"] = {"start": load_start, "end": uptime()}
    print_table(result)
    print(f"uptime at the start: {load_start}\nuptime at the end:   {result['uptime']['end']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    if result["problems"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
