"""Every benchmark script runs in the environment README installs: what it imports exists there,
and a comparison library of an optional extra (Lightning, extra `bench`) is skipped with one
line when it is absent."""

from __future__ import annotations

import ast
import importlib
import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
OPTIONAL = {"lightning"}  # imported inside the function that uses it, after a check


def _module_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of the imports at the top level of a script."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            found.append((node.module, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_what_a_benchmark_imports_exists(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import each other by name
    for module, names in _module_imports(script):
        if module.split(".")[0] in OPTIONAL:
            continue
        imported = importlib.import_module(module)
        missing = [n for n in names if not hasattr(imported, n)
                   and importlib.util.find_spec(f"{module}.{n}") is None]
        assert not missing, f"{script.name}: {module} has no {', '.join(missing)}"


def test_bench_trainer_skips_lightning_when_it_is_not_installed(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lightning", None)  # as in an install without [bench]
    monkeypatch.setattr(sys, "argv", ["bench_trainer.py", "--epochs", "1", "--repeats", "1",
                                      "--batch-sizes", "2048"])
    runpy.run_path(str(BENCHMARKS / "bench_trainer.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("Lightning is not installed (pip install -e '.[bench]' adds it): the "
                        "Lightning comparison is skipped")
    assert [line.split()[2] for line in lines if line.startswith("batch")] == \
        ["baseline", "LayerTrainer"]
