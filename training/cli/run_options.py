"""The flags of a pipeline run's history and tracking: `--keep N` (run folders to keep) and
`--mlflow-uri` (an MLflow tracking server or store that mirrors the run; else
MLFLOW_TRACKING_URI; else none)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_run_options(parser: argparse.ArgumentParser, option: Callable[..., None]) -> None:
    """Add --keep and --mlflow-uri to a pipeline-running command."""
    option(parser, "--keep", type=int, metavar="N",
           help="keep only the newest N run folders (WORKDIR/runs/), this run included; "
                "default: keep every run")
    option(parser, "--mlflow-uri", metavar="URI",
           help="also log the run to MLflow (http://host:port, sqlite:///path.db, ...) and "
                "mirror registered versions into its Model Registry; default "
                "$MLFLOW_TRACKING_URI, else no MLflow (needs the mlflow extra)")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `run_pipeline` these flags ask for."""
    return {"keep": getattr(args, "keep", None), "mlflow_uri": getattr(args, "mlflow_uri", None)}
