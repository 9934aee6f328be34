"""training.collection.schema: the canonical schema, label maps and field maps."""

from __future__ import annotations

import pyarrow as pa
import pytest

from training.collection.schema import (
    CANONICAL_FIELDS, CANONICAL_SCHEMA, LABEL_FIELDS, LabelMap, resolve_field_map,
)
from training.errors import ConfigError

# The table in training/events.py's docstring, written out again.
DOCUMENTED = [
    ("timestamp", pa.timestamp("us", tz="UTC")),
    ("event_id", pa.string()),
    ("source", pa.string()),
    ("event_type", pa.string()),
    ("source_ip", pa.string()),
    ("source_port", pa.int32()),
    ("dest_ip", pa.string()),
    ("dest_port", pa.int32()),
    ("protocol", pa.string()),
    ("service", pa.string()),
    ("bytes_sent", pa.int64()),
    ("bytes_received", pa.int64()),
    ("packets_sent", pa.int64()),
    ("packets_received", pa.int64()),
    ("duration", pa.float64()),
    ("conn_state", pa.string()),
    ("direction", pa.string()),
    ("community_id", pa.string()),
    ("severity", pa.float32()),
    ("user", pa.string()),
    ("host", pa.string()),
    ("process", pa.string()),
    ("parent_process", pa.string()),
    ("command_line", pa.string()),
    ("file_path", pa.string()),
    ("file_hash", pa.string()),
    ("domain", pa.string()),
    ("label", pa.string()),
    ("is_threat", pa.int8()),
    ("attack_type", pa.string()),
]
MAPPABLE = [name for name, _ in DOCUMENTED if name != "source"]


def test_canonical_schema_order_and_types_are_as_documented():
    assert [(f.name, f.type) for f in CANONICAL_SCHEMA] == DOCUMENTED
    assert CANONICAL_FIELDS == tuple(name for name, _ in DOCUMENTED)
    assert LABEL_FIELDS == ("label", "is_threat", "attack_type")


# -- LabelMap --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("benign", 0), ("BENIGN", 0), ("  Benign \t", 0), ("normal", 0), ("Normal", 0), ("0", 0),
    ("background", -1), ("Background", -1), ("unknown", -1), ("UNKNOWN", -1), ("", -1), ("   ", -1),
    ("-", -1), (" - ", -1), ("(empty)", -1), ("(EMPTY)", -1), (None, -1),
    ("Malicious", 1), ("neptune", 1), ("C&C-Torii", 1), ("1", 1), ("benign traffic", 1),
])
def test_label_map_defaults(text, expected):
    assert LabelMap().classify_one(text) == expected


def test_label_map_overrides_win_and_ignore_case_and_blanks():
    labels = LabelMap({"Background": 0, " Not Suspicious Traffic ": 0, "benign": 1, "weird": -1})
    assert labels.classify_one("background") == 0
    assert labels.classify_one("NOT SUSPICIOUS TRAFFIC") == 0
    assert labels.classify_one("benign") == 1
    assert labels.classify_one(" Weird ") == -1
    assert labels.classify_one("normal") == 0  # defaults not overridden still apply
    assert labels.classify_one("unknown") == -1
    assert labels.overrides == {"Background": 0, " Not Suspicious Traffic ": 0, "benign": 1,
                                "weird": -1}


@pytest.mark.parametrize("entry", [{"x": 2}, {"x": -2}, {"x": True}, {"x": "1"}, {"x": None},
                                   {1: 0}])
def test_label_map_invalid_entries_raise_naming_the_entry(entry):
    ((text, value),) = entry.items()
    with pytest.raises(ConfigError) as info:
        LabelMap(entry)
    assert isinstance(info.value, ValueError)
    assert f"{text!r}: {value!r}" in str(info.value)
    assert "-1, 0 or 1" in str(info.value)


def test_classify_chunked_input_with_nulls():
    labels = pa.chunked_array([pa.array(["benign", None]), pa.array(["x", "Background", "normal"])])
    classes = LabelMap().classify(labels)
    assert classes.dtype == "int8"
    assert classes.tolist() == [0, -1, 1, -1, 0]


def test_classify_all_null_empty_and_dictionary_input():
    labels = LabelMap({"x": 0})
    assert labels.classify(pa.array([None, None], pa.string())).tolist() == [-1, -1]
    assert labels.classify(pa.nulls(2)).tolist() == [-1, -1]
    assert labels.classify(pa.chunked_array([], pa.string())).tolist() == []
    assert labels.classify(pa.array(["benign", "X", "y"]).dictionary_encode()).tolist() == [0, 0, 1]


# -- resolve_field_map -----------------------------------------------------------------------

def test_resolve_field_map_merges_the_override_over_the_base():
    base = {"source_ip": "a", "dest_ip": ["b", "c"], "user": ("u1", "u2")}
    override = {"source_ip": ["z", "y"], "host": "h"}
    assert resolve_field_map(base, override) == {
        "source_ip": ("z", "y"), "dest_ip": ("b", "c"), "user": ("u1", "u2"), "host": ("h",),
    }
    assert resolve_field_map(base) == {"source_ip": ("a",), "dest_ip": ("b", "c"),
                                       "user": ("u1", "u2")}
    assert base == {"source_ip": "a", "dest_ip": ["b", "c"], "user": ("u1", "u2")}  # not mutated


def test_a_reversed_field_map_raises_listing_the_canonical_fields():
    with pytest.raises(ConfigError) as info:
        resolve_field_map({}, {"src_ip": "source_ip"})
    message = str(info.value)
    assert "'src_ip' is not a canonical field" in message
    assert "from canonical name to source field name" in message
    listed = message.split("Canonical fields: ")[1].split(", ")
    assert listed == MAPPABLE


def test_source_is_filled_by_the_collector_and_cannot_be_mapped():
    with pytest.raises(ConfigError, match="'source' is not a canonical field"):
        resolve_field_map({}, {"source": "sensor"})
    with pytest.raises(ConfigError, match="'source' is not a canonical field"):
        resolve_field_map({"source": "sensor"})


@pytest.mark.parametrize("names", ["", ["a", ""], ["a", 3], 5, None])
def test_field_map_values_must_be_names(names):
    with pytest.raises(ConfigError) as info:
        resolve_field_map({}, {"user": names})
    assert str(info.value) == (
        f"field map entry 'user' must be a field name or a list of names, got {names!r}")
