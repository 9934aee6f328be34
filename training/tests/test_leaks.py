"""Label leaks (`training.datasets.leaks`): a field whose few values tell the threats from the
benign units is named, with its counts, by the pipeline's validation (on the events) and by
`validate` (on a feature file); the edges of the stated criterion hold."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from training.datasets.leaks import CARRIED, MIN_CLASS, event_leaks, separation
from training.datasets.validator import DataValidator
from training.features.dropped_fields import without_fields
from training.tests.conftest import collect

FOLDER_011 = "stratosphere/011-zeek-mixed/data"
CONN_011 = f"{FOLDER_011}/conn.log.labeled"


@pytest.fixture(scope="module")
def conn_011(datasets):
    return collect("zeek_logs", datasets / CONN_011)[0]


def _labels(threats: int, benign: int) -> np.ndarray:
    return np.array([True] * threats + [False] * benign)


def test_separation_keeps_to_its_stated_edges():
    # a value 99.5% threat is pure, 99% is not
    pure = separation(np.array([0] * 200 + [1] * 200), _labels(199, 1 + 200))
    assert pure is not None and pure[1].tolist() == [199, 0] and pure[2].tolist() == [1, 200]
    assert separation(np.array([0] * 200 + [1] * 200), _labels(198, 2 + 200)) is None
    # 95% of each class in pure values is enough, 94% is not (the rest in a mixed value)
    codes = np.array([0] * 95 + [2] * 5 + [1] * 95 + [2] * 5)
    assert separation(codes, _labels(100, 100)) is not None
    codes = np.array([0] * 94 + [2] * 6 + [1] * 94 + [2] * 6)
    assert separation(codes, _labels(100, 100)) is None
    # too few units of a class, or too many values, are not judged
    few = MIN_CLASS - 1
    assert separation(np.array([0] * few + [1] * 100), _labels(few, 100)) is None
    assert separation(np.arange(200) % 17, np.arange(200) % 17 < 8) is None


def test_direction_and_local_orig_give_the_labels_away_on_stratosphere_011(conn_011):
    leaks = event_leaks(conn_011)
    assert [leak.message for leak in leaks] == [
        "field direction separates the labels: inbound holds 3,951 of 3,951 threats and 0 of "
        "4,771 benign events - a leak? Drop it with --drop-field direction",
        "field local_orig separates the labels: false holds 3,951 of 3,951 threats and 0 of "
        "4,771 benign events - a leak? Drop it with --drop-field local_orig"]
    assert event_leaks(without_fields(conn_011, ["direction", "local_orig"])) == []


def test_a_field_only_conn_events_carry_is_judged_among_them_on_the_011_folder(datasets):
    # dns, ssl, http, sip and weird events have no direction: 2,842 of the 7,613 benign events
    events = collect("zeek_logs", datasets / FOLDER_011)[0]
    assert [leak.message for leak in event_leaks(events)] == [
        "field direction separates the labels among the 8,722 labeled events that have it: "
        "inbound holds 3,951 of 3,951 threats and 0 of 4,771 benign events - a leak? Drop it "
        "with --drop-field direction",
        "field local_orig separates the labels among the 8,722 labeled events that have it: "
        "false holds 3,951 of 3,951 threats and 0 of 4,771 benign events - a leak? Drop it "
        "with --drop-field local_orig"]


@pytest.mark.parametrize("carriers, judged", [(int(CARRIED * 100), True),
                                              (int(CARRIED * 100) - 1, False)])
def test_the_events_carrying_a_field_must_be_a_share_of_each_class(carriers, judged):
    # 100 threats and 100 benign events; the first `carriers` of each have the field, pure
    flag = [["a"] * carriers + [None] * (100 - carriers),
            ["b"] * carriers + [None] * (100 - carriers)]
    events = pa.table({"flag": flag[0] + flag[1], "is_threat": [1] * 100 + [0] * 100})
    found = event_leaks(events)
    assert [(leak.among, leak.threats, leak.benign) for leak in found] == (
        [(2 * carriers, carriers, 0)] if judged else [])


def test_validate_names_a_feature_that_separates_the_labels(conn_011, tmp_path, capsys):
    from training.cli.main import main
    from training.layers.layer1 import Layer1

    path = Layer1().featurize(conn_011).save(tmp_path / "layer1_samples.npz")
    assert main(["validate", "--data", str(path)]) == 0  # a warning, not an error
    assert ("WARNING label_leak: feature direction=inbound separates the labels: 1 holds 3,951 "
            "of 3,951 threats and 0 of 4,771 benign rows - a leak? Drop it with --drop-field "
            "direction") in capsys.readouterr().out


def test_the_check_is_a_validator_option_and_needs_labels():
    features = np.concatenate([np.zeros((50, 1)), np.ones((50, 1))])
    labels = np.array([0] * 50 + [1] * 50)
    found = DataValidator(features, labels, feature_names=["flag"]).validate()
    assert [i.message for i in found.issues if i.check_name == "label_leak"] == [
        "feature flag separates the labels: 1 holds 50 of 50 threats and 0 of 50 benign rows - "
        "a leak? Drop it with --drop-field flag"]
    # plain arrays' columns are no event field: no --drop-field advice (trial Q)
    unnamed = DataValidator(features, labels).validate()
    assert [i.message for i in unnamed.issues if i.check_name == "label_leak"] == [
        "feature feature_0 separates the labels: 1 holds 50 of 50 threats and 0 of 50 benign "
        "rows - a leak?"]
    quiet = DataValidator(features, labels, feature_names=["flag"]).validate(check_leaks=False)
    assert "label_leak" not in quiet.issue_names()
    assert "label_leak" not in DataValidator(features).validate().issue_names()
