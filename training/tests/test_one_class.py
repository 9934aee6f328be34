"""`split` warns of a validation or test part with one class of a labeled data set."""

from __future__ import annotations

import numpy as np

from training.cli.main import main
from training.datasets.split import DatasetSplit


def _capture(tmp_path, labels: np.ndarray) -> str:
    """A features file of len(labels) rows an hour apart, labeled in time order."""
    n = len(labels)
    times = np.datetime64("2024-01-01") + np.arange(n) * np.timedelta64(1, "h")
    whole = DatasetSplit("all", np.zeros((n, 2), np.float32), labels.astype(np.int8),
                         np.array([f"e{i}" for i in range(n)]), np.arange(n, dtype=np.int64),
                         {"timestamps": times})
    return str(whole.save(tmp_path / "samples.npz"))


def test_a_temporal_split_with_every_threat_in_train_warns(tmp_path, capsys):
    # 20 rows: the 4 threats come first, so a 70/15/15 cut in time leaves val and test benign
    data = _capture(tmp_path, np.array([1] * 4 + [0] * 16))
    assert main(["split", "--data", data, "--strategy", "temporal", "--output",
                 str(tmp_path / "splits")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: val has one class (3 benign, 0 threat rows; the threats are in train): the "
        "threshold's best F1 and tuning's pr_auc need both; --strategy stratified spreads both "
        "classes over every part",
        "warning: test has one class (3 benign, 0 threat rows; the threats are in train): "
        "ROC-AUC, PR-AUC and detection rates need both; --strategy stratified spreads both "
        "classes over every part"]
    # stratified: both classes everywhere, no warning; benign-only data: nothing to say
    assert main(["split", "--data", data, "--output", str(tmp_path / "s2")]) == 0
    assert capsys.readouterr().err == ""
    benign = _capture(tmp_path, np.zeros(20))
    assert main(["split", "--data", benign, "--strategy", "temporal", "--output",
                 str(tmp_path / "s3")]) == 0
    assert capsys.readouterr().err == ""
