"""ModelEvaluator: scores from the model, a threshold from validation data or the checkpoint
sidecar (never the test set), classifiers, latency, and the three reports."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from training.artifacts.model_files import load_model, save_model
from training.detectors.base import Detector, register_detector
from training.errors import ConfigError, SchemaError
from training.evaluation.evaluator import ModelEvaluator
from training.evaluation.report_text import format_report
from training.evaluation.score_metrics import evaluate_probabilities, evaluate_scores
from training.tests.test_metrics import ATTACKS, LABELS, SCORES, TIMES


@register_detector
class FirstFeatureScorer(Detector):
    """anomaly_score = first feature - offset: every score is known exactly."""

    def __init__(self, *, offset: float = 0.0) -> None:
        super().__init__(offset=offset)
        self.offset = nn.Parameter(torch.tensor(float(offset)))

    def training_step(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch[:, 0] - self.offset).pow(2).mean()

    def anomaly_score(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[:, 0] - self.offset


class Identity(nn.Module):
    """A 'classifier' whose outputs are its inputs (logits or probabilities given as features)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def fixture_features() -> np.ndarray:
    """(10, 3) float32 features whose first column is the hand-computed fixture's scores."""
    x = np.zeros((10, 3), np.float32)
    x[:, 0] = SCORES
    return x


def evaluate(model, threshold=None, **kwargs):
    return ModelEvaluator(model, fixture_features(), LABELS, threshold=threshold,
                          **kwargs).evaluate(benchmark_latency=False)


def test_model_scores_give_the_scores_level_results():
    m = evaluate(FirstFeatureScorer(), threshold=0.5, attack_types=ATTACKS, timestamps=TIMES)
    expected = evaluate_scores(SCORES.astype(np.float32), LABELS, ATTACKS, TIMES, 0.5)
    assert m.model_name == "FirstFeatureScorer" and m.model_kind == "anomaly"
    assert {**m.to_dict(), "model_name": None} == expected.to_dict()
    assert (m.roc_auc, m.confusion_matrix, m.threshold_source) == (0.875, [[4, 2], [0, 4]], "argument")


def test_threshold_from_validation_data_not_the_test_set():
    # Validation rows = the fixture with labels: 4 threats are too few for best F1 (5 of each
    # class), so the benign 99th percentile, 0.8 (see test_metrics); with a fifth, best F1.
    m = evaluate(FirstFeatureScorer(), val_features=fixture_features(), val_labels=LABELS)
    assert m.threshold == pytest.approx(0.8)
    assert m.threshold_source == "validation data (benign 0.99 quantile of 10 validation scores)"
    more = np.r_[fixture_features(), fixture_features()[:1]]  # row 0 again: a threat at 0.95
    m = evaluate(FirstFeatureScorer(), val_features=more, val_labels=np.r_[LABELS, 1])
    assert m.threshold_source == ("validation data: labeled: threshold with the best F1 on "
                                  "validation units (6 benign, 5 threat)")
    # Unlabeled validation rows count as benign: 99th percentile of the 10 scores, index
    # 0.99 * 9 = 8.91 rounded up to 9 -> 0.95 (so only the top score alerts).
    m = evaluate(FirstFeatureScorer(), val_features=fixture_features())
    assert m.threshold == pytest.approx(0.95) and m.confusion_matrix == [[6, 0], [3, 1]]
    assert m.threshold_source == "validation data (benign 0.99 quantile of 10 validation scores)"


def test_threshold_from_the_checkpoint_sidecar(tmp_path):
    save_model(FirstFeatureScorer(offset=0.25), tmp_path / "m.pt", threshold=0.5)
    loaded = load_model(tmp_path / "m.pt")
    m = evaluate(loaded)
    # Scores shifted by the offset: 0.7 (T) 0.55 (T) 0.55 (B) 0.45 (T) 0.25 ...; >= 0.5 alerts
    # on rows 0-2: TP 2, FP 1, FN 2 (rows 3 and 5), TN 5.
    assert (m.threshold, m.threshold_source) == (0.5, "checkpoint sidecar")
    assert m.confusion_matrix == [[5, 1], [2, 2]]
    # An explicit threshold wins over the sidecar's.
    assert evaluate(loaded, threshold=0.35).threshold_source == "argument"


def test_a_sidecars_best_f1_threshold_counts_both_classes_it_was_chosen_on(tmp_path):
    """A calibration's n_scores counts its benign reference scores (6): the evaluator said
    "best F1 of 6 validation scores" for a threshold chosen on 10; it says the rule, as `train`
    and the registry do."""
    from training.evaluation.calibration import Calibration

    calibration = Calibration.fit(SCORES, LABELS, rule="best-f1")  # 0.5 (see test_metrics)
    save_model(FirstFeatureScorer(), tmp_path / "m.pt", threshold=calibration.threshold,
               extra={"threshold": calibration.to_threshold().to_dict(),
                      "calibration": calibration.to_dict()})
    m = evaluate(load_model(tmp_path / "m.pt"))
    assert (m.threshold, m.threshold_source) == (0.5, "checkpoint sidecar: labeled: threshold "
                                                 "with the best F1 on validation units (6 "
                                                 "benign, 4 threat)")


def test_without_a_threshold_the_report_says_where_one_comes_from():
    m = evaluate(FirstFeatureScorer())
    assert m.threshold is None and m.confusion_matrix is None and m.roc_auc == 0.875
    text = format_report(m)
    assert "ROC-AUC" in text and "0.8750" in text and "Detection at FPR <= 1%" in text
    assert "load_model" in text and "val_features" in text and "At threshold" not in text


def test_classifier_from_logits_and_from_probabilities():
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.8, 0.1],
                  [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.1, 0.6, 0.3]])
    y = np.array([0, 0, 1, 1, 2, 2])
    expected = evaluate_probabilities(p, y, ["a", "b", "c"]).to_dict()
    # Probabilities are used as they are; logits go through a softmax, whose rounding splits
    # the 0.3 tie of class c (rows 3 and 5), so only the tie-free figures are compared there.
    for features, keys in ((p, ("precision", "recall", "f1_score", "support", "roc_auc", "pr_auc")),
                           (np.log(p) + 3.0, ("precision", "recall", "f1_score", "support"))):
        m = ModelEvaluator(Identity(), features, y, class_names=["a", "b", "c"]).evaluate(
            benchmark_latency=False)
        got = m.to_dict()
        assert got["confusion_matrix"] == expected["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 1, 1]]
        for name, row in expected["per_class_metrics"].items():
            assert [got["per_class_metrics"][name][k] for k in keys] == pytest.approx([row[k] for k in keys])
        assert (m.model_kind, m.f1_score) == ("classifier", pytest.approx(expected["f1_score"]))


def test_classifier_report_has_one_vs_rest_curves(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    logits = rng.normal(size=(90, 3)) + 2.0 * np.eye(3)[y]
    m = ModelEvaluator(Identity(), logits, y).evaluate(benchmark_latency=False)
    assert m.class_names == ["class_0", "class_1", "class_2"] and m.detection_at_fpr == {}
    html = ModelEvaluator(Identity(), logits, y).save_report(m, tmp_path / "c")["html"].read_text()
    assert re.findall(r'<img alt="([^"]+)"', html) == ["ROC curve", "Precision-recall curves",
                                                       "Confusion matrix"]
    assert "At the predicted class" in html and "(macro)" in format_report(m)


def test_latency_is_measured_and_the_model_mode_restored():
    model = FirstFeatureScorer().train()
    m = ModelEvaluator(model, np.repeat(fixture_features(), 20, axis=0),
                       np.tile(LABELS, 20)).evaluate()
    lat = m.latency
    assert model.training  # evaluate() scored in eval mode and put the mode back
    assert lat["device"] == "cpu" and lat["num_threads"] == 1
    single = lat["single_event_us"]
    assert 0 < single["p50"] <= single["p95"] <= single["p99"]
    assert [b["batch_size"] for b in lat["batch"]] == [64, 1024, 8192]
    assert m.avg_inference_time_ms == pytest.approx(single["mean"] / 1e3)
    assert m.throughput_samples_per_sec == max(b["events_per_sec"] for b in lat["batch"])
    assert "Latency (model only, cpu, torch threads 1)" in format_report(m)


def test_save_report_writes_json_html_and_text(tmp_path):
    m = evaluate(FirstFeatureScorer(), threshold=0.5, attack_types=ATTACKS, timestamps=TIMES,
                 training_history=[{"epoch": 1, "train_loss": 2.0, "val_loss": 3.0,
                                    "val_metrics": {"recon": 1.5}}])
    evaluator = ModelEvaluator(FirstFeatureScorer(), fixture_features(), LABELS)
    paths = evaluator.save_report(m, tmp_path / "reports" / "layer1.json")
    assert sorted(p.name for p in paths.values()) == ["layer1.html", "layer1.json", "layer1.txt"]
    assert json.loads(paths["json"].read_text()) == m.to_dict()
    assert m.training_history == [{"epoch": 1, "train_loss": 2.0, "val_loss": 3.0, "recon": 1.5}]
    assert paths["text"].read_text() == format_report(m)
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")


def test_bad_arguments_are_refused():
    x = fixture_features()
    with pytest.raises(SchemaError, match="test_labels has 9 rows, test_features has 10"):
        ModelEvaluator(FirstFeatureScorer(), x, LABELS[:9])
    with pytest.raises(ConfigError, match="model must be a torch nn.Module"):
        ModelEvaluator(object(), x, LABELS)
    with pytest.raises(ConfigError, match="batch_size must be >= 1, got 0"):
        ModelEvaluator(FirstFeatureScorer(), x, LABELS, batch_size=0)
    with pytest.raises(ConfigError, match="val_labels was given without val_features"):
        ModelEvaluator(FirstFeatureScorer(), x, LABELS, val_labels=LABELS)

    class PerFeature(FirstFeatureScorer):
        def anomaly_score(self, batch):
            return batch  # (n, 3): not one score per row

    with pytest.raises(SchemaError, match=r"returned shape \(10, 3\) for 10 rows"):
        ModelEvaluator(PerFeature(), x, LABELS).evaluate(benchmark_latency=False)
    with pytest.raises(SchemaError, match="a classifier must return"):
        ModelEvaluator(Identity(), x[:, :1], LABELS).evaluate(benchmark_latency=False)


# The seed README's step 5, verbatim (../shared/seed/README.md).
SEED_STEP_5 = """
from training.evaluator import ModelEvaluator
from training.train_layer1_vae import Layer1VAE
import numpy as np
import torch

# Load test data
test_data = np.load('training/data/splits/layer1_test.npz')

# Load model
model = Layer1VAE()
model.load_state_dict(torch.load('training/checkpoints/layer1_vae_best.pt'))

# Evaluate
evaluator = ModelEvaluator(
    model=model,
    test_features=test_data['features'],
    test_labels=test_data['labels']
)
metrics = evaluator.evaluate()
evaluator.print_report(metrics)
"""


def test_seed_readme_step_5_prints_a_meaningful_report(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from training import train_layer1_vae
    from training.datasets.builder import DatasetBuilder, SplitStrategy
    from training.demo.generator import generate_demo_events
    from training.data_preprocessor import DataPreprocessor, LayerType

    seed_readme = Path(__file__).resolve().parents[3] / "shared" / "seed" / "README.md"
    if seed_readme.exists():
        assert SEED_STEP_5 in seed_readme.read_text()
    # Steps 2-4 (as corrected in the project README) on demo events, in a fresh working dir.
    monkeypatch.chdir(tmp_path)
    events = generate_demo_events(n_events=3000, seed=7)["events"]
    prep = DataPreprocessor()
    prep.save_samples(prep.featurize(events, LayerType.LAYER1_SENSORY), "layer1_samples")
    builder = DatasetBuilder.from_file("training/data/preprocessed/layer1_samples.npz")
    builder.save_splits(builder.create_splits(strategy=SplitStrategy.STRATIFIED), prefix="layer1")
    assert train_layer1_vae.main([
        "--train_data", "training/data/splits/layer1_train.npz",
        "--val_data", "training/data/splits/layer1_val.npz",
        "--num_epochs", "3", "--batch_size", "32", "--no_tensorboard"]) == 0

    capsys.readouterr()
    exec(compile(SEED_STEP_5, "seed-README-step-5", "exec"), {})  # in this process: no 2nd torch import
    out = capsys.readouterr().out
    assert out.startswith("Evaluation of Layer1VAE (anomaly): 450 rows with a known label")
    auc = float(re.search(r"ROC-AUC\s+(\d\.\d{4})", out).group(1))
    assert 0.0 <= auc <= 1.0
    assert re.search(r"Detection at FPR <= 1%\s+\d+\.\d\d%", out)
    assert "Latency (model only, cpu, torch threads 1)" in out and "single event  p50" in out
    # A bare state_dict carries no threshold: the report says so and where one comes from.
    assert "At threshold" not in out and "checkpoint sidecar" in out and "val_features" in out
