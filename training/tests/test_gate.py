"""The promotion gate's labeled rule on a real capture's labels (IoT-23 42-1, 4,426 flows).

The scores are built from the labels so that each case has a known truth: a champion at
ROC-AUC 0.999 (a few benign flows ranked among the threats), a challenger that fixes those
mistakes (clearly better), one that only adds noise far below the ranking's resolution (within
noise), and challengers no better than chance or upside down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data_collection import DataCollector, DataSource
from training.evaluation.bootstrap import paired_metrics
from training.evaluation.metrics import roc_auc
from training.retraining.gate import (
    DETECTIONS_LOST, MIN_CLASS_UNITS, TOO_FEW_LABELS, evaluate_model, has_both_labels,
    label_shortfall, labeled_decision,
)

CAPTURE = Path("../shared/datasets/iot23/CTU-Malware-Capture-42-1-labeled.csv")


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    if not CAPTURE.exists():
        pytest.skip(f"{CAPTURE} is absent (the shared datasets are not on this machine)")
    table = DataCollector([DataSource("iot", "csv_file", {"path": str(CAPTURE)})],
                          progress=False).collect_table()
    return table["is_threat"].to_numpy().astype(np.int64)


@pytest.fixture(scope="module")
def champion(labels) -> np.ndarray:
    """Threats above benign flows, but for 10 benign flows ranked at the threats' level."""
    rng = np.random.default_rng(7)
    scores = labels + rng.uniform(0, 0.5, len(labels))
    benign = np.flatnonzero(labels == 0)
    scores[rng.choice(benign, 10, replace=False)] += 1.0
    return scores


def test_the_champion_is_at_0999(labels, champion):
    known = labels >= 0
    assert roc_auc(champion[known], labels[known] == 1) == pytest.approx(0.999, abs=6e-4)


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
def test_a_challenger_clearly_better_than_a_0999_champion_is_promoted(labels, champion, metric):
    challenger = labels + np.random.default_rng(8).uniform(0, 0.5, len(labels))  # no mistakes
    decision = labeled_decision(metric, labels, challenger, champion, improvement=0.02)
    assert decision.deploy and decision.rule == f"paired bootstrap of {metric}"
    assert decision.figures["error_reduction_ci"][0] >= 0.02
    assert "95% interval" in decision.reason


def test_a_better_ranking_with_a_threshold_above_its_threats_is_not_promoted(labels, champion):
    """Trial R: a retrain's threshold sat on one extreme benign validation flow, above every
    test threat; its PR-AUC beat the champion's and it was promoted, to alert on none. At the
    models' own thresholds the challenger must not miss significantly more threats."""
    challenger = labels + np.random.default_rng(8).uniform(0, 0.5, len(labels))  # no mistakes
    champion_threshold = 1.0  # the champion alerts on every threat (and 10 benign flows)
    for threshold, deploy in ((1.0, True), (1.6, False), (1.45, False)):
        decision = labeled_decision("pr_auc", labels, challenger, champion, improvement=0.02,
                                    thresholds=(threshold, champion_threshold))
        assert decision.deploy is deploy, decision.reason
        found = decision.figures["detections"]["threats"]  # recorded either way
        assert found["champion"] == found["units"] == 6
        if not deploy:
            assert decision.rule == DETECTIONS_LOST and found["challenger"] < 6
            assert "the pr_auc bootstrap alone would promote it" in decision.reason
    # Two of the 6 threats missed, none gained: no significant loss (p = 0.25).
    threats = np.flatnonzero(labels == 1)
    few = challenger.copy()
    few[threats[:2]] = 0.9  # below the threshold of 1.0, still above every benign flow
    decision = labeled_decision("pr_auc", labels, few, champion, improvement=0.02,
                                thresholds=(1.0, champion_threshold))
    assert decision.deploy and decision.figures["challenger_pr_auc"] == 1.0, decision.reason
    # A champion whose low threshold alerts on a fifth of the benign flows (review): the
    # trade of its detections for quiet is for a person, and the reason gives both counts.
    traded = labeled_decision("pr_auc", labels, challenger, champion, improvement=0.02,
                              thresholds=(1.6, 0.4))
    benign = traded.figures["detections"]["benign_alerts"]
    assert not traded.deploy and benign["champion"] > 500 > benign["challenger"] == 0
    assert (f"on the 4,420 benign test units it alerts 0 times, the champion "
            f"{benign['champion']:,}: whether those detections are worth the false alerts is "
            "for a person to judge") in traded.reason
    # A champion without a threshold (registered without one) skips the check.
    unknown = labeled_decision("pr_auc", labels, challenger, champion, improvement=0.02,
                               thresholds=(1.6, None))
    assert unknown.deploy and "detections" not in unknown.figures


def test_the_reason_says_whether_the_error_is_higher_or_lower(labels, champion):
    """The sign is in the word: a worse challenger's error is "higher", never "-x% lower"."""
    rng = np.random.default_rng(11)
    more_mistakes = champion.copy()  # 20 more benign flows ranked at the threats' level
    more_mistakes[rng.choice(np.flatnonzero(champion < 1), 20, replace=False)] += 1.0
    worse = labeled_decision("roc_auc", labels, more_mistakes, champion, improvement=0.02)
    low, high = worse.figures["error_reduction_ci"]
    assert not worse.deploy and worse.relative_improvement < 0 and high < 0
    assert worse.reason == (
        "paired bootstrap of roc_auc: challenger roc_auc 0.9975 vs champion 0.9995: the error "
        "1 - roc_auc is 407.7% higher; the 95% interval of its reduction is [-2050.0%, "
        "-124.1%], and its lower end must be at least +2.0%")
    assert f"[{low:+.1%}, {high:+.1%}]" in worse.reason
    gain = labeled_decision("roc_auc", labels, champion, more_mistakes, improvement=0.02)
    assert gain.deploy and ("the error 1 - roc_auc is 80.3% lower; the 95% interval of its "
                            "reduction is [+58.8%, +97.2%]") in gain.reason


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
def test_a_challenger_within_noise_of_the_champion_is_not(labels, champion, metric):
    challenger = champion + np.random.default_rng(9).normal(0, 1e-4, len(labels))
    decision = labeled_decision(metric, labels, challenger, champion, improvement=0.02)
    low, high = decision.figures["error_reduction_ci"]
    assert not decision.deploy and low < 0.02 and low <= 0 <= high


@pytest.mark.parametrize("make", ["random", "inverted"])
def test_a_challenger_below_the_floor_is_never_promoted(labels, make):
    rng = np.random.default_rng(10)
    scores = rng.uniform(size=len(labels)) if make == "random" else -labels + rng.uniform(
        0, 0.5, len(labels))
    for champion in (None, scores - 1.0):  # with or without a production model to replace
        decision = labeled_decision("pr_auc", labels, scores, champion, improvement=0.0)
        assert not decision.deploy and decision.rule.startswith("labeled floor")


def test_a_configured_floor_adds_to_the_statistical_ones(labels, champion):
    decision = labeled_decision("pr_auc", labels, champion, None, improvement=0.02, floor=0.999)
    assert not decision.deploy and decision.rule == "configured floor"
    assert labeled_decision("pr_auc", labels, champion, None, improvement=0.02).deploy


def test_the_bootstrap_is_paired(labels, champion):
    (point,), (draws,) = paired_metrics([champion], labels, resamples=300, seed=1)
    known = labels >= 0
    assert point["roc_auc"] == pytest.approx(roc_auc(champion[known], labels[known] == 1))
    _, (first, second) = paired_metrics([champion, champion], labels, resamples=300, seed=1)
    assert np.array_equal(first["pr_auc"], second["pr_auc"])  # the same resamples for both
    assert np.array_equal(first["roc_auc"], draws["roc_auc"])


def _keep_threats(labels: np.ndarray, n: int) -> np.ndarray:
    """The labels with all but the first `n` threats unknown (-1)."""
    kept = labels.copy()
    kept[np.flatnonzero(labels == 1)[n:]] = -1
    return kept


def test_a_single_threat_is_too_few_to_judge(labels, champion):
    """One threat: every resample draws it, so the interval was a point ([1, 1] when it ranks
    first). The gate refuses to judge and says why, with the counts."""
    one = _keep_threats(labels, 1)
    challenger = one + np.random.default_rng(8).uniform(0, 0.5, len(one))  # ranks it first
    for against in (champion, None):
        decision = labeled_decision("pr_auc", one, challenger, against, improvement=0.02)
        assert not decision.deploy and decision.rule == TOO_FEW_LABELS
        assert decision.reason == (
            "too few labels to judge: 1 threat and 4,420 benign test units: the labeled gate "
            "needs at least 5 of each for its 95% intervals; judge without labels (comparison "
            "metric val_loss) or on a test split with more threats")
        assert decision.figures == {"threat_units": 1, "benign_units": 4420,
                                    "min_class_units": MIN_CLASS_UNITS}


def test_the_labeled_rule_needs_five_units_of_each_class(labels):
    assert MIN_CLASS_UNITS == 5
    assert not has_both_labels(_keep_threats(labels, 4))
    assert has_both_labels(_keep_threats(labels, 5))
    few_benign = np.r_[np.ones(20), np.zeros(4)].astype(np.int64)
    assert label_shortfall(few_benign) == ("20 threat and 4 benign test units: the labeled "
                                           "gate needs at least 5 of each for its 95% intervals")
    assert label_shortfall(np.r_[few_benign, 0]) is None


def test_no_unit_the_loss_counts_is_no_val_loss_never_a_zero(datasets):
    """Layer 3 trained on benign windows counts only benign-labeled ones in its loss: on the
    unlabeled zat capture there are none, and the loss is absent, not 0 (a 0 was recorded as a
    challenger's val_loss and won compare_models)."""
    import torch

    from training.layers.registry import get_layer
    from training.tests.conftest import collect

    table, _ = collect("zeek", datasets / "zeek_zat" / "json")
    layer = get_layer("layer3")()
    units = layer.featurize(table)
    assert (layer.labels(units) == -1).all() and len(layer.labels(units)) == 27
    benign = layer.relabeled(units, np.zeros(27, np.int64))
    layer.fit(benign, benign_only=True)
    torch.manual_seed(0)
    model = layer.default_detector(units).eval()
    assert evaluate_model(layer, model, None, units) == {}
    counted = evaluate_model(layer, model, None, benign)
    assert list(counted) == ["val_loss"] and counted["val_loss"] > 0.5


@pytest.mark.parametrize("detector", ["iforest", "ecod"])
def test_a_classical_layer1_detector_has_a_gate_loss_but_never_ranks_a_vae_by_it(
        datasets, tmp_path, detector):
    """Layer 1's gate loss is the VAE's reconstruction term; a classical detector has none,
    and the unlabeled gate failed with KeyError 'val_recon' after training one on the zat
    capture (trial H, D1). It has its own loss (its mean score), which ranks it against its
    own kind only: against a VAE champion the champion stays, however low that loss is."""
    from types import SimpleNamespace

    from training.evaluation.calibration import Calibration
    from training.layers.registry import get_layer
    from training.layers.training import train_layer
    from training.retraining.unlabeled_gate import unlabeled_decision, window_figures
    from training.tests.conftest import collect

    table, _ = collect("zeek", datasets / "zeek_zat" / "json")
    units = get_layer("layer1")().featurize(table)
    figures, models = {}, {}
    for name in (detector, None):
        layer = get_layer("layer1")()
        config = layer.default_config(num_epochs=1, checkpoint_dir=str(tmp_path / str(name)),
                                      log_dir=str(tmp_path), tensorboard=False, seed=0)
        model, results = train_layer(layer, units, units, config,
                                     model_args={"detector": name} if name else {})
        calibration = Calibration.from_dict(results["calibration"])
        loaded = SimpleNamespace(model=model, threshold=calibration.threshold,
                                 calibration=calibration)  # what the gate reads of a version
        figures[name], models[name] = window_figures(layer, loaded, units), (layer, model)
    ours = figures[detector]
    layer, model = models[detector]
    assert ours.val_loss == pytest.approx(float(np.mean(layer.score(model, units))), rel=1e-5)
    assert ours.val_loss < figures[None].val_loss  # a mean score against a squared error
    decision = unlabeled_decision(ours, figures[None], improvement=0.02)
    assert not decision.deploy
    assert "the champion stays: their losses measure different things" in decision.reason
    assert ours.loss_recipe.split(" ")[0] in decision.reason and "Layer1VAE (beta=" in \
        decision.reason
