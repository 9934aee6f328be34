"""The HTML report of a real run: a layer-1 VAE trained on IoT-23 honeypot traffic, evaluated
on the Mirai capture 44-1 with the threshold from its checkpoint sidecar.

Every embedded PNG must decode and carry its title (the PNG 'Title' text chunk, the same as the
<img> alt text), and every number in the page must equal the one in the JSON report.
"""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from training.artifacts.model_files import load_model
from training.evaluation.evaluator import ModelEvaluator
from training.evaluation.report_html import fmt
from training.data_preprocessor import DataPreprocessor, LayerType
from training.train_layer1_vae import default_config, train_layer1_vae
from training.tests.conftest import collect

TITLES = {"ROC curve", "Precision-recall curves", "Score distribution per class",
          "Confusion matrix", "Detection rate per attack type", "Training curves"}
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")


class Page(HTMLParser):
    """Collects the data-key values, the images and the other visible text of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[str, str]] = []
        self.images: list[tuple[str, str]] = []
        self.free_text: list[str] = []
        self._key: str | None = None
        self._skip = 0
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag in ("style", "title"):
            self._skip += 1
        if tag == "img":
            self.images.append((attrs["alt"], attrs["src"]))
        if "data-key" in attrs:
            self._key, self._text = attrs["data-key"], ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1
        if self._key is not None:
            self.values.append((self._key, self._text))
            self._key = None

    def handle_data(self, data: str) -> None:
        if self._key is not None:
            self._text += data
        elif not self._skip:
            self.free_text.append(data)


def resolve(document: dict, pointer: str):
    node = document
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def strings_and_keys(node) -> list[str]:
    if isinstance(node, dict):
        return list(node) + [s for v in node.values() for s in strings_and_keys(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings_and_keys(v)]
    return [node] if isinstance(node, str) else []


@pytest.fixture(scope="module")
def report(datasets, tmp_path_factory):
    """(JSON report, HTML text) of a real train-and-evaluate run."""
    out = tmp_path_factory.mktemp("report")
    iot = datasets / "iot23"
    prep = DataPreprocessor()
    benign = prep.featurize(collect("csv_file", iot / "CTU-Honeypot-Capture-4-1-labeled.csv")[0],
                            LayerType.LAYER1_SENSORY)
    test = prep.featurize(collect("csv_file", iot / "CTU-Malware-Capture-44-1-labeled.csv")[0],
                          LayerType.LAYER1_SENSORY)
    x = benign.arrays["features"]
    order = np.random.default_rng(0).permutation(len(x))
    train, val = order[: int(0.8 * len(x))], order[int(0.8 * len(x)):]
    config = default_config(num_epochs=4, batch_size=64, checkpoint_dir=str(out),
                            log_dir=str(out), tensorboard=False, save_last_state=False)
    _, results = train_layer1_vae(x[train], np.zeros(len(train), np.int8), x[val],
                                  np.zeros(len(val), np.int8), config, feature_spec=benign.spec)
    a = test.arrays
    evaluator = ModelEvaluator(load_model(results["checkpoint"]), a["features"], a["labels"],
                               attack_types=a["attack_type"], timestamps=a["timestamps"],
                               training_history=results["history"])
    metrics = evaluator.evaluate()
    assert metrics.threshold_source.startswith(  # the calibration's rule, as train says it
        "checkpoint sidecar: benign labels: threshold at the 99th percentile of benign "
        "validation scores")
    assert (metrics.n_samples, metrics.per_class_metrics["threat"]["support"]) == (237, 26)
    paths = evaluator.save_report(metrics, out / "layer1_vae")
    return json.loads(paths["json"].read_text()), paths["html"].read_text()


def test_every_figure_decodes_and_carries_its_title(report):
    _, html = report
    page = Page()
    page.feed(html)
    assert {alt for alt, _ in page.images} == TITLES
    for alt, src in page.images:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        image.load()  # decodes every pixel; a truncated or corrupt PNG raises
        assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 100
        assert image.info["Title"] == alt


def test_every_number_in_the_page_equals_the_json(report):
    document, html = report
    page = Page()
    page.feed(html)
    shown = dict(page.values)
    assert len(page.values) > 60  # the summary, class, FPR, matrix, attack, latency tables
    for key in ("/roc_auc", "/pr_auc", "/per_class_metrics/benign/pr_auc", "/threshold",
                "/confusion_matrix/1/1", "/detection_at_fpr/0.01/detection_rate",
                "/alerts/alerts_per_day", "/latency/single_event_us/p50"):
        assert key in shown, key
    for key, text in page.values:
        assert text == fmt(resolve(document, key)), key
    # Numbers outside the data-key cells are part of keys or texts of the JSON (the FPR
    # targets, the notes, the threshold's source), never values typed into the page.
    texts = strings_and_keys(document)
    for token in NUMBER.findall(" ".join(page.free_text)):
        assert any(token in t for t in texts), token
