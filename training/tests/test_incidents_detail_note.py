"""`maximus-train score` says when only the best incidents carry their flows and top alerts
(`training.scoring.incidents.MAX_DETAILED`): a layer-1 model of Stratosphere 008's benign flows
scoring 011 writes 2,239 incidents, and those past rank 1,000 have null `flows` and `top`,
which an analyst filtering one host found with no word of it (trial T; it was an INFO log)."""

from __future__ import annotations

import pytest

from training.cli.main import main
from training.scoring.incidents import MAX_DETAILED
from training.scoring.tables import incidents_path, read_incidents

CONN_008 = "stratosphere/008-zeek-mixed/data/conn.log.labeled"
CONN_011 = "stratosphere/011-zeek-mixed/data/conn.log.labeled"
CONN_003 = "stratosphere/003-zeek-scenario-malicious/conn.log"
NOTE = (f"(flows and top alerts listed for the best {MAX_DETAILED:,}; the others have counts "
        "and times only)")


@pytest.fixture(scope="module")
def run(datasets, tmp_path_factory):
    work = tmp_path_factory.mktemp("detail") / "w8"
    code = main(["pipeline", "--source", f"zeek:{datasets / CONN_008}", "--benign-only",
                 "--layers", "layer1", "--epochs", "3", "--workdir", str(work), "-q"])
    assert code == 0
    return work


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
