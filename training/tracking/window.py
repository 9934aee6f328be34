"""MLflow as a window on our runs (opt-in): a run's parameters, per-epoch metrics, evaluation
figures and report, logged to an MLflow tracking server or store.

    window = open_window(uri)        # uri: --mlflow-uri, else $MLFLOW_TRACKING_URI, else None
    if window is not None:
        run_id = window.start_run("20261206T155700.123456Z-3fa2c1 layer1", {"maximus.layer": ...})
        window.log_metrics(run_id, {"val_loss": 0.1}, step=1)
        window.log_params(run_id, {"batch_size": 32, "model": {"hidden_dim": 96}})
        window.log_folder(run_id, report_folder, "report")
        window.end_run(run_id)

Our registry and run folders stay the source of truth: MLflow only mirrors them. mlflow not
installed, an unreachable server, a URI MLflow refuses (a `file:` store unless
MLFLOW_ALLOW_FILE_STORE is set), or any later MLflow error gives one warning, and the window
closes: the run goes on without it. A URI's password (`http://user:PASSWORD@host`) is shown
as `***` in every message.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

__all__ = ["MlflowWindow", "open_window", "redacted", "tracking_uri"]

EXPERIMENT = "maximus"
T = TypeVar("T")
# MLflow's own HTTP client retries for minutes; a window must not hold a run up that long.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
# MLflow writes "View run ... at: URL" to stdout when a run ends on a server, which made the
# JSON that `retrain` and `tune` print there unparseable; and a progress bar on stderr for
# every file it downloads. Both are a library's own output: the run's URL is logged (-v).
_QUIET_DEFAULTS = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
                   "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
_PROBE_TIMEOUT_S = 5.0
_BATCH = 100  # MLflow's limit of params per log_batch call


def tracking_uri(uri: str | None) -> str | None:
    """The MLflow URI to log to: `uri` (the flag), else $MLFLOW_TRACKING_URI, else None."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def redacted(text: str, uri: str) -> str:
    """`text` (a message about `uri`) with the password of `uri`'s `user:password@` shown as
    `***`: such messages go to logs and cron mail."""
    found = set()
    try:
        found.add(urllib.parse.urlsplit(uri).password)
    except ValueError:  # not a URL with a valid port
        pass
    # A password with '#' or '/' is not one to urlsplit (a fragment, a path): everything
    # between the user's ':' and the authority's last '@' is.
    userinfo = uri.partition("://")[2].rpartition("@")[0]
    found.add(userinfo.partition(":")[2])
    for password in sorted(p for p in found if p):
        text = text.replace(f":{password}@", ":***@")
    return text


def open_window(uri: str | None, experiment: str = EXPERIMENT) -> MlflowWindow | None:
    """A window on MLflow at `tracking_uri(uri)`, or None (no URI; or one warning said why
    there is none: see the module docstring)."""
    uri = tracking_uri(uri)
    if uri is None:
        return None
    _route_mlflow_logs()
    try:
        from mlflow import MlflowClient
    except ImportError:
        logger.warning("MLflow URI %s given but mlflow is not installed (pip install "
                       "'maximus-training[mlflow]'): the run is not logged to MLflow",
                       redacted(uri, uri))
        return None
    if uri.startswith(("http://", "https://")) and not _reachable(uri, redacted(uri, uri)):
        return None
    for name, value in {**_HTTP_DEFAULTS, **_QUIET_DEFAULTS}.items():
        os.environ.setdefault(name, value)
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = (found.experiment_id if found is not None
                         else client.create_experiment(experiment, _artifacts(uri)))
    except Exception as exc:  # noqa: BLE001  any refusal of MLflow's: warn once, go on
        _refused(uri, exc)
        return None
    logger.info("logging to MLflow at %s, experiment %s", redacted(uri, uri), experiment)
    return MlflowWindow(client, uri, experiment_id)


def _route_mlflow_logs() -> None:
    """Have MLflow's log records go through the application's logging, like any library's
    (the command line: its INFO lines only with -v).

    On import MLflow gives its loggers a stderr handler of their own at INFO ("Creating
    initial MLflow database tables..."), unless MLFLOW_CONFIGURE_LOGGING is false. It then
    also no longer holds the database migrations' loggers at WARNING, so that is done here
    (dozens of "Running upgrade" lines are noise even with -v), where nobody set their level.
    MLFLOW_CONFIGURE_LOGGING set by the user, or MLflow already imported: left as it is.
    """
    if "MLFLOW_CONFIGURE_LOGGING" in os.environ or "mlflow" in sys.modules:
        return
    os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"
    for name in ("alembic", "sqlalchemy.engine"):
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.WARNING)


def _artifacts(uri: str) -> str | None:
    """Where a local database store keeps artifacts: `<database>-artifacts` beside it, named
    after it as SQLite's own companion files are (`mlflow.db-wal`), so two stores in one
    folder keep theirs apart (MLflow's default, ./mlruns, would put them in whatever folder
    the command runs from). Fixed when the experiment is made: an existing one keeps its own."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return None
    database = Path(uri.removeprefix("sqlite:///")).resolve()
    return database.with_name(f"{database.name}-artifacts").as_uri()


def _reachable(uri: str, shown: str) -> bool:
    """Whether the server at `uri` answers. `user:password@` is left out of the probe (urllib
    took it for part of the host name): any answer, a refusal to log in too, is one."""
    parts = urllib.parse.urlsplit(uri)
    probe = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    try:
        with urllib.request.urlopen(probe.rstrip("/") + "/health", timeout=_PROBE_TIMEOUT_S):
            return True
    except urllib.error.HTTPError:
        return True  # it answers (behind a proxy or login, say): MLflow's calls will tell
    except (http.client.InvalidURL, ValueError):  # its text quotes the "port": a password
        reason = ("not a valid URL: percent-encode the user's and password's '#', '/', '?', "
                  "'@' and ':' (%23, %2F, %3F, %40, %3A)")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = redacted(str(getattr(exc, "reason", exc)), uri)
    logger.warning("the MLflow server at %s is unreachable (%s): the run is not logged to "
                   "MLflow; it goes on", shown, reason)
    return False


def _refused(uri: str, exc: Exception) -> None:
    text, uri = redacted(str(exc), uri), redacted(uri, uri)
    if "MLFLOW_ALLOW_FILE_STORE" in text:
        logger.warning("MLflow refuses the file store %s (set MLFLOW_ALLOW_FILE_STORE=true to "
                       "allow it, or use a database such as sqlite:///mlflow.db): the run is "
                       "not logged to MLflow; it goes on", uri)
    else:
        logger.warning("MLflow at %s refused the run (%s: %s): the run is not logged to "
                       "MLflow; it goes on", uri, type(exc).__name__, text.splitlines()[0]
                       if text else "")


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested parameters as MLflow's flat text ones: {"model": {"a": 1}} -> {"model.a": "1"}."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[f"{prefix}{key}"] = text
    return flat


class MlflowWindow:
    """An open connection to MLflow; every call is a no-op once the window has closed.

    Args:
        client: an `mlflow.MlflowClient` on `uri` (tracking and model registry).
        uri: where it logs.
        experiment_id: the experiment runs go to.

    Attributes:
        shown: `uri` for messages (its password shown as `***`).
        model_names: (registry identity, model name) -> the registered model it is mirrored
            to in this store (`training.tracking.mirror.mlflow_model_name`), once looked up.
    """

    def __init__(self, client: Any, uri: str, experiment_id: str) -> None:
        self.client = client
        self.uri = uri
        self.shown = redacted(uri, uri)
        self.experiment_id = experiment_id
        self.closed = False
        self.model_names: dict[tuple[str, str], str] = {}

    def guard(self, what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """`call(*args, **kwargs)`; an error of MLflow's (any kind: HTTP, database, file)
        warns once and closes the window, so that the run goes on without it."""
        if self.closed:
            return None
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  MLflow is a window, never a reason to stop
            self.closed = True
            text = redacted(str(exc), self.uri)
            logger.warning("MLflow at %s failed to %s (%s: %s): the rest of the run is not "
                           "logged to MLflow; it goes on", self.shown, what, type(exc).__name__,
                           text.splitlines()[0] if text else "")
            return None

    def start_run(self, name: str, tags: Mapping[str, str]) -> str | None:
        """A new MLflow run named `name`; its id (None: the window is closed)."""
        run = self.guard("start a run", self.client.create_run, self.experiment_id,
                         run_name=name, tags=dict(tags))
        return None if run is None else run.info.run_id

    def log_params(self, run_id: str | None, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        if run_id is None:
            return
        items = [Param(k, v) for k, v in flat_params(params).items()]
        for start in range(0, len(items), _BATCH):
            self.guard("log parameters", self.client.log_batch, run_id,
                       params=items[start:start + _BATCH])

    def log_metrics(self, run_id: str | None, metrics: Mapping[str, Any],
                    step: int = 0) -> None:
        """Log the finite numbers of `metrics` at `step` (others are left out)."""
        from mlflow.entities import Metric

        if run_id is None:
            return
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and math.isfinite(v)]
        if items:
            self.guard("log metrics", self.client.log_batch, run_id, metrics=items)

    def set_tags(self, run_id: str | None, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            if run_id is not None:
                self.guard("set a tag", self.client.set_tag, run_id, key, str(value))

    def log_files(self, run_id: str | None, files: list[Path], artifact_path: str) -> None:
        for path in files:
            if run_id is not None and path.is_file():
                self.guard("log an artifact", self.client.log_artifact, run_id, str(path),
                           artifact_path)

    def end_run(self, run_id: str | None, status: str = "FINISHED") -> None:
        if run_id is not None:
            self.guard("end a run", self.client.set_terminated, run_id, status)
            if self.uri.startswith(("http://", "https://")) and not self.closed:
                logger.info("MLflow run %s (%s): %s/#/experiments/%s/runs/%s", run_id, status,
                            self.shown.rstrip("/"), self.experiment_id, run_id)
