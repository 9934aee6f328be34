"""Hooks and fixtures of the reliability suite (helpers live in harness.py).

Every test here is marked `reliability` (run the suite alone with `pytest -m reliability`) and
has a docstring of three labelled lines, checked at collection:

    Stage: the pipeline stage under fault (collection, preprocessing save, ...).
    Fault: what is injected.
    Expected: what must happen (and must not: data lost, a damaged file accepted, code run).

`observed(text)` records what actually happened (an error message, counts) for the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from training.tests.reliability.harness import LABELS, fault_fields

_TMP = re.compile(r"/\S*?/pytest-of-[^/]+/pytest-\d+/[^/]+/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        if item.get_closest_marker("reliability") is None:
            raise pytest.UsageError(f"{item.nodeid}: reliability tests must be marked "
                                    "`reliability` (pytestmark = pytest.mark.reliability)")
        missing = [k for k in LABELS if k not in fault_fields(getattr(item.obj, "__doc__", ""))]
        if missing:
            raise pytest.UsageError(f"{item.nodeid}: the docstring lacks {', '.join(missing)} "
                                    "(see training/tests/reliability/conftest.py)")


@pytest.fixture
def observed(record_property: Callable[[str, object], None]) -> Callable[[object], None]:
    """Record what the fault actually produced (shown in RELIABILITY.md)."""
    def note(text: object) -> None:
        text = _TMP.sub("<tmp>/", " ".join(str(text).split()))  # this run's temporary folders
        record_property("observed", text[:300])
    return note


@pytest.fixture(scope="session")
def straight_training(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The training run of `harness.train_vae` without any fault: what resumed runs must end
    with (history and weights)."""
    from training.tests.reliability.harness import train_vae
    return train_vae(str(tmp_path_factory.mktemp("straight")), resume=False)
