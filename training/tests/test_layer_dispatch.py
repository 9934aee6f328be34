"""Stages never switch on layer names: only `training/layers/` (the layers and their alias table)
may compare with, or key a dict by, a layer's name or the original `LayerType` members.

The check walks the AST of every module outside `training/layers/` (tests excluded) and reports:
a comparison (==, !=, in, not in, is) with a layer-name string or a `LayerType` member; a dict
whose keys are such names or members; an integer 1-3 compared with, or used as a key or
subscript of, a name that contains "layer".
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
NAMES = {f"layer{n}" for n in range(1, 6)} | {
    "layer1_sensory", "layer2_behavioral", "layer3_operational", "layer4_tactical",
    "layer5_strategic"}


def _is_name(node: ast.AST) -> bool:
    """A layer-name string, a `LayerType` member, or a literal collection of them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value in NAMES
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "LayerType"
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_name(item) for item in node.elts)
    return False


def _about_layer(name: str) -> bool:
    # "layers" in a name counts network layers (num_hidden_layers), not pipeline layers
    name = name.lower()
    return "layer" in name.replace("layers", "")


def _mentions_layer(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return _about_layer(node.id)
    if isinstance(node, ast.Attribute):
        return _about_layer(node.attr) or _mentions_layer(node.value)
    if isinstance(node, ast.Call):
        return _mentions_layer(node.func)
    return False


def _small_int(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and type(node.value) is int
            and 1 <= node.value <= 3)


def violations(source: str) -> list[tuple[int, str]]:
    """(line, what) of every per-layer switch in `source` (see the module docstring)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_name(side) for side in sides):
                found.append((node.lineno, "comparison with a layer name"))
            elif any(_small_int(s) for s in sides) and any(_mentions_layer(s) for s in sides):
                found.append((node.lineno, "a layer compared with an integer"))
        elif isinstance(node, ast.Dict):
            if any(key is not None and _is_name(key) for key in node.keys):
                found.append((node.lineno, "dict keyed by layer names"))
        elif isinstance(node, ast.Subscript):
            if _small_int(node.slice) and _mentions_layer(node.value):
                found.append((node.lineno, "a layer looked up by an integer"))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            named = node.targets if isinstance(node, ast.Assign) else [node.target,
                                                                        node.annotation]
            about_layers = any(_mentions_layer(part) for target in named
                               for part in ast.walk(target))
            if (isinstance(node.value, ast.Dict) and about_layers
                    and any(k is not None and _small_int(k) for k in node.value.keys)):
                found.append((node.lineno, "a layer table keyed by integers"))
    return sorted(found)


def test_no_stage_switches_on_layer_names():
    report = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("tests", "layers"):
            continue
        report += [f"training/{relative}:{line}: {what}"
                   for line, what in violations(path.read_text())]
    assert not report, "per-layer switches outside training/layers:\n" + "\n".join(report)


def test_the_check_finds_each_kind_of_switch():
    source = '''
if spec.layer == "layer2": pass
if name in ("layer1", "layer3"): pass
if kind is LayerType.LAYER1_SENSORY: pass
TABLE = {"layer1": 1, LayerType.LAYER2_BEHAVIORAL: 2}
if args.layer == 2: pass
OBJECTIVES: dict[int, type[LayerObjective]] = {1: "vae"}
fn = layer_table[3]
'''
    assert [line for line, _ in violations(source)] == [2, 3, 4, 5, 6, 7, 8]
    assert violations('x = 2\nif count == 1: pass\nname = "layer1_vae"\n'
                      'if num_hidden_layers >= 1: pass\n') == []
