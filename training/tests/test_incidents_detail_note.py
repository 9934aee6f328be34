"""`maximus-train score` says when only the best incidents carry their flows and top alerts
(`training.scoring.incidents.MAX_DETAILED`): a layer-1 model of Stratosphere 008's benign flows
scoring 011 writes 2,239 incidents, and those past rank 1,000 have null `flows` and `top`,
which an analyst filtering one host found with no word of it (trial T; it was an INFO log).
And the alerts page of that run: its best incidents (one scanner's hours, 60-100 alerts each
near 7.9) rank by evidence, not by their alerts' scores, so their top alerts are past the 1,000
highest-scoring alerts that get reasons; the page said "the detector does not split its score
into per-feature terms" under 49 of its 60 top alerts, of a VAE that does."""

from __future__ import annotations

import json

import pytest

from training.cli.main import main
from training.scoring.alerts import MAX_EXPLAINED
from training.scoring.incidents import MAX_DETAILED
from training.scoring.tables import incidents_path, read_incidents

CONN_011 = "stratosphere/011-zeek-mixed/data/conn.log.labeled"
CONN_003 = "stratosphere/003-zeek-scenario-malicious/conn.log"
NOTE = (f"(flows and top alerts listed for the best {MAX_DETAILED:,}; the others have counts "
        "and times only)")


@pytest.fixture(scope="module")
def run(benign_008_run):
    return benign_008_run


def _score(run, path, capsys) -> tuple[str, list[dict]]:
    output = run.parent / "scores.parquet"
    code = main(["score", "--workdir", str(run), "--model", "layer1_vae", "--input",
                 f"zeek:{path}", "--output", str(output), "--top", "0"])
    out, _ = capsys.readouterr()
    assert code == 0
    return out, read_incidents(incidents_path(output)).to_pylist()


def test_more_incidents_than_are_detailed_says_so(run, datasets, capsys):
    out, incidents = _score(run, datasets / CONN_011, capsys)
    assert len(incidents) > MAX_DETAILED
    (line,) = [x for x in out.splitlines() if x.startswith("incidents: ")]
    assert line.startswith(f"incidents: {len(incidents):,} {NOTE}; written to ")
    assert all(i["top"] is not None for i in incidents[:MAX_DETAILED])
    assert all(i["flows"] is None and i["top"] is None for i in incidents[MAX_DETAILED:])


def test_fewer_incidents_get_no_note(run, datasets, capsys):
    out, incidents = _score(run, datasets / CONN_003, capsys)
    assert 0 < len(incidents) <= MAX_DETAILED
    assert f"incidents: {len(incidents):,}; written to " in out and NOTE not in out


def test_the_page_says_why_a_top_alert_has_no_reasons(run, datasets, capsys):
    _score(run, datasets / CONN_011, capsys)
    document = json.loads((run.parent / "scores.alerts.json").read_text())
    page = (run.parent / "scores.alerts.html").read_text()
    assert document["explained_layers"] == ["layer1"]
    unexplained = [a for i in document["incidents"] if i["alerts"] for a in i["top"]
                   if not a["reasons"]]
    assert unexplained  # the capped ones, as scored
    assert "does not split its score" not in page
    note = (f"no reasons: only {MAX_EXPLAINED:,} alerts of each scored batch get them, each "
            "incident's top alerts first, and this one's batch held more top alerts than that")
    assert page.count(note) == len(unexplained)
