"""`training.evaluation.training_span`: the time span a model's training data covered, on
hand-made times; and the sidecar's `data_span` checked when a model is read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.artifacts.model_files import load_model, read_sidecar, save_model
from training.detectors.vae import Layer1VAE
from training.errors import CheckpointError, SchemaError
from training.evaluation.result import EvaluationMetrics
from training.evaluation.training_span import DataSpan, iso, note_overlap

NAT = np.datetime64("NaT", "us")


def t(text: str) -> np.datetime64:
    return np.datetime64(text, "us")


SPAN = DataSpan({"train": (t("2024-03-04T00:00:00"), t("2024-03-05T12:00:00.000250")),
                 "val": (t("2024-03-05T12:00:01"), t("2024-03-06T00:00:00"))})
RECORDED = {"train": {"first": "2024-03-04T00:00:00Z", "last": "2024-03-05T12:00:00.000250Z"},
            "val": {"first": "2024-03-05T12:00:01Z", "last": "2024-03-06T00:00:00Z"}}


def test_iso_keeps_microseconds_only_when_there_are_any():
    assert iso(t("2024-03-04T10:01:02")) == "2024-03-04T10:01:02Z"
    assert iso(t("2024-03-04T10:01:02.000003")) == "2024-03-04T10:01:02.000003Z"
    assert iso(np.datetime64("2024-03-04T10:01:02", "s")) == "2024-03-04T10:01:02Z"


def test_of_takes_each_parts_first_and_last_known_time():
    times = {"train": np.array([t("2024-03-05T12:00:00.000250"), NAT, t("2024-03-04")]),
             "val": np.array(["2024-03-06", "2024-03-05T12:00:01"], "datetime64[s]")}
    assert DataSpan.of(times).to_dict() == RECORDED


def test_of_leaves_out_parts_without_times_and_is_none_without_any():
    assert DataSpan.of({"train": np.array([t("2024-03-04")]), "val": None}).to_dict() == \
        {"train": {"first": "2024-03-04T00:00:00Z", "last": "2024-03-04T00:00:00Z"}}
    assert DataSpan.of({"train": np.array([NAT, NAT]), "val": np.array([], "datetime64[us]")}) \
        is None


def test_from_dict_reads_what_to_dict_wrote():
    assert DataSpan.from_dict(RECORDED) == SPAN
    assert DataSpan.from_dict(None) is None and DataSpan.from_dict({}) is None
    one = {"train": {"first": "2024-03-04T00:00:00Z", "last": "2024-03-04T00:00:00Z"}}
    assert DataSpan.from_dict(one).to_dict() == one  # first == last: one time


@pytest.mark.parametrize("data, message", [
    ([1, 2], "data_span must be an object of parts, got [1, 2]"),
    ({"test": RECORDED["val"]}, "data_span has the part 'test'; parts are train, val"),
    ({"val": {"first": "2024-03-05T12:00:01Z"}},
     "data_span.val must be {\"first\": ..., \"last\": ...}, got {'first': "
     "'2024-03-05T12:00:01Z'}"),
    ({"val": {"first": "2024-03-05T12:00:01", "last": "2024-03-06T00:00:00Z"}},
     "data_span.val.first must be a UTC time as text (\"2013-08-20T10:01:02Z\"), got "
     "'2024-03-05T12:00:01'"),
    ({"val": {"first": "2024-03-05T12:00:01Z", "last": "2024-13-45T00:00:00Z"}},
     "data_span.val.last is not a time: '2024-13-45T00:00:00Z'"),
    ({"val": {"first": "2024-03-05T12:00:01Z", "last": "todayZ"}},  # numpy reads "today"
     "data_span.val.last must be a UTC time as text (\"2013-08-20T10:01:02Z\"), got 'todayZ'"),
    # numpy reads these (the year wraps; a zone with a warning): refused (review)
    ({"val": {"first": "99999999999-01-01Z", "last": "2024-03-06T00:00:00Z"}},
     "data_span.val.first is not a time: '99999999999-01-01Z'"),
    ({"val": {"first": "2024-03-05T12:00:01+05:00Z", "last": "2024-03-06T00:00:00Z"}},
     "data_span.val.first is not a time: '2024-03-05T12:00:01+05:00Z'"),
    ({"val": {"first": "2024-03-06T00:00:00.000001Z", "last": "2024-03-06T00:00:00Z"}},
     "data_span.val: first 2024-03-06T00:00:00.000001Z is after last 2024-03-06T00:00:00Z"),
])
def test_from_dict_refuses_another_shape_naming_the_field(data, message):
    with pytest.raises(SchemaError) as raised:
        DataSpan.from_dict(data)
    assert str(raised.value) == message


def test_overlap_counts_within_the_whole_span_its_edges_included():
    times = np.array([t("2024-03-03T23:59:59.999999"), t("2024-03-04"),  # before, first
                      t("2024-03-05T12:00:00.5"),  # between the parts: within
                      t("2024-03-06"), t("2024-03-06T00:00:00.000001"), NAT])  # last, after
    found = SPAN.overlap(times)
    assert found == {"units": 6, "within": 3, "before": 1, "after": 1, "no_time": 1,
                     "first": "2024-03-04T00:00:00Z", "last": "2024-03-06T00:00:00Z",
                     "span": RECORDED}


def test_window_units_cover_their_window_in_the_span_and_in_the_overlap():
    """A window or bucket unit's time is its start: the span ended at the last training
    window's start, so --after-training kept that window's later events, and they were warned
    of anyway (review: layers 2 and 3)."""
    minute = {"train": np.array([t("2024-03-04T10:00"), t("2024-03-04T10:05")])}
    span = DataSpan.of(minute, duration_s=60.0)
    assert span.to_dict() == {"train": {"first": "2024-03-04T10:00:00Z",
                                        "last": "2024-03-04T10:05:59.999999Z"}}
    times = np.array([t("2024-03-04T09:59:00"),  # ends just before the span: before
                      t("2024-03-04T09:59:30"),  # reaches into it: within
                      t("2024-03-04T10:05:00"), t("2024-03-04T10:06:00")])  # within, after
    found = span.overlap(times, duration_s=60.0)
    assert (found["before"], found["within"], found["after"]) == (1, 2, 1)
    assert span.overlap(times)["before"] == 2  # as instants, the first two lie before


def test_note_overlap_warns_only_of_units_within(caplog):
    metrics = EvaluationMetrics(notes=["other"])
    times = np.array([t("2024-03-05"), t("2024-03-07")])
    found = note_overlap(metrics, SPAN, times, "m 1.0.0", "event", ", or --x")
    message = ("1 of 2 events fall within the time of the data m 1.0.0 was trained and "
               "validated on (2024-03-04T00:00:00Z to 2024-03-06T00:00:00Z): the figures may "
               "include what it learnt from; evaluate on events after 2024-03-06T00:00:00Z "
               "(logs recorded later, or --x)")
    assert found == metrics.training_overlap and found["unit"] == "event"
    assert metrics.notes == [f"TRAINING DATA: {message}", "other"]
    assert [r.getMessage() for r in caplog.records] == [message]
    later = EvaluationMetrics()
    assert note_overlap(later, SPAN, times[1:], "m", "event")["within"] == 0
    assert later.notes == [] and len(caplog.records) == 1


def test_note_overlap_does_nothing_without_a_span_or_times():
    metrics = EvaluationMetrics()
    assert note_overlap(metrics, None, np.array([t("2024-03-05")]), "m", "event") is None
    assert note_overlap(metrics, SPAN, np.array([NAT]), "m", "event") is None
    assert note_overlap(metrics, SPAN, np.array([], "datetime64[us]"), "m", "event") is None
    assert metrics.training_overlap is None and metrics.notes == []


def test_a_sidecar_keeps_its_span_and_refuses_a_damaged_one(tmp_path):
    path = tmp_path / "m.pt"
    save_model(Layer1VAE(input_dim=8), path, extra={"data_span": RECORDED})
    assert load_model(path).data_span == SPAN
    side = path.with_suffix(".json")
    sidecar = json.loads(side.read_text())
    sidecar["data_span"] = {"val": {"first": "2024-03-06T00:00:01Z",
                                    "last": "2024-03-06T00:00:00Z"}}
    side.write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match=r"data_span\.val: first 2024-03-06T00:00:01Z is "
                                              r"after last 2024-03-06T00:00:00Z; the sidecar "
                                              r"was damaged or edited"):
        read_sidecar(path)
    for absent in (None, "delete"):
        if absent is None:
            sidecar["data_span"] = None
        else:
            del sidecar["data_span"]
        side.write_text(json.dumps(sidecar))
        assert load_model(path).data_span is None
