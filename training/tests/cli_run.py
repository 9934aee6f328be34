"""Running `maximus-train` in the test's own process, for tests of what a command prints."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from training.cli.main import main


def run_cli(*argv: str) -> str:
    """`maximus-train ARGV -q` in this process (exit 0 required); its stdout."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert main([*argv, "-q"]) == 0
    return out.getvalue()
