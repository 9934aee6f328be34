"""The property tests' (hypothesis) profiles, chosen by the environment.

* `default`: random examples, so every developer run explores new ones; failures are kept in
  the example database (.hypothesis/) and replayed first next time.
* `ci` (when CI=true, as `.ci/run` sets): derandomized, no database. Every run on every fresh
  clone draws the same examples, so the suite passes or fails the same way everywhere; a pass
  there means the same examples passed, not that a lucky draw missed a bug.
* `fuzz` (HYPOTHESIS_PROFILE=fuzz, what `make fuzz` runs): random, with FUZZ_FACTOR times the
  examples each property asks for; what it finds becomes a fixed regression test.

HYPOTHESIS_PROFILE names a profile explicitly and wins over CI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import settings

FUZZ_FACTOR = 50
_TRUE = ("1", "true", "yes")

settings.register_profile("default", settings())
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
_loaded = "default"


def load_profile(environ: Mapping[str, str] = os.environ) -> str:
    """Load the profile the environment asks for (see the module docstring); returns its name."""
    global _loaded
    name = environ.get("HYPOTHESIS_PROFILE") or (
        "ci" if environ.get("CI", "").strip().lower() in _TRUE else "default")
    settings.load_profile(name)
    _loaded = name
    return name


def examples(n: int) -> int:
    """How many examples a property that asks for `n` runs under the loaded profile."""
    return n * FUZZ_FACTOR if _loaded == "fuzz" else n
