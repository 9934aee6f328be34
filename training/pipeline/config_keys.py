"""Every unknown key of a pipeline TOML file, refused in one error before any value is checked.

A file with three typos took three runs to reveal them, one per run. Here every table is
looked at first (the top level, each [[sources]] and [[test_sources]] entry, [split], [gate],
[train] and each [train.<layer>]), and one error names each unknown key with its table and the
closest allowed key:

    p.toml: unknown keys in 2 tables: [train] epocs (did you mean epochs?); [train.layer1]
    hiden_dim (did you mean hidden_dim?)

A single table keeps the form that lists what it allows:
`p.toml [train.layer1]: unknown key(s) bogus; allowed: batch_size, beta, ...`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from training.errors import ConfigError, NotSupportedError
from training.layers.registry import get_layer, layer_names
from training.pipeline.checks import SOURCE_KEYS, TRAIN_KEYS, layer_keys, unknown_keys
from training.pipeline.tuned import PARAMS_KEY

TOP_KEYS = frozenset({"workdir", "layers", "seed", "max_events", "sources", "test_sources",
                      "split", "train", "gate", "drop_fields"})


def refuse_unknown_keys(data: dict[str, Any], where: str, split_keys: Iterable[str],
                        gate_keys: Iterable[str]) -> None:
    """Raise one ConfigError naming every unknown key of the file's content `data` (see the
    module docstring); tables of the wrong type are left to the value checks.

    Args:
        data: the file's content (with the command line's values over it).
        where: the file, as messages name it.
        split_keys, gate_keys: the keys [split] and [gate] allow (their dataclasses' fields).
    """
    found: list[tuple[str, list[str], frozenset[str]]] = []

    def check(table: str, values: Any, allowed: Iterable[str]) -> None:
        allowed = frozenset(allowed)
        if isinstance(values, dict) and (unknown := unknown_keys(values, allowed)):
            found.append((table, unknown, allowed))

    check("", data, TOP_KEYS)
    for key in ("sources", "test_sources"):
        entries = data.get(key)
        for i, entry in enumerate(entries if isinstance(entries, (list, tuple)) else ()):
            check(f"[[{key}]] #{i + 1}", entry, SOURCE_KEYS)
    check("[split]", data.get("split"), split_keys)
    check("[gate]", data.get("gate"), gate_keys)
    train = data.get("train")
    if isinstance(train, dict):
        tables = {}
        for key, values in train.items():
            if isinstance(values, dict):
                try:
                    tables[key] = get_layer(key)
                except NotSupportedError:
                    tables[key] = None  # a planned layer: its own message, later
                except ConfigError:
                    pass  # not a layer: an unknown key of [train]
        # [train] params is refused later with where it belongs.
        check("[train]", {k: v for k, v in train.items() if k not in tables and k != PARAMS_KEY},
              {*TRAIN_KEYS, *layer_names()})
        for key, layer in tables.items():
            allowed = layer_keys(layer, train[key]) if layer is not None else None
            if allowed is not None:
                check(f"[train.{key}]", train[key], allowed)
    if found:
        raise ConfigError(_message(where, found))


def _message(where: str, found: list[tuple[str, list[str], frozenset[str]]]) -> str:
    if len(found) == 1:
        table, unknown, allowed = found[0]
        return (f"{where}{' ' + table if table else ''}: unknown key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}")
    parts = []
    for table, unknown, allowed in found:
        listed = "" if all("did you mean" in key for key in unknown) else (
            f" (allowed: {', '.join(sorted(allowed))})")
        parts.append(f"{table or 'top level'} {', '.join(unknown)}{listed}")
    return f"{where}: unknown keys in {len(found)} tables: {'; '.join(parts)}"
