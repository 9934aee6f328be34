"""One folder per pipeline run, and the page that lists them.

    run = new_run(workdir)          # workdir/runs/20261206T155700.123456Z-3fa2c1/
    ...                             # the run writes report/, logs/ and pipeline.json there
    prune_runs(workdir, keep=5)     # only the newest 5 run folders stay
    write_runs_index(workdir)       # workdir/report/index.html: every run, newest first

    with failures_recorded(workdir):  # a run that raises: its error line on the front page
        ...                           # (run_pipeline does this itself)

A later run never overwrites an earlier one's report or TensorBoard run. What every run
rebuilds from its sources (features/, splits/, checkpoints/, events.parquet) stays in the
working directory, and the registered models in models/; `pipeline.json` beside them holds the
latest run's figures.
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.artifacts.atomic import PRIVATE_FOLDER, atomic_write
from training.artifacts.folders import real_folder
from training.errors import ConfigError, PipelineError, Terminated
from training.pipeline.lock import WorkdirBusyError, workdir_lock
from training.pipeline.report import page_head

logger = logging.getLogger(__name__)

__all__ = ["RunFolder", "check_keep", "describe_error", "failures_recorded", "list_runs",
           "new_run", "prune_runs", "write_runs_index"]

RUNS = "runs"
# <UTC time>-<short id>: names sort by start time (to the microsecond, so that runs started
# in one second still sort); the random suffix keeps runs of two machines apart.
_warned: set[Path] = set()  # links in runs/ already named in a warning
_RUN_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}$")
_TIME = "%Y%m%dT%H%M%S.%fZ"
FAILED = "failed.txt"  # in a run's folder: the error line that ended it


@dataclass(frozen=True)
class RunFolder:
    """Where one run writes what is its own."""

    id: str
    folder: Path

    @property
    def report(self) -> Path:
        return self.folder / "report"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def summary(self) -> Path:
        return self.folder / "pipeline.json"


def new_run(workdir: Path) -> RunFolder:
    """A new, empty run folder under `workdir/runs/`, with its report/ and logs/."""
    stamp = datetime.now(UTC).strftime(_TIME)
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    run = RunFolder(run_id, real_folder(Path(workdir) / RUNS) / run_id)  # never a planted link
    run.folder.mkdir(PRIVATE_FOLDER)  # exist_ok=False: a name is never reused
    run.report.mkdir(PRIVATE_FOLDER)
    run.logs.mkdir(PRIVATE_FOLDER)
    return run


def list_runs(workdir: Path) -> list[Path]:
    """The run folders under `workdir/runs/`, oldest first (other entries are ignored; a
    symbolic link is no run, whatever its name: it is named in a warning, never followed)."""
    root = Path(workdir) / RUNS
    if root.is_symlink() or not root.is_dir():
        return []
    runs = []
    for path in root.iterdir():
        if not _RUN_NAME.match(path.name):
            continue
        if path.is_symlink():
            if path not in _warned:  # once: the runs are listed several times a run
                _warned.add(path)
                logger.warning("%s is a symbolic link, not a run folder: skipped (never "
                               "followed or deleted); remove it if nobody needs it", path)
        elif path.is_dir():
            runs.append(path)
    return sorted(runs)


def check_keep(keep: int) -> int:
    """`keep` if it is a number of runs to keep (>= 1); ConfigError otherwise."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"keep must be an integer >= 1, got {keep!r}")
    return keep


def prune_runs(workdir: Path, keep: int, current: RunFolder | None = None) -> list[Path]:
    """Remove the oldest run folders so that the newest `keep` stay (`current` always stays).

    Returns:
        The folders removed.

    Raises:
        ConfigError: `keep` is below 1.
    """
    check_keep(keep)
    runs = [p for p in list_runs(workdir) if current is None or p != current.folder]
    removed = runs[:max(0, len(runs) - (keep - (current is not None)))]
    for folder in removed:
        shutil.rmtree(folder)
        logger.info("removed the run folder %s (--keep %d)", folder, keep)
    return removed


def _summary(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "pipeline.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a run that stopped early (or is running) has no summary yet
    return data if isinstance(data, dict) else None


def _layer_cell(run: str, layer: dict[str, Any]) -> str:
    name = html.escape(str(layer.get("layer", "?")))
    if layer.get("skipped"):
        return f"{name}: skipped"
    page = layer.get("report")
    link = (f'<a href="../{RUNS}/{run}/report/{html.escape(page)}">{name}</a>' if page
            else name)
    pr_auc = (layer.get("metrics") or {}).get("pr_auc")
    figure = "" if not isinstance(pr_auc, (int, float)) else f", PR-AUC {pr_auc:.4f}"
    return (f"{link}: {html.escape(str(layer.get('model_name', '')))} "
            f"{html.escape(str(layer.get('version', '')))} "
            f"({html.escape(str(layer.get('stage', '')))}{figure})")


def _failure(folder: Path) -> str | None:
    try:
        return (folder / FAILED).read_text(encoding="utf-8").strip()
    except OSError:
        return None  # the run did not fail (or was killed: nothing could write it)


def _started(folder: Path) -> str:
    return datetime.strptime(folder.name.split("-")[0], _TIME).strftime("%Y-%m-%d %H:%M:%S")


def _row(folder: Path) -> str:
    run, started = folder.name, _started(folder)
    data = _summary(folder)
    if data is None:
        failure = _failure(folder)
        what = ("no summary: the run stopped early or is running" if failure is None else
                f"<strong>failed</strong>: {html.escape(failure)}")
        return f"<tr><td>{run}</td><td>{started}</td><td colspan=\"4\">{what}</td></tr>"
    layers = "<br>".join(_layer_cell(run, o) for o in data.get("layers", []))
    page = (data.get("alerts") or {}).get("page")
    alerts = (f'<a href="../{RUNS}/{run}/report/{html.escape(page)}">'
              f"{data['alerts']['incidents']:,} incidents</a>" if page else "–")
    return (f'<tr><td><a href="../{RUNS}/{run}/report/index.html">{run}</a></td>'
            f"<td>{started}</td><td>{data.get('events', 0):,}</td>"
            f"<td>{data.get('seconds', 0):.1f} s</td><td>{layers or '–'}</td>"
            f"<td>{alerts}</td></tr>")


def _latest_failed(workdir: Path, runs: list[Path]) -> str:
    """A paragraph saying the newest run failed, with its error line ("" when it did not)."""
    failure = _failure(runs[-1]) if runs and _summary(runs[-1]) is None else None
    if failure is None:
        return ""
    where = html.escape(str(workdir))
    return (f"<p><strong>The latest run, {runs[-1].name} (started {_started(runs[-1])} UTC), "
            f"failed:</strong></p><pre>{html.escape(failure)}</pre><p>Fix what the error says "
            "and run the pipeline again. What the run registered before it failed is in the "
            f"registry (<code>maximus-train registry list --workdir {where}</code>).</p>")


def render_runs_index(workdir: Path) -> str:
    """The page listing every run under `workdir`, newest first, linking each run's pages;
    when the newest run failed, its error line first."""
    runs = list_runs(workdir)
    rows = "".join(_row(folder) for folder in reversed(runs))
    failed = _latest_failed(workdir, runs)
    title = "MAXIMUS pipeline runs: the latest failed" if failed else "MAXIMUS pipeline runs"
    return page_head(title) + failed + f"""
<p>Working directory <code>{html.escape(str(workdir))}</code>; each run's report, logs and
TensorBoard run are in <code>{RUNS}/&lt;run&gt;/</code>.</p>
<table><tr><th>run</th><th>started (UTC)</th><th>events</th><th>took</th>
<th>layers: model, version (stage)</th><th>alerts (test part)</th></tr>
{rows}
</table></body></html>
"""


def write_runs_index(workdir: Path) -> Path:
    """Write `workdir/report/index.html` (see `render_runs_index`) atomically; its path."""
    path = real_folder(Path(workdir) / "report") / "index.html"
    with atomic_write(path) as handle:
        handle.write(render_runs_index(workdir).encode("utf-8"))
    return path


def describe_error(exc: Exception) -> str:
    """A failed run's error line: the message of the package's own errors (they say what to
    do), else the exception's type and message."""
    return str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"


@contextmanager
def failures_recorded(workdir: Path, describe: Callable[[Exception], str] = describe_error
                      ) -> Iterator[None]:
    """Record a pipeline run that raises within the block (or is interrupted): its error line
    (`describe(exc)`) in its folder, and the front page (`write_runs_index`) listing every run
    and saying this one failed, in place of the "unfinished" page the run put there. The
    exception goes on.

    A run that fails before making its folder (another run holds the working directory, a bad
    argument) records nothing; nor is the front page written while another run holds the
    working directory (that run's page stands until it ends and lists this one).
    """
    before = set(list_runs(workdir))
    try:
        yield
    except (Exception, KeyboardInterrupt) as exc:  # Ctrl-C too: the run stopped unfinished
        made = [folder for folder in list_runs(workdir) if folder not in before]
        if made and not isinstance(exc, WorkdirBusyError):
            error = ("terminated (SIGTERM)" if isinstance(exc, Terminated) else
                     "interrupted (Ctrl-C or SIGINT)" if isinstance(exc, KeyboardInterrupt)
                     else describe(exc))
            _record_failure(Path(workdir), made[-1], error)
        raise


def _record_failure(workdir: Path, folder: Path, error: str) -> None:
    line = (error.strip().splitlines() or ["(no message)"])[0]
    with atomic_write(folder / FAILED) as handle:
        handle.write(f"{line}\n".encode("utf-8"))
    try:
        with workdir_lock(workdir):  # the run let it go when it raised
            write_runs_index(workdir)
    except WorkdirBusyError:
        logger.info("another run holds %s; its front page stands", workdir)
