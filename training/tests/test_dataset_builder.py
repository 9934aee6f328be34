"""DatasetBuilder: every strategy on hand-made data, split files, the seed README step 3."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest
import torch

from training.datasets.builder import (
    DatasetBuilder, DatasetSplit, PyTorchDatasetWrapper, SplitStrategy, load_splits, make_loader,
)
from training.demo.generator import generate_demo_events
from training.errors import ConfigError, SchemaError, SourceError
from training.features.layer1 import Layer1Featurizer
from training.data_preprocessor import DataPreprocessor, LayerType

SEED_STEP_3 = """
from training.dataset_builder import DatasetBuilder, SplitStrategy
import numpy as np

# Load preprocessed data
data = np.load('training/data/preprocessed/layer1_samples.npz')
builder = DatasetBuilder(
    features=data['features'],
    labels=data['labels'],
    sample_ids=data['sample_ids'].tolist()
)

# Create stratified splits
splits = builder.create_splits(strategy=SplitStrategy.STRATIFIED)
builder.save_splits(splits, prefix='layer1')
print('Splits created: train, val, test')
"""


def _ids(splits: dict) -> list[set]:
    return [set(s.sample_ids.tolist()) for s in splits.values()]


def _disjoint_and_complete(splits: dict, n: int) -> None:
    ids = _ids(splits)
    assert sum(len(s) for s in ids) == sum(len(s) for s in splits.values())  # no repeats
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert len(set().union(*ids)) == n


def hand_made(n: int = 100, classes: int = 3, seed: int = 0) -> DatasetBuilder:
    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1)
    return DatasetBuilder(rng.random((n, 4)).astype(np.float32), rng.integers(0, classes, n),
                          [f"s{i}" for i in range(n)],
                          timestamps=[start + dt.timedelta(hours=i) for i in range(n)])


# ---- the original system's expectations ---------------------------------------------------

def test_original_stratified_expectations():
    builder = hand_made()
    splits = builder.create_splits(SplitStrategy.STRATIFIED)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 100
    for name, ratio in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        assert abs(sizes[name] / 100 - ratio) <= 0.05
    whole = builder.dataset.get_class_distribution()
    for name, split in splits.items():
        for label, count in split.get_class_distribution().items():
            assert abs(count - whole[label] * len(split) / 100) <= 1.5


def test_original_temporal_expectations():
    splits = hand_made().create_splits(SplitStrategy.TEMPORAL)
    t = {k: v.columns["timestamps"] for k, v in splits.items()}
    assert t["train"].max() < t["val"].min() and t["val"].max() < t["test"].min()


# ---- exact expectations for every strategy -------------------------------------------------

@pytest.mark.parametrize("n", [7, 10, 33, 101])
@pytest.mark.parametrize("ratios", [(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.8, 0.2, 0.0)])
def test_random_sizes_within_one_row(n, ratios):
    splits = hand_made(n).create_splits(SplitStrategy.RANDOM, *ratios)
    for split, ratio in zip(splits.values(), ratios):
        assert abs(len(split) - n * ratio) < 1
    _disjoint_and_complete(splits, n)


def test_stratified_shares_within_one_row_per_class():
    # 3 classes of 10, 7 and 2 rows, plus 4 unknown rows (-1): a class of its own.
    labels = np.array([0] * 10 + [1] * 7 + [2] * 2 + [-1] * 4)
    builder = DatasetBuilder(np.zeros((23, 2)), labels, [str(i) for i in range(23)])
    splits = builder.create_splits(SplitStrategy.STRATIFIED, 0.6, 0.2, 0.2)
    assert [len(s) for s in splits.values()] in ([14, 5, 4], [14, 4, 5])
    for split, ratio in zip(splits.values(), (0.6, 0.2, 0.2)):
        shares = split.get_class_distribution()
        for label, size in ((0, 10), (1, 7), (2, 2), (-1, 4)):
            assert abs(shares.get(label, 0) - size * ratio) < 1
    _disjoint_and_complete(splits, 23)


def test_temporal_split_cuts_at_time_order_and_never_splits_a_timestamp():
    # 10 rows out of order; d and e share the timestamp where the 7/1/2 cut would fall, and
    # go together to the nearer side (on a tie of distances, the later split).
    times = np.array([9, 0, 5, 6, 6, 1, 2, 3, 4, 8]) * np.timedelta64(1, "h") + np.datetime64("2024-01-01")
    builder = DatasetBuilder(np.zeros((10, 1)), np.zeros(10, int), list("abcdefghij"), timestamps=times)
    splits = builder.create_splits(SplitStrategy.TEMPORAL, 0.7, 0.1, 0.2)
    assert splits["train"].sample_ids.tolist() == ["b", "f", "g", "h", "i", "c"]
    assert splits["val"].sample_ids.tolist() == ["d", "e"]
    assert splits["test"].sample_ids.tolist() == ["j", "a"]


def test_temporal_split_with_gap_leaves_the_gap_out():
    times = np.arange(20) * np.timedelta64(1, "h") + np.datetime64("2024-01-01")
    builder = DatasetBuilder(np.zeros((20, 1)), np.zeros(20, int), np.arange(20), timestamps=times)
    splits = builder.create_splits(SplitStrategy.TEMPORAL, 0.5, 0.25, 0.25, gap=dt.timedelta(hours=2))
    assert splits["train"].indices.tolist() == list(range(10))
    assert splits["val"].indices.tolist() == [11, 12, 13, 14]  # 10 is within 2 h of 9
    assert splits["test"].indices.tolist() == [16, 17, 18, 19]


def test_temporal_split_at_cut_times_reproduces_the_split_they_came_from():
    from training.datasets.strategies import Ratios
    from training.datasets.temporal import cut_times, temporal_split

    times = np.array([9, 0, 5, 6, 6, 1, 2, 3, 4, 8]) * np.timedelta64(1, "h") + np.datetime64("2024-01-01")
    parts = temporal_split(times, Ratios(0.7, 0.1, 0.2))
    at = cut_times(times, parts)
    assert at == (np.datetime64("2024-01-01T06"), np.datetime64("2024-01-01T08"))
    again = temporal_split(times, Ratios(0.7, 0.1, 0.2), at=at)
    assert {k: v.tolist() for k, v in again.items()} == {k: v.tolist() for k, v in parts.items()}
    # Other rows (windows of those events, say) cut at the same times, whatever their count.
    windows = np.array([0, 5, 5, 6, 7, 9]) * np.timedelta64(1, "h") + np.datetime64("2024-01-01")
    builder = DatasetBuilder(np.zeros((6, 1)), np.zeros(6, int), list("uvwxyz"), timestamps=windows)
    splits = builder.create_splits(SplitStrategy.TEMPORAL, 0.7, 0.1, 0.2, at=at)
    assert [s.sample_ids.tolist() for s in splits.values()] == [["u", "v", "w"], ["x", "y"], ["z"]]
    with pytest.raises(ConfigError, match="not both"):
        builder.create_splits(SplitStrategy.TEMPORAL, 0.7, 0.1, 0.2, at=at, train_until=0.5)
    with pytest.raises(ConfigError, match="TEMPORAL only"):
        builder.create_splits(SplitStrategy.RANDOM, 0.7, 0.1, 0.2, at=at)
    with pytest.raises(ConfigError, match="in order"):
        builder.create_splits(SplitStrategy.TEMPORAL, 0.7, 0.1, 0.2, at=at[::-1])
    with pytest.raises(ConfigError, match="both be times or both numbers"):
        builder.create_splits(SplitStrategy.TEMPORAL, 0.7, 0.1, 0.2, at=(5.0, 8.0))
    # An empty val part starts where test does: no row is in two parts.
    no_val = temporal_split(times, Ratios(0.8, 0.0, 0.2))
    assert cut_times(times, no_val) == (np.datetime64("2024-01-01T08"),) * 2
    again = temporal_split(times, Ratios(0.8, 0.0, 0.2), at=cut_times(times, no_val))
    assert {k: v.tolist() for k, v in again.items()} == {k: v.tolist() for k, v in no_val.items()}


def test_temporal_split_at_cut_times_that_empty_a_part_says_so():
    from training.errors import TooFewError

    windows = np.array([0, 1, 2]) * np.timedelta64(1, "h") + np.datetime64("2024-01-01")
    builder = DatasetBuilder(np.zeros((3, 1)), np.zeros(3, int), list("abc"), timestamps=windows)
    with pytest.raises(TooFewError, match="leaves val empty"):
        builder.create_splits(SplitStrategy.TEMPORAL, 0.6, 0.2, 0.2,
                              at=(np.datetime64("2024-01-01T03"), None))


def test_group_split_never_splits_a_group():
    groups = np.repeat([f"host{i}" for i in range(10)], 10)
    builder = DatasetBuilder(np.zeros((100, 1)), np.zeros(100, int), np.arange(100), groups=groups)
    splits = builder.create_splits(SplitStrategy.GROUP)
    hosts = [set(s.columns["groups"].tolist()) for s in splits.values()]
    assert not (hosts[0] & hosts[1]) and not (hosts[0] & hosts[2]) and not (hosts[1] & hosts[2])
    assert [len(s) for s in splits.values()] == [70, 10, 20]  # 85 lies between 80 and 90
    _disjoint_and_complete(splits, 100)


def test_group_split_of_single_row_groups_follows_the_ratios():
    builder = DatasetBuilder(np.zeros((40, 1)), np.zeros(40, int), np.arange(40), groups=np.arange(40))
    assert [len(s) for s in builder.create_splits("group").values()] == [28, 6, 6]


def test_k_fold_covers_every_row_once_as_validation():
    builder = hand_made(60)
    folds = builder.create_splits(SplitStrategy.K_FOLD, n_folds=4, test_ratio=0.2)
    test = set(folds["test"].indices.tolist())
    assert len(test) == 12 and len(folds["train"]) == len(folds["val"]) == 4
    seen = np.concatenate([v.indices for v in folds["val"]])
    assert sorted(seen.tolist()) == sorted(set(range(60)) - test)
    for train, val in zip(folds["train"], folds["val"]):
        assert not set(train.indices.tolist()) & set(val.indices.tolist())
        assert len(train) + len(val) == 48


# ---- training-split options ----------------------------------------------------------------

def test_semi_supervised_train_holds_only_benign_rows():
    labels = np.array([0] * 40 + [1] * 20 + [-1] * 40)
    builder = DatasetBuilder(np.zeros((100, 2)), labels, np.arange(100))
    splits = builder.create_splits(SplitStrategy.STRATIFIED, semi_supervised=True)
    assert splits["train"].get_class_distribution() == {0: 28}
    assert splits["val"].get_class_distribution() == {-1: 6, 0: 6, 1: 3}
    assert splits["test"].get_class_distribution() == {-1: 6, 0: 6, 1: 3}


def test_balancing_undersamples_train_only():
    labels = np.array([0] * 80 + [1] * 20 + [-1] * 10)
    builder = DatasetBuilder(np.zeros((110, 2)), labels, np.arange(110))
    splits = builder.create_splits(SplitStrategy.STRATIFIED, balance_classes=True)
    assert splits["train"].get_class_distribution() == {-1: 7, 0: 14, 1: 14}
    assert splits["test"].get_class_distribution() in ({-1: 2, 0: 12, 1: 3}, {-1: 1, 0: 12, 1: 3},
                                                       {-1: 2, 0: 12, 1: 2}, {-1: 1, 0: 13, 1: 3})


def test_balanced_temporal_train_keeps_time_order():
    times = np.arange(40)[::-1] * np.timedelta64(1, "m") + np.datetime64("2024-01-01")
    labels = np.array([0, 0, 0, 1, -1] * 8)
    builder = DatasetBuilder(np.zeros((40, 1)), labels, np.arange(40), timestamps=times)
    train = builder.create_splits("temporal", 0.5, 0.25, 0.25, balance_classes=True)["train"]
    assert train.get_class_distribution() == {-1: 4, 0: 4, 1: 4}
    assert np.all(np.diff(train.columns["timestamps"]) > np.timedelta64(0))


def test_stratify_on_another_column_and_exclusive_options():
    attack = np.array(["", "scan", "brute"] * 10)
    builder = DatasetBuilder(np.zeros((30, 1)), np.zeros(30, int), np.arange(30),
                             columns={"attack_type": attack})
    splits = builder.create_splits("stratified", 0.6, 0.2, 0.2, stratify_by="attack_type")
    for split, share in zip(splits.values(), (6, 2, 2)):
        assert sorted(split.columns["attack_type"].tolist()) == sorted(["", "scan", "brute"] * share)
    with pytest.raises(ConfigError, match="STRATIFIED needs a 'host' column"):
        builder.create_splits("stratified", stratify_by="host")
    with pytest.raises(ConfigError, match="exclude each other"):
        builder.create_splits("random", balance_classes=True, semi_supervised=True)
    with pytest.raises(ConfigError, match="gap applies to SplitStrategy.TEMPORAL only, not RANDOM"):
        builder.create_splits("random", gap=dt.timedelta(hours=1))


def test_timestamps_with_time_zones_become_utc():
    east = dt.timezone(dt.timedelta(hours=2))
    stamps = [dt.datetime(2024, 1, 1, 2, 0, tzinfo=east), dt.datetime(2024, 1, 1, 0, 30)]
    builder = DatasetBuilder(np.zeros((2, 1)), [0, 1], ["a", "b"], timestamps=stamps)
    assert builder.dataset.columns["timestamps"].tolist() == [dt.datetime(2024, 1, 1, 0, 0),
                                                              dt.datetime(2024, 1, 1, 0, 30)]


def test_augmentation_adds_clipped_noisy_copies():
    features = np.array([[0.0, 1.0], [0.5, 0.999]], dtype=np.float32)
    builder = DatasetBuilder(features, np.array([0, 1]), ["a", "b"])
    train = builder.dataset.take(np.arange(2), "train")
    grown = builder.augment_data(train, augmentation_factor=3, noise_std=0.1)
    assert grown.sample_ids.tolist() == ["a", "b", "a#aug1", "b#aug1", "a#aug2", "b#aug2"]
    assert grown.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert np.array_equal(grown.features[:2], features)
    assert grown.features.min() >= 0.0 and grown.features.max() <= 1.0
    assert not np.array_equal(grown.features[2:4], features)
    with pytest.raises(ConfigError, match="training splits only"):
        builder.augment_data(train.take(np.arange(2), "test"))


def test_random_choices_come_from_the_seed_only():
    np.random.seed(1)
    first = hand_made().create_splits("random")["val"].indices
    np.random.seed(2)
    assert np.array_equal(first, hand_made().create_splits("random")["val"].indices)
    other = DatasetBuilder(hand_made().features, hand_made().labels, np.arange(100), random_seed=7)
    assert not np.array_equal(first, other.create_splits("random")["val"].indices)


# ---- strategies that cannot work raise -----------------------------------------------------

def test_impossible_strategies_raise_clear_errors():
    labels = np.array([0] * 9 + [1])
    builder = DatasetBuilder(np.zeros((10, 1)), labels, np.arange(10), groups=[0] * 5 + [1] * 5)
    with pytest.raises(ConfigError, match="class\\(es\\) \\[1\\] have 1"):
        builder.create_splits(SplitStrategy.STRATIFIED)
    with pytest.raises(ConfigError, match="at least 3 groups, got 2"):
        builder.create_splits(SplitStrategy.GROUP)
    with pytest.raises(ConfigError, match="TEMPORAL needs timestamps"):
        builder.create_splits(SplitStrategy.TEMPORAL)
    rare = DatasetBuilder(np.zeros((10, 1)), [0] * 7 + [1] * 3, np.arange(10))
    with pytest.raises(ConfigError, match="at least 4 rows of every class; class\\(es\\) \\[1\\]"):
        rare.create_splits(SplitStrategy.K_FOLD, n_folds=4)
    unknown = DatasetBuilder(np.zeros((10, 1)), np.full(10, -1), np.arange(10))
    with pytest.raises(ConfigError, match="semi_supervised needs benign rows"):
        unknown.create_splits(SplitStrategy.RANDOM, semi_supervised=True)
    with pytest.raises(ConfigError, match="must be 1, got 0.7 \\+ 0.2 \\+ 0.2"):
        builder.create_splits("random", 0.7, 0.2, 0.2)
    with pytest.raises(ConfigError, match="strategy must be one of"):
        builder.create_splits("shuffle")
    with pytest.raises(ConfigError, match=r"got 'temporl' \(did you mean temporal\?\)$"):
        builder.create_splits("temporl")
    with pytest.raises(ConfigError, match="labels must have one value per row"):
        DatasetBuilder(np.zeros((3, 1)), [0, 1], ["a", "b", "c"])
    with pytest.raises(SchemaError, match="whole numbers"):
        DatasetBuilder(np.zeros((2, 1)), [0.5, 1.0], ["a", "b"])
    # Missing times stop a temporal split only (NSL-KDD has none): the others work.
    untimed = DatasetBuilder(np.zeros((6, 1)), [0, 1] * 3, list("abcdef"), timestamps=np.array(
        ["2024-01-01", "NaT", "2024-01-02", "NaT", "2024-01-03", "2024-01-04"], "datetime64[us]"))
    with pytest.raises(ConfigError, match="2 missing value.*or use a split that needs no time "
                                          "\\(random, stratified, group\\)"):
        untimed.create_splits(SplitStrategy.TEMPORAL, 0.5, 0.25, 0.25)
    assert len(untimed.create_splits(SplitStrategy.STRATIFIED, 0.34, 0.33, 0.33)["test"]) == 2


# ---- files ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    """A real preprocessed layer-1 file of 600 demo events (all columns, FeatureSpec)."""
    folder = tmp_path_factory.mktemp("work")
    events = generate_demo_events(600, seed=3)["events"]
    arrays = DataPreprocessor(output_dir=folder / "training/data/preprocessed").featurize(
        events, LayerType.LAYER1_SENSORY)
    arrays.save(folder / "training/data/preprocessed/layer1_samples.npz")
    return folder, arrays


def test_seed_readme_step_3_works_as_written(preprocessed):
    folder, arrays = preprocessed
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        exec(SEED_STEP_3, {})
        splits = load_splits("training/data/splits", "layer1")
        with np.load("training/data/splits/layer1_test.npz") as test:
            assert test["features"].shape[1] == 128 and test["labels"].dtype == np.int8
    finally:
        os.chdir(cwd)
    assert sum(len(s) for s in splits.values()) == len(arrays)
    train = splits["train"]
    assert train.spec is None  # the seed passes no spec: the file saves what it was given
    rows = train.indices
    assert np.array_equal(train.features, arrays.arrays["features"][rows])
    assert train.sample_ids.tolist() == arrays.arrays["sample_ids"][rows].tolist()


def test_from_file_keeps_every_column_and_the_spec(preprocessed, tmp_path):
    folder, arrays = preprocessed
    builder = DatasetBuilder.from_file(folder / "training/data/preprocessed/layer1_samples.npz",
                                       output_dir=tmp_path)
    splits = builder.create_splits(SplitStrategy.GROUP)
    paths = builder.save_splits(splits, "layer1")
    assert sorted(p.name for p in paths.values()) == ["layer1_test.npz", "layer1_train.npz",
                                                      "layer1_val.npz"]
    entity = arrays.arrays["entity"]
    for name, path in paths.items():
        split = DatasetSplit.load(path)
        assert split.name == name and split.spec == Layer1Featurizer().spec
        assert split.layer == "layer1_sensory" and split.features.dtype == np.float32
        assert sorted(split.columns) == ["attack_type", "entity", "timestamps"]
        for key in ("attack_type", "entity", "timestamps"):
            assert np.array_equal(split.columns[key], arrays.arrays[key][split.indices])
        assert np.array_equal(split.labels, arrays.arrays["labels"][split.indices])
    hosts = [set(entity[DatasetSplit.load(p).indices].tolist()) for p in paths.values()]
    assert not (hosts[0] & hosts[1]) and not (hosts[1] & hosts[2]) and not (hosts[0] & hosts[2])
    assert builder.get_statistics()["num_groups"] == len(set(entity.tolist()))


def test_k_fold_splits_save_and_load(tmp_path):
    builder = DatasetBuilder(np.eye(20, 3), np.arange(20) % 2, np.arange(20), output_dir=tmp_path)
    folds = builder.create_splits(SplitStrategy.K_FOLD, n_folds=2, test_ratio=0.2)
    builder.save_splits(folds, "cv")
    loaded = load_splits(tmp_path, "cv")
    assert [s.name for s in loaded["val"]] == ["fold0_val", "fold1_val"]
    assert [s.indices.tolist() for s in loaded["train"]] == [s.indices.tolist() for s in folds["train"]]
    assert loaded["test"].indices.tolist() == folds["test"].indices.tolist()


def test_bad_split_files_are_refused(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        DatasetSplit.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "x.npz", X=np.zeros(3))
    with pytest.raises(SchemaError, match="no features or labels"):
        DatasetSplit.load(tmp_path / "x.npz")
    np.savez(tmp_path / "p.npz", features=np.zeros(2), labels=np.array(["a", "b"], dtype=object))
    with pytest.raises(SourceError, match="not a readable"):
        DatasetSplit.load(tmp_path / "p.npz")
    with pytest.raises(SourceError, match="no cv_train.npz"):
        load_splits(tmp_path, "cv")


# ---- PyTorch ------------------------------------------------------------------------------

def test_pytorch_dataset_and_loader():
    builder = DatasetBuilder(np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10) % 3 - 1,
                             np.arange(10))
    split = builder.dataset
    item = PyTorchDatasetWrapper(split)[5]
    assert item[0].tolist() == [10.0, 11.0] and item[1].item() == 1 and item[1].dtype == torch.int64
    batches = list(make_loader(split, batch_size=4, shuffle=True, seed=1))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    seen = torch.cat([b[0][:, 0] for b in batches]).tolist()
    assert sorted(seen) == list(range(0, 20, 2)) and seen != sorted(seen)
    again = list(make_loader(split, batch_size=4, shuffle=True, seed=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    plain = torch.utils.data.DataLoader(PyTorchDatasetWrapper(split), batch_size=5)
    assert [tuple(x.shape) for x, _ in plain] == [(5, 2), (5, 2)]


# ---- layer-2 graphs and layer-3 windows ------------------------------------------------------

@pytest.fixture(scope="module")
def windows_and_graphs():
    """Graphs and windows of 1,500 demo events (about a day of 5-minute windows)."""
    from training.collection.event_dicts import events_table
    from training.features.layer2 import Layer2GraphBuilder
    from training.features.layer3 import Layer3WindowBuilder

    events = events_table(generate_demo_events(1_500, seed=4)["events"])
    return Layer2GraphBuilder().featurize(events), Layer3WindowBuilder(history=4).featurize(events)


def _same_graph(left, right) -> None:
    assert set(left.keys()) == set(right.keys())
    for key in left.keys():
        a, b = left[key], right[key]
        assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else np.array_equal(a, b)), key


def test_subsets_of_graphs_and_windows_are_exact(windows_and_graphs):
    graphs, windows = windows_and_graphs
    picked = [7, 2, len(graphs) - 1]
    part = graphs.subset(picked)
    assert len(part) == 3
    for k, i in enumerate(picked):
        _same_graph(part[k], graphs[i])
    rows = [5, 0, len(windows) - 1]
    sub = windows.subset(rows)
    for k, i in enumerate(rows):
        lo, hi = windows.event_ptr[i], windows.event_ptr[i + 1]
        mine = slice(sub.event_ptr[k], sub.event_ptr[k + 1])
        assert np.array_equal(sub.X[k], windows.X[i]) and sub.time[k] == windows.time[i]
        assert sub.entity[k] == windows.entity[i] and sub.attack_type[k] == windows.attack_type[i]
        assert np.array_equal(sub.event_row[mine], windows.event_row[lo:hi])
        assert sub.event_id[mine].to_pylist() == windows.event_id[lo:hi].to_pylist()


def test_graphs_split_by_time_with_a_gap_and_reload(windows_and_graphs, tmp_path):
    from training.datasets.window_splits import save_window_splits, split_layer2
    from training.features.layer2_graphs import Layer2Graphs

    graphs, _ = windows_and_graphs
    plain = split_layer2(graphs, SplitStrategy.TEMPORAL)
    splits = split_layer2(graphs, SplitStrategy.TEMPORAL, gap=dt.timedelta(minutes=10))
    starts = {k: v.arrays["window_start"] for k, v in splits.items()}
    before = {k: v.arrays["window_start"] for k, v in plain.items()}
    ten = 600_000_000
    assert np.array_equal(starts["train"], before["train"])
    assert starts["val"].tolist() == [s for s in before["val"] if s >= before["train"].max() + ten]
    assert starts["test"].tolist() == [s for s in before["test"] if s >= starts["val"].max() + ten]
    paths = save_window_splits(splits, tmp_path, "layer2")
    test = Layer2Graphs.load(paths["test"], spec=graphs.spec)
    for k in range(len(test)):
        _same_graph(test[k], splits["test"][k])
    with pytest.raises(ConfigError, match="cannot be split by entity"):
        split_layer2(graphs, SplitStrategy.GROUP)


def test_layer3_windows_split_by_entity_and_time(windows_and_graphs, tmp_path):
    from training.datasets.window_splits import save_window_splits, split_layer3
    from training.features.layer3_windows import Layer3Windows

    _, windows = windows_and_graphs
    by_host = split_layer3(windows, SplitStrategy.GROUP)
    hosts = [set(v.entity.to_pylist()) for v in by_host.values()]
    assert not (hosts[0] & hosts[1]) and not (hosts[0] & hosts[2]) and not (hosts[1] & hosts[2])
    assert sum(len(v) for v in by_host.values()) == len(windows)
    by_time = split_layer3(windows, "temporal", semi_supervised=True)
    assert set(by_time["train"].labels.tolist()) == {0}
    assert by_time["train"].time.max() < by_time["val"].time.min()
    assert by_time["val"].time.max() < by_time["test"].time.min()
    paths = save_window_splits(by_time, tmp_path, "layer3")
    val = Layer3Windows.load(paths["val"], spec=windows.spec)
    assert np.array_equal(val.X, by_time["val"].X) and np.array_equal(val.labels, by_time["val"].labels)
    assert val.event_id.to_pylist() == by_time["val"].event_id.to_pylist()


def test_load_splits_refuses_files_of_two_cuts(tmp_path):
    builder = hand_made()
    builder.output_dir = tmp_path
    builder.save_splits(builder.create_splits(SplitStrategy.RANDOM), "a")
    first = (tmp_path / "a_train.npz").read_bytes()
    builder.save_splits(builder.create_splits(SplitStrategy.RANDOM), "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_test.npz", "a_train.npz", "a_val.npz"]
    (tmp_path / "a_train.npz").write_bytes(first)  # what a crash between two renames leaves
    with pytest.raises(SchemaError, match="different cuts"):
        load_splits(tmp_path, "a")


def test_a_group_split_far_below_a_share_is_named(datasets, caplog):
    """IoT-23 20-1 and 21-1 by source address: two addresses hold 6,491 of the 6,495 flows, so
    a whole-group cut left val 2 rows (a threshold set on 2 scores), silently (trial Q)."""
    import pyarrow as pa

    from training.data_collection import DataCollector, DataSource
    from training.datasets.plan import plan_splits

    table = DataCollector([DataSource(n, "csv_file", {"path": str(
        datasets / f"iot23/CTU-Malware-Capture-{n}-labeled.csv")}) for n in ("20-1", "21-1")],
        progress=False).collect_table()
    groups = np.asarray(table["source_ip"].cast(pa.string()).to_pylist())
    rows = plan_splits("group", np.zeros(len(groups), int), groups=groups, seed=42)
    assert len(rows["val"]) == 2
    assert ("group split: val has 2 of 6,495 rows where its share 15% would be 974: 5 groups, "
            "too few or too unequal to cut by") in caplog.text
