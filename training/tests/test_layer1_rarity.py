"""Layer 1's `l1.v4` identity block (`training.features.layer1_rarity`) on real events: what
training saw, counted by `fit`, and what it never saw, as the featurizer and a model's spec read
it (the per-event path is pinned to the batch path in `test_event_fast_path.py`)."""

from __future__ import annotations

import numpy as np
import pytest

from training.features.encoding import FeatureSpec
from training.features.layer1 import Layer1Featurizer
from training.features.layer1_rarity import FIELDS, PAIRS, PAIRS_AT, RARITY_AT, WIDTH
from training.tests.conftest import collect


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory):
    from training.demo.generator import write_demo_file

    path = write_demo_file(tmp_path_factory.mktemp("rarity") / "demo.json", n_events=3_000,
                           seed=5)
    events, _ = collect("json_file", path)
    return events.sort_by("timestamp")


def _dim(name: str, what: int = 2) -> int:
    """A field's dim: 0 present, 1 rarity, 2 never seen."""
    return RARITY_AT + WIDTH * FIELDS.index(name) + what


def test_values_training_never_saw_set_their_never_seen_dims(demo_events):
    train, test = demo_events.slice(0, 2_000), demo_events.slice(2_000)
    featurizer = Layer1Featurizer(layout="l1.v4").fit(train)
    seen_lines = set(train["command_line"].drop_null().to_pylist())
    vectors = featurizer.featurize(test)
    lines = test["command_line"].to_pylist()
    has = np.array([v is not None for v in lines])
    unseen = np.array([v is not None and v not in seen_lines for v in lines])
    assert unseen.any() and (has & ~unseen).any()
    np.testing.assert_array_equal(vectors[:, _dim("command_line", 0)], has)
    np.testing.assert_array_equal(vectors[:, _dim("command_line")], unseen)
    assert (vectors[unseen, _dim("command_line", 1)] == 1.0).all()
    assert (vectors[has & ~unseen, _dim("command_line", 1)] < 1.0).all()
    # Every training value was counted: nothing in training reads as never seen.
    trained = featurizer.featurize(train)
    never = [_dim(f) for f in FIELDS] + list(range(PAIRS_AT, PAIRS_AT + len(PAIRS)))
    assert not trained[:, never].any()
    # A host and account never seen together, though each was (lateral movement's sign).
    pair = PAIRS.index(("host", "user"))
    seen_pairs = set(zip(train["host"].to_pylist(), train["user"].to_pylist()))
    fresh = np.array([h is not None and u is not None and (h, u) not in seen_pairs
                      for h, u in zip(test["host"].to_pylist(), test["user"].to_pylist())])
    np.testing.assert_array_equal(vectors[:, PAIRS_AT + pair], fresh)
    each_seen = (vectors[:, _dim("host")] == 0) & (vectors[:, _dim("user")] == 0)
    assert (fresh & each_seen).any()


def test_the_counts_travel_in_the_spec_as_digests_and_score_the_same(demo_events):
    train = demo_events.slice(0, 2_000)
    featurizer = Layer1Featurizer(layout="l1.v4").fit(train)
    text = featurizer.spec.to_json()
    line = train["command_line"].drop_null()[0].as_py()
    assert line not in text  # no command line is written into a model file
    rebuilt = Layer1Featurizer.from_spec(FeatureSpec.from_json(text))
    np.testing.assert_array_equal(rebuilt.featurize(demo_events),
                                  featurizer.featurize(demo_events))
    # Unfitted (nothing counted), l1.v4 is l1.v3, hash buckets included, and says so.
    bare = Layer1Featurizer(layout="l1.v4")
    assert bare.spec.version == "l1.v3" and featurizer.spec.version == "l1.v4"
    np.testing.assert_array_equal(bare.featurize(demo_events),
                                  Layer1Featurizer(layout="l1.v3").featurize(demo_events))
