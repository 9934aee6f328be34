"""The values of a pipeline TOML file, each checked against its rule before it is used.

Every error names the file, the table and the key, the rule and the value
(`config.toml [train.layer1]: hidden_dim must be an integer, got 'abc'`), and a value that
is not one of a few choices the closest one (`got 'temporl' (did you mean temporal?)`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from training.errors import ConfigError, NotSupportedError, did_you_mean
from training.layers.registry import get_layer, layer_names
from training.sources.config import DataSource
from training.sources.presets import column_names

# The keys of [train] and [train.<layer>] besides a layer's model arguments, with their types.
TRAIN_KEYS = {"epochs": (int, "an integer"), "batch_size": (int, "an integer"),
              "learning_rate": ((int, float), "a number"), "benign_only": (bool, "true or false"),
              "keep_unknown": (bool, "true or false"), "threshold": (str, "a rule such as "
                                                                     "\"quantile:0.999\"")}
# The keys of a [[sources]] (or [[test_sources]]) entry.
SOURCE_KEYS = frozenset({"name", "type", "path", "connection_params", "field_map", "label_map",
                         "default_label", "column_names", "has_header"})


def layer_keys(layer: type, values: dict[str, Any]) -> set[str] | None:
    """The keys a [train.<layer>] table may hold: the training keys, the featurizer's options
    and the model's arguments; None when it names another detector, whose arguments are
    checked when it is built."""
    if values.get("detector", layer.detector_name) != layer.detector_name:
        return None
    return (set(TRAIN_KEYS) | set(layer.model_options) | set(layer.featurizer_options)
            | {"detector", "params"})


def layer_settings(layer: type, values: dict[str, Any], where: str) -> None:
    """A [train.<layer>] table: its training keys, its featurizer's options
    (`Layer.featurizer_options`) and the layer's model arguments (`Layer.model_options`),
    each of the type and choices the command line accepts."""
    options = layer.model_options
    check_types({k: v for k, v in values.items() if k in TRAIN_KEYS}, TRAIN_KEYS, where)
    if "params" in values:  # a tune best_params.json (training.pipeline.tuned)
        typed(where, "params", values["params"], str, "the path of a best_params.json")
    for name, option in layer.featurizer_options.items():  # whichever detector reads them
        if name in values:
            model_value(name, values[name], option, where)
    allowed = layer_keys(layer, values)
    if allowed is None:
        return  # another detector: its arguments are checked when it is built
    known(values, allowed, where)
    for name, value in values.items():
        if name in options:
            model_value(name, value, options[name], where)


def model_value(name: str, value: Any, option: dict[str, Any], where: str) -> None:
    kind = option.get("type")
    if option.get("action") is not None:  # a --flag/--no-flag switch
        kind, rule = bool, "true or false"
    else:
        rule = {int: "an integer", float: "a number"}.get(kind, "a string")
    values = value
    if option.get("nargs") in ("+", "*"):
        if not isinstance(value, list) or (option["nargs"] == "+" and not value):
            raise ConfigError(f"{where}: {name} must be a list of {rule.split(' ', 1)[1]}s, "
                              f"got {value!r}")
        rule = f"a list of {rule.split(' ', 1)[1]}s"
    else:
        values = [value]
    for item in values:
        ok = {bool: lambda v: isinstance(v, bool),
              int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
              }.get(kind, lambda v: isinstance(v, str))(item)
        if not ok:
            raise ConfigError(f"{where}: {name} must be {rule}, got {value!r}")
        if option.get("choices") and item not in option["choices"]:
            raise ConfigError(f"{where}: {name} must be one of "
                              f"{', '.join(map(str, option['choices']))}, got {item!r}"
                              + did_you_mean(str(item), map(str, option["choices"])))


def check_types(values: dict[str, Any], kinds: dict[str, tuple[Any, str]], where: str) -> None:
    for name, value in values.items():
        typed(where, name, value, *kinds[name])


def typed(where: str, name: str, value: Any, kind: Any, rule: str) -> None:
    """Refuse `value` unless it is a `kind` (a bool is not a number)."""
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise ConfigError(f"{where}: {name} must be {rule}, got {value!r}")


def one_of(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{name} must be one of {', '.join(valid)}, got {value!r}"
                          + did_you_mean(str(value), valid))


def canonical_layers(names: Any, where: str) -> list[str]:
    """Canonical names of the layers `names` lists (any of their names)."""
    try:
        return [get_layer(name).name for name in names]
    except (ConfigError, NotSupportedError) as exc:
        raise ConfigError(f"{where} must name layers of {', '.join(layer_names())}: "
                          f"{exc}") from None


def source(entry: dict[str, Any], where: str) -> DataSource:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table with type and path, got {entry!r}")
    known(entry, SOURCE_KEYS, where)
    if "type" not in entry:
        raise ConfigError(f"{where}: needs type = \"zeek_logs\" (or json_file, csv_file, ...)")
    params = dict(entry.get("connection_params", {}))
    if "path" in entry:
        params["path"] = entry["path"]
    try:
        field_map = entry.get("field_map")
        if "column_names" in entry:
            field_map = with_columns(params, entry["column_names"], field_map,
                                     entry.get("has_header"))
        elif "has_header" in entry:
            params["has_header"] = entry["has_header"]
        return DataSource(entry.get("name", entry["type"]), entry["type"], params,
                          field_map=field_map, label_map=entry.get("label_map"),
                          default_label=entry.get("default_label"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def with_columns(params: dict[str, Any], names: Any, field_map: dict[str, Any] | None,
                 has_header: bool | None = None) -> dict[str, Any] | None:
    """Put column names (a preset such as "nsl_kdd", "a,b,c" or a list) into a CSV source's
    connection_params (a file without a header unless `has_header`); returns the field map:
    the preset's, updated by `field_map`."""
    columns, preset_map = column_names(names)
    params["column_names"] = list(columns)
    params["has_header"] = bool(has_header) if has_header is not None else False
    merged = {**preset_map, **(field_map or {})}
    return merged or None


def build(cls: type, values: dict[str, Any], where: str, table: str) -> Any:
    """`cls(**values)`, each value of its field's type (the type of the field's default);
    the class's own refusal of a value is named with `where` (`p.toml [split]: strategy must
    be one of ...`), `table` being the prefix its messages give the key (`split`)."""
    declared = {f.name: f for f in fields(cls)}
    known(values, set(declared), where)
    for name, value in values.items():
        if declared[name].default is None:  # optional: the field itself checks the value
            typed(where, name, value, (str, int, float), "a string or a number")
        elif isinstance(declared[name].default, str):
            typed(where, name, value, str, "a string")
        else:
            typed(where, name, value, (int, float), "a number")
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {str(exc).removeprefix(table + '.')}") from None


def known(values: dict[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    unknown = unknown_keys(values, allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(allowed))}")


def unknown_keys(values: dict[str, Any], allowed: set[str] | frozenset[str]) -> list[str]:
    """The keys of `values` not in `allowed`, each with the closest allowed one
    (`epocs (did you mean epochs?)`)."""
    return [key + did_you_mean(key, sorted(allowed)) for key in sorted(set(values) - allowed)]
