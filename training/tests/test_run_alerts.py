"""The pipeline run's alerts page (`training.pipeline.alerts`) on the demo events: linked from
the run's report and the runs index, its values equal its JSON and the incident files, and
where each labeled demo scenario's attacker window ranks among the incidents.

One pipeline run on the 10,000 demo events of seed 42 (the generator as of issue 22's start),
every layer learning from benign units only for the default 20 epochs, thresholds at the 99th
percentile of benign validation scores, so that the test part has alerts of every layer to group.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from training.demo.scenario_ranks import best_incident_ranks
from training.evaluation.report_html import fmt
from training.scoring.tables import read_alerts, read_incidents
from training.tests.test_report_html import Page, resolve


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from training.demo.generator import write_demo_file
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline

    folder = tmp_path_factory.mktemp("run_alerts")
    demo = write_demo_file(folder / "demo.json", n_events=10_000, seed=42)
    config = config_from_dict({
        "workdir": str(folder / "work"), "sources": [{"type": "json_file", "path": str(demo)}],
        "train": {"epochs": 20, "benign_only": True, "threshold": "quantile:0.99"}})
    result = run_pipeline(config)
    return result, Path(result.report).parent


def test_the_run_report_and_the_runs_index_link_the_alerts_page(run):
    result, report = run
    assert result.alerts["page"] == "test_alerts.alerts.html"
    assert f'href="{result.alerts["page"]}"' in (report / "index.html").read_text()
    runs_index = Path(result.index).read_text()
    assert f'report/test_alerts.alerts.html">{result.alerts["incidents"]:,} incidents</a>' \
        in runs_index
    summary = json.loads((Path(result.workdir) / "pipeline.json").read_text())
    assert summary["alerts"] == result.alerts


def test_the_alerts_page_shows_its_json_which_is_the_runs_incidents(run):
    result, report = run
    alerts = read_alerts(report / result.alerts["alerts_file"])
    incidents = read_incidents(report / result.alerts["incidents_file"])
    layers = set(alerts["layer"].to_pylist())
    assert alerts.num_rows == result.alerts["alerts"] and pc.all(alerts["is_alert"]).as_py()
    assert layers == {"layer1", "layer2", "layer3"}
    assert incidents.num_rows == result.alerts["incidents"]
    assert sum(incidents["alerts"].to_pylist()) == alerts.num_rows
    document = json.loads((report / result.alerts["json"]).read_text())
    top = incidents.slice(0, len(document["incidents"])).to_pylist()
    assert len(top) == min(20, incidents.num_rows) > 0
    assert [(i["rank"], i["entity"], i["alerts"], i["score"]) for i in document["incidents"]] \
        == [(i["rank"], i["entity"], i["alerts"], i["score"]) for i in top]
    page = Page()
    page.feed((report / result.alerts["page"]).read_text())
    keys = [key for key, _ in page.values]
    assert len(keys) == len(set(keys)) > 7 * len(top)
    for key, shown in page.values:
        assert shown == fmt(resolve(document, key)), key
    assert any(key.endswith("/reasons/0/field") for key in keys)  # reasons are on the page


@pytest.fixture(scope="module")
def best_ranks(run) -> dict[str, int | None]:
    """Each scenario's best-ranked incident among its attacker windows (its events' entity, as
    incidents take it, and hour); None: no incident there."""
    result, report = run
    incidents = read_incidents(report / result.alerts["incidents_file"])
    events = pa.parquet.read_table(Path(result.workdir) / "events.parquet")
    best = best_incident_ranks(incidents, events)
    print(f"best incident rank of each scenario ({incidents.num_rows} incidents): {best}")
    return best


# Measured (pipeline seeds 42 / 0 / 1 / 2 at 20 epochs, BENCHMARKS.md): lateral movement (from
# the admins' own jump host in this test part, no alert in any layer) ranks 9 / - / 10 / 8 as a
# quiet incident (its layers together as rare as an alert); seed 42 of the generator puts every
# SSH brute-force episode in the first two thirds of the events, before the test part, so it
# cannot rank here. Privilege escalation ranks in the top 10 since layer 1's `l1.v4`.
MISSED = {"ssh_brute_force"}
SCENARIOS = ["c2_beaconing", "data_exfiltration", "lateral_movement", "port_scan",
             "privilege_escalation", "ssh_brute_force"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_demo_scenario_ranks_in_the_top_10_incidents(request, best_ranks, scenario):
    assert sorted(best_ranks) == SCENARIOS
    if scenario in MISSED:  # strict: a scenario that starts to rank shows up here too
        request.applymarker(pytest.mark.xfail(strict=True, reason="no incident in the top 10 "
                                              "(MISSED)"))
    assert best_ranks[scenario] is not None and best_ranks[scenario] <= 10
