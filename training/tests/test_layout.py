"""The package's shape: a house by stage, seed names as thin re-exports, imports that flow one way.

The import graph is read with `ast`, so nothing is imported to build it: every `import` and
`from ... import` at module level and inside functions counts, except those under
`if TYPE_CHECKING:` (they never run) and the implicit import of a parent package (importing
`training.a.b` runs `training/a/__init__.py`, which is not a dependency of the code in `b`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
SEED_MODULES = {"data_collection", "data_preprocessor", "dataset_builder", "data_validator",
                "layer_trainer", "evaluator", "model_registry", "continuous_training",
                "hyperparameter_tuner", "train_layer1_vae", "train_layer2_gnn",
                "train_layer3_tcn"}
TOP_LEVEL = SEED_MODULES | {"__init__", "errors", "paths"}


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package, tests left out."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if "tests" in parts:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Module names imported anywhere in `tree`, skipping `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        imported = _imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_checking_imports_and_parent_packages_do_not_count():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x.y\n"
                     "def f():\n    from . import z\n")
    assert _imports(tree, "pkg.mod", is_package=False) == {"typing", "typing.TYPE_CHECKING",
                                                           "pkg", "pkg.z"}


def test_the_top_level_holds_only_the_seed_names_errors_and_paths():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL, f"modules that belong in a stage folder: {sorted(top - TOP_LEVEL)}"
    assert len(top) <= 20


@pytest.mark.parametrize("name", sorted(SEED_MODULES))
def test_seed_modules_are_thin_re_exports(name):
    lines = (PACKAGE / f"{name}.py").read_text().splitlines()
    assert len(lines) < 30, f"training/{name}.py has {len(lines)} lines; keep the code in its stage folder"


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > 400}
    assert not long, f"split these modules: {long}"


def test_every_module_says_its_one_job_first():
    missing = [name for name, path in _modules().items()
               if not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"


def test_the_tests_run_the_cli_through_one_helper():
    """`maximus-train ARGV` in process, its stdout (`training.tests.cli_run.run_cli`), was
    copied into test modules: one helper, imported where it is used."""
    helper = ast.parse((PACKAGE / "tests" / "cli_run.py").read_text()).body[-1]
    assert isinstance(helper, ast.FunctionDef) and helper.name == "run_cli"
    body = ast.dump(ast.Module(body=helper.body[1:], type_ignores=[]))  # past its docstring
    copies = []
    for path in sorted((PACKAGE / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                statements = node.body[1:] if ast.get_docstring(node) else node.body
                if ast.dump(ast.Module(body=statements, type_ignores=[])) == body:
                    copies.append(f"{path.name}:{node.name}")
    assert not copies, f"use training.tests.cli_run.run_cli instead of {copies}"
