"""Where the layers are found: one registry of `Layer` classes, by canonical name or alias.

`register_layer` adds a class (its name and aliases must be free); `get_layer(name)` finds one
by any of its names; `layer_for_spec(spec)` rebuilds the layer a model was trained with. The
package's own layers register themselves when their module is imported, which `get_layer`
does on first use (so naming a layer needs no import of its torch-geometric).
"""

from __future__ import annotations

from training.errors import ConfigError, NotSupportedError, SchemaError
from training.features.encoding import FeatureSpec
from training.layers.base import Layer

LAYERS: dict[str, type[Layer]] = {}
BUILTIN = ("layer1", "layer2", "layer3")  # the package's own layers, one module each
# The original design's layers without an implementation yet.
PLANNED = {"layer4": ("layer4_tactical", "4"), "layer5": ("layer5_strategic", "5")}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make `cls` a layer every stage can use, under its name and aliases."""
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ConfigError(f"register_layer takes a Layer subclass, got {cls!r}")
    for key in (cls.name, *cls.aliases):
        known = _find(key)
        if known is not None and known is not cls:
            raise ConfigError(f"layer name {key!r} is taken by {known.__name__}")
    LAYERS[cls.name] = cls
    return cls


def get_layer(name: str) -> type[Layer]:
    """The layer class `name` (canonical name or alias) refers to.

    Raises:
        NotSupportedError: a planned layer of the original design (4 or 5).
        ConfigError: an unknown name; the message lists the valid ones.
    """
    _import_builtin_layers()
    key = str(getattr(name, "value", name))
    cls = _find(key)
    if cls is not None:
        return cls
    for planned, aliases in PLANNED.items():
        if key in (planned, *aliases):
            raise NotSupportedError(f"{planned} is not available: this release has layers "
                                    f"{', '.join(sorted(LAYERS))}")
    raise ConfigError(f"unknown layer {key!r}; use one of {', '.join(layer_names())}")


def default_layers() -> list[str]:
    """The package's own layers: what the pipeline runs unless told otherwise."""
    return list(BUILTIN)


def layer_names() -> list[str]:
    """Every registered layer's canonical name, sorted."""
    _import_builtin_layers()
    return sorted(LAYERS)


def layer_for_spec(spec: FeatureSpec | None, where: str = "the model") -> Layer:
    """The layer (fitted state included) that made `spec`, the FeatureSpec of the model
    `where` names (its file, or its name and version) in every error.

    Raises:
        SchemaError: no spec, or one no registered layer can reproduce (another layout, a
            damaged fitted state).
    """
    if spec is None:
        raise SchemaError(f"{where} has no FeatureSpec, so its input transform cannot be "
                          "reproduced; save or register a model with its feature_spec")
    try:
        cls = get_layer(spec.layer)
    except ConfigError:
        raise SchemaError(f"{where}'s FeatureSpec is for {spec.layer!r}; known layers: "
                          f"{', '.join(layer_names())}") from None
    try:
        return cls.from_spec(spec)
    except SchemaError as exc:  # the featurizer's words, which cannot know whose spec it is
        raise SchemaError(f"{where}: its input transform cannot be reproduced ({exc})"
                          ) from exc


def _find(key: str) -> type[Layer] | None:
    for cls in LAYERS.values():
        if key == cls.name or key in cls.aliases:
            return cls
    return None


def _import_builtin_layers() -> None:
    # The package's own layers register themselves on import; import them on first use, so
    # that naming a layer works without importing its module (and its torch-geometric) first.
    import importlib

    for module in BUILTIN:
        importlib.import_module(f"training.layers.{module}")
