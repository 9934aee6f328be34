"""The text report's attack-type table: every name distinguishable, the table readable."""

from __future__ import annotations

import json
import re

import numpy as np

from training.evaluation.figures import MAX_ATTACK_TYPES, attack_type_labels
from training.evaluation.report_text import format_report, short_names
from training.evaluation.score_metrics import evaluate_scores


def test_short_names_keep_the_start_and_the_end_and_widen_until_distinct():
    assert short_names(["scan", "c2"]) == ["scan", "c2"]
    # width 8: a third of the 5 characters left for the start (1), the rest for the end (4)
    assert short_names(["abcdefghij-1", "abcdefghij-2", "short"], width=8) == \
        ["a...ij-1", "a...ij-2", "short"]
    # names that differ only in the middle widen to their full length
    assert short_names(["aaaa1bbbb", "aaaa2bbbb"], width=6) == ["aaaa1bbbb", "aaaa2bbbb"]
    assert short_names([]) == []


def test_the_attack_types_of_a_suricata_capture_read_apart(datasets):
    """The trial's report cut names at 31 characters: about 20 Suricata signatures all read
    `ET CINS Active Threat Intellige`. Each row now names one signature."""
    signatures = []
    with open(datasets / "suricata" / "slips_test6-malicious.suricata.json") as lines:
        for line in lines:
            alert = json.loads(line).get("alert") if line.strip() else None
            if alert and alert.get("signature"):
                signatures.append(alert["signature"])
    n = len(signatures)
    types = np.array(signatures + [""] * 50)
    labels = np.r_[np.ones(n, np.int64), np.zeros(50, np.int64)]
    scores = np.random.default_rng(0).random(n + 50)
    m = evaluate_scores(scores, labels, types, threshold=0.5)
    text = format_report(m).splitlines()
    start = text.index("Detection per attack type")
    rows = text[start + 2:start + 27]
    assert text[start + 27].startswith("  ... ") and text[start + 27].endswith(
        "more types in the JSON report")
    listed = list(m.per_attack_type)[:25]
    shown = [row[2:].split("   ")[0].rstrip() for row in rows]
    assert len(set(shown)) == 25
    for name, short in zip(listed, shown):  # each row's text is its own signature's
        head, _, tail = short.partition("...")
        assert name == short or (name.startswith(head) and name.endswith(tail)
                                 and len(short) == 44)
    cins = [s for s in shown if s.startswith("ET CINS")]
    assert len(cins) == 20 and all(re.fullmatch(r"ET CINS Activ\.\.\.(e | |)Poor Reputation IP "
                                                r"group \d+", s) for s in cins)
    # the column is as wide as the longest name shown (44), not the longest signature (80)
    assert {len(row) for row in rows} == {2 + 45 + 8 + 16 * 2}
    # the HTML report's figure labels its bars alike (it cut them at 40 characters)
    labels = attack_type_labels(m)
    assert len(labels) == MAX_ATTACK_TYPES == len(set(labels))
    assert labels[1] == "ET CINS Acti...or Reputation IP group 86 (79)"
