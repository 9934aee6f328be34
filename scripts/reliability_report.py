"""Run the reliability suite and write RELIABILITY.md from what it observed.

    .venv/bin/python scripts/reliability_report.py [--output RELIABILITY.md] [pytest args...]

Every test of training/tests/reliability states in its docstring the stage it targets, the
fault it injects and the expected outcome (Stage:/Fault:/Expected:), and may record what it
actually observed (the `observed` fixture: an error message, counts). This script runs the
suite (`pytest -m reliability`) with a small plugin that collects those fields and each
test's outcome, and writes one row per test id, grouped by fault class (the test module), a
stage x fault-class matrix checked against the pairs the reliability issue requires, and the
known bugs (strict xfails) with their reasons. It exits non-zero when a test failed or a
required pair has no passing test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.tests.reliability.harness import fault_fields  # noqa: E402

SUITE = "training/tests/reliability"
CLASSES = {  # module -> fault class, in the issues' order (a class may span modules)
    "test_crashes": "Crashes",
    "test_corruption": "Corruption",
    "test_hostile_files": "Hostile files",
    "test_hostile_model_files": "Hostile files",
    "test_bad_input_scale": "Bad input at scale",
    "test_concurrency": "Concurrency",
    "test_disk_full": "Disk full",
    "test_hostile_filesystems": "Hostile filesystems",
    "test_poisoned_records": "Poisoned records",
    "test_pipeline_runs": "Crashes",
    "test_run_hygiene": "Run hygiene",
    "test_no_traceback": "Run hygiene",
}
# (fault class, stage, text that must appear in a passing test's id or fields): the pairs the
# issues list (the reliability suite's, then "Hostile filesystems and poisoned records"), each
# needing at least one passing test.
REQUIRED = [
    ("Crashes", "collection", ""),
    ("Crashes", "preprocessing save", ""),
    ("Crashes", "split save", ""),
    ("Crashes", "training", "[best]"),
    ("Crashes", "training", "[last]"),
    ("Crashes", "training", "[periodic]"),
    ("Crashes", "registry register", ""),
    ("Crashes", "registry promote", ""),
    ("Crashes", "tuning", ""),
    ("Corruption", "model files", ""),
    ("Corruption", "training", ""),
    ("Corruption", "preprocessing save", ""),
    ("Corruption", "split save", ""),
    ("Corruption", "registry artifacts", ""),
    ("Corruption", "registry SQLite", ""),
    ("Hostile files", "model files", "pickle"),
    ("Hostile files", "preprocessing save", "pickle"),
    ("Hostile files", "registry register", "traversal"),
    ("Hostile files", "collection", "huge"),
    ("Hostile files", "collection", "million_columns"),
    ("Hostile files", "collection", "nested"),
    ("Hostile files", "collection", "gzip_bomb"),
    ("Bad input at scale", "collection", "reader"),
    ("Bad input at scale", "preprocessing", "preprocess_event"),
    ("Concurrency", "collection", ""),
    ("Concurrency", "registry register", ""),
    ("Concurrency", "tuning", ""),
    ("Disk full", "collection", ""),
    ("Disk full", "preprocessing save", ""),
    ("Hostile filesystems", "collection", "links_leaving_the_source_folder"),
    ("Hostile filesystems", "collection", "raw_input_are_private"),
    ("Hostile filesystems", "scoring", "planted_at_the_temporary_name"),
    ("Hostile filesystems", "collection", "quarantine_file_planted_as_a_link"),
    ("Hostile filesystems", "collection", "fifo"),
    ("Poisoned records", "collection", "overflowing_timestamp"),
    ("Poisoned records", "scoring", "do_not_stop_scoring"),
    ("Poisoned records", "pipeline", "do_not_stop_the_pipeline"),
    ("Poisoned records", "collection", "null_timestamp"),
    ("Poisoned records", "collection", "protocol_digits"),
    ("Poisoned records", "collection", "ci_profile"),
    ("Poisoned records", "collection", "utf16"),
    ("Poisoned records", "collection", "binary"),
    ("Poisoned records", "collection", "huge_json_array"),
    ("Hostile files", "registry register", "sidecar_with_a_bad_field"),
    ("Hostile files", "model files", "huge_model"),
    ("Hostile files", "preprocessing save", "compressed_npz"),
    # "Runs that race or die half-way, and errors without tracebacks"
    ("Concurrency", "pipeline", "two_pipeline_runs"),
    ("Concurrency", "registry register", "concurrent_registrations"),
    ("Crashes", "registry promote", "between_register_and_promote"),
    ("Crashes", "pipeline", "before_its_report"),
    ("Run hygiene", "pipeline", "temporary_files_of_killed_runs"),
    ("Run hygiene", "scoring", "duplicates"),
    ("Run hygiene", "pipeline", "quarantined_records"),
    ("Disk full", "registry promote", "promote_disk_full"),
    ("Disk full", "pipeline", "pipeline_disk_full"),
    ("Run hygiene", "pipeline", "no_command_prints_a_traceback"),
]


@dataclass
class Row:
    nodeid: str
    module: str
    fields: dict[str, str]
    outcome: str = "not run"
    observed: str = ""
    reason: str = ""
    seconds: float = 0.0

    @property
    def test_id(self) -> str:
        return self.nodeid.split("::", 1)[1]

    @property
    def fault_class(self) -> str:
        return CLASSES.get(self.module, self.module)


@dataclass
class Collector:
    """A pytest plugin gathering each reliability test's docstring fields and outcome."""

    rows: dict[str, Row] = field(default_factory=dict)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:  # after -m deselection
            module = Path(str(item.fspath)).stem
            self.rows[item.nodeid] = Row(item.nodeid, module,
                                         fault_fields(getattr(item.obj, "__doc__", "")))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = self.rows.get(report.nodeid)
        if row is None:
            return
        row.seconds += report.duration
        for name, value in report.user_properties:
            if name == "observed":
                row.observed = str(value)
        if report.when == "call" or report.outcome != "passed":
            if hasattr(report, "wasxfail"):
                row.outcome = "xpassed" if report.passed else "xfailed"
                row.reason = report.wasxfail
            elif report.when == "call" or row.outcome == "not run":
                row.outcome = report.outcome
                if report.failed:
                    row.observed = str(report.longrepr).strip().splitlines()[-1][:300]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def render(rows: list[Row], seconds: float, load_before: str, load_after: str) -> tuple[str, list]:
    """The markdown text, and the required pairs that have no passing test."""
    passed = [r for r in rows if r.outcome == "passed"]
    missing = [(cls, stage, need) for cls, stage, need in REQUIRED
               if not any(r.fault_class == cls and r.fields.get("Stage") == stage
                          and need in r.nodeid for r in passed)]
    counts = defaultdict(int)
    for r in rows:
        counts[r.outcome] += 1
    lines = [
        "# Reliability: injected faults and what they did",
        "",
        "Generated by `scripts/reliability_report.py` from the test ids of "
        f"`{SUITE}` (run alone with `pytest -m reliability`; `make test` runs it with the rest). "
        "Each row is one injected fault: the test that injects it, the outcome the test "
        "requires, and what was observed in this run. Do not edit by hand: rerun the script.",
        "",
        f"- Run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"{len(rows)} injected faults (test ids), "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        + f", {seconds:.0f} s wall clock.",
        f"- Machine load before / after: `{load_before}` / `{load_after}`.",
        "- Faults are real: SIGKILL and ENOSPC are injected in child processes at a chosen write, "
        "rename or SQL statement (`training/tests/reliability/faults.py`); only external "
        "servers would be faked (none is needed here).",
        "",
        "## Coverage: stage x fault class",
        "",
    ]
    stages = sorted({r.fields.get("Stage", "?") for r in rows})
    classes = [c for c in dict.fromkeys(CLASSES.values())
               if any(r.fault_class == c for r in rows)]
    lines.append("| stage | " + " | ".join(classes) + " |")
    lines.append("|---|" + "---|" * len(classes))
    for stage in stages:
        cells = []
        for cls in classes:
            hit = [r for r in rows if r.fault_class == cls and r.fields.get("Stage") == stage]
            ok = sum(r.outcome == "passed" for r in hit)
            known = sum(r.outcome == "xfailed" for r in hit)
            cells.append("" if not hit else f"{ok} passed" + (f", {known} known bug" if known
                                                               else ""))
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines += ["", "Required by the issue, each with at least one passing test: "
              + ("all present." if not missing else "MISSING: " + "; ".join(
                  f"{c} x {s}{f' ({n})' if n else ''}" for c, s, n in missing)), ""]

    for cls in classes:
        lines += [f"## {cls}", "", "| stage | test (fault injected) | expected | observed |",
                  "|---|---|---|---|"]
        for r in (r for r in rows if r.fault_class == cls):
            outcome = {"passed": "PASS", "xfailed": "KNOWN BUG (strict xfail)",
                       "failed": "FAIL", "xpassed": "XPASS (bug fixed? remove the xfail)",
                       "skipped": "SKIPPED"}.get(r.outcome, r.outcome)
            observed = f"**{outcome}**" + (f": {r.observed}" if r.observed else "")
            lines.append(f"| {_cell(r.fields.get('Stage', '?'))} | `{r.test_id}`: "
                         f"{_cell(r.fields.get('Fault', ''))} | {_cell(r.fields.get('Expected', ''))}"
                         f" | {_cell(observed)} |")
        lines.append("")

    known = [r for r in rows if r.outcome in ("xfailed", "xpassed")]
    lines += ["## Known bugs (strict xfail: the test turns red once the bug is fixed)", ""]
    lines += [f"- `{r.test_id}`: {_cell(r.reason)}" for r in known] or ["- none"]
    lines.append("")
    return "\n".join(lines), missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "RELIABILITY.md"))
    args, pytest_args = parser.parse_known_args(argv)
    collector = Collector()
    load_before = _load()
    start = time.perf_counter()
    code = pytest.main(["-m", "reliability", "-p", "no:cacheprovider", "-q", "-rfE",
                        str(REPO / SUITE), *pytest_args], plugins=[collector])
    seconds = time.perf_counter() - start
    rows = list(collector.rows.values())
    text, missing = render(rows, seconds, load_before, _load())
    Path(args.output).write_text(text)
    print(f"wrote {args.output}: {len(rows)} faults; missing pairs: {missing or 'none'}")
    return 0 if code == pytest.ExitCode.OK and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
