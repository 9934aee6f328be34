"""`maximus-train`: one command-line tool over the public API (see `training.cli.main`)."""

from training.cli.main import main

__all__ = ["main"]
