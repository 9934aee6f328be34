"""The guard of `maximus-train score` on real captures: a layer-1 model trained on the benign
flows of Stratosphere 008 (`pipeline --benign-only`, time split) scores the next capture, 011
(mostly attacks it never saw, and other hosts), and the benign flows of 008's own held-out test
part (later in the day than anything it learnt from)."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from training.cli.main import main
from training.registry.registry import ModelRegistry
from training.scoring.batch import ScoringSummary
from training.scoring.guard import SHIFT_WARNING, guard_scoring

CONN_008 = "stratosphere/008-zeek-mixed/data/conn.log.labeled"
IOT23_CSV = "iot23/CTU-Honeypot-Capture-7-1-labeled.csv"
OTRF = "windows_otrf_security_datasets"
RECORDINGS = (f"{OTRF}/cmd_psexec_lsa_secrets_dump.zip",
              f"{OTRF}/covenant_copy_smb_CreateRequest.zip")
CONN_011 = "stratosphere/011-zeek-mixed/data/conn.log.labeled"
OBSERVED = re.compile(r"alert rate: observed ([\d.]+)% \(([\d,]+) of ([\d,]+) units\), "
                      r"expected ([\d.]+)% (?:\(tolerated up to 3x: |- above 3x \()([\d.]+)%\)")


@pytest.fixture(scope="module")
def run(benign_008_run):
    return benign_008_run


@pytest.fixture(scope="module")
def held_out_benign(run, datasets):
    """008's conn.log reduced to the benign flows of the pipeline's test part, as Zeek TSV."""
    test = np.load(run / "splits" / "layer1_test.npz")
    uids = {i.removeprefix("conn:") for i, y in zip(test["sample_ids"], test["labels"]) if y == 0}
    lines = (datasets / CONN_008).read_text().splitlines(keepends=True)
    fields = next(line for line in lines if line.startswith("#fields")).split("\t")[1:]
    at = [f.strip() for f in fields].index("uid")
    kept = [line for line in lines
            if line.startswith("#") or line.split("\t")[at] in uids]
    path = run.parent / "conn.log"
    path.write_text("".join(kept))
    return path, len(uids)


def _score(run, path, capsys, *flags: str) -> tuple[int, str, str]:
    code = main(["score", "--workdir", str(run), "--model", "layer1_vae", "--input",
                 f"zeek:{path}", "--output", str(run.parent / "scores.parquet"), "--top", "0",
                 *flags])
    out, err = capsys.readouterr()
    return code, out, err


def _figures(out: str, run) -> tuple[float, int, int, float, float]:
    (found,) = OBSERVED.findall(out)
    observed, alerts, units, expected, bound = found
    alerts, units = int(alerts.replace(",", "")), int(units.replace(",", ""))
    written = pq.read_table(run.parent / "scores.parquet")
    assert (units, alerts) == (written.num_rows, int(np.sum(written["is_alert"])))
    calibration = ModelRegistry(run / "models").load_model(
        "layer1_vae", stage="production").calibration
    assert float(expected) == pytest.approx(100 * calibration.expected_alert_rate, abs=5e-4)
    assert float(bound) == pytest.approx(3 * float(expected), abs=2e-3)
    return float(observed), alerts, units, float(expected), float(bound)


def test_scoring_the_next_capture_warns_and_max_alert_rate_fails(run, datasets, capsys):
    code, out, err = _score(run, datasets / CONN_011, capsys)
    observed, _, units, expected, bound = _figures(out, run)
    assert code == 0 and units == 9048 and observed > 10 * bound
    assert "score shift from the benign validation scores: KS distance" in out
    assert re.search(r"warning: the alert rate is [\d,.]+x the expected rate, past 3x "
                     r"\(binomial p", err)
    code, out, err = _score(run, datasets / CONN_011, capsys, "--max-alert-rate")
    assert code == 1 and "error: alert rate past the maximum" in err
    assert "Traceback" not in err
    # a maximum of its own: well above the observed rate passes, well below it fails
    above, below = min(0.99, observed / 100 + 0.1), observed / 100 - 0.1
    assert _score(run, datasets / CONN_011, capsys, "--max-alert-rate", str(above))[0] == 0
    assert _score(run, datasets / CONN_011, capsys, "--max-alert-rate", str(below))[0] == 1


def test_the_held_out_benign_flows_do_not_warn(run, held_out_benign, capsys):
    path, n = held_out_benign
    code, out, err = _score(run, path, capsys, "--max-alert-rate")
    observed, alerts, units, expected, bound = _figures(out, run)
    assert code == 0 and units == n > 100
    assert "warning:" not in err and "error:" not in err


def test_an_input_that_gives_no_record_is_named(run, datasets, capsys):
    """A CSV of its header line alone beside a real capture: the capture is scored, the other
    named; alone, it scores 0 events and says so, exit 0 (nothing failed)."""
    header = run.parent / "hdr.csv"
    header.write_text((datasets / IOT23_CSV).read_text().splitlines()[0] + "\n")
    warning = f"warning: {header}: no records (an empty file or folder, or a header alone)"
    code, out, err = _score(run, datasets / CONN_008, capsys, "--input", f"csv:{header}")
    assert code == 0 and warning in err.splitlines()
    assert re.search(r"^scored [\d,]+ events", out, re.M) and "scored 0 events" not in out
    code = main(["score", "--workdir", str(run), "--model", "layer1_vae", "--input",
                 f"csv:{header}", "--output", str(run.parent / "none.parquet"), "-q"])
    out, err = capsys.readouterr()
    assert code == 0 and "scored 0 events (0 layer1 units)" in out
    assert err.splitlines() == [warning]


def test_a_zero_byte_zeek_log_is_named_as_giving_no_records(run, capsys):
    empty = run.parent / "empty.log"
    empty.write_bytes(b"")
    code, out, err = _score(run, empty, capsys)
    assert code == 0 and "scored 0 events" in out
    assert f"warning: {empty}: no records (an empty file or folder, or a header alone)" in \
        err.splitlines()


@pytest.mark.parametrize("flags, message", [
    (["--alert-factor", "0.5"], "--alert-factor must be >= 1, got 0.5"),
    (["--max-alert-rate", "5"], "--max-alert-rate must be in (0, 1), got 5.0"),
])
def test_bad_guard_flags_are_refused_before_scoring(run, datasets, capsys, flags, message):
    code, out, err = _score(run, datasets / CONN_011, capsys, *flags)
    assert code == 2 and f"error: {message}" in err and out == ""


def _summary(alerts: int, units: int, expected: float | None):
    return ScoringSummary("m", "1.0.0", "layer1", 1.0, units, units, alerts, 0.1, "out.parquet",
                          expected_alert_rate=expected, score_shift=None)


def test_the_guard_without_a_calibration_and_with_a_rate_of_its_own():
    bare = guard_scoring(_summary(50, 100, None), strict=True)  # saved before calibrations
    assert bare.lines() == ["alert rate: the model has no calibration, so no expected rate to "
                            "compare with"]
    assert not bare.warned and not bare.failed and bare.warning() is None
    capped = guard_scoring(_summary(50, 100, None), max_alert_rate=0.2)
    assert capped.failed and capped.limit.bound == 0.2
    assert capped.failure().startswith("alert rate past the maximum: 50.00% of 100 units "
                                       "alert; at most 20.00% tolerated (binomial p ")
    # calibrated: 2 of 100 at an expected 0.1% is past 3x but not significantly, 20 of 1,000 is
    above = guard_scoring(_summary(2, 100, 0.001), strict=True)
    assert not above.failed and above.warning() is None
    assert above.lines() == [  # above 3x is not said to be "tolerated"
        "alert rate: observed 2.000% (2 of 100 units), expected 0.100% - above 3x (0.300%) but "
        f"not significantly (binomial p {above.check.p_value:.2g}, 100 units)"]
    warned = guard_scoring(_summary(20, 1000, 0.001), strict=True)
    assert warned.warned and warned.failed
    assert warned.warning().startswith("warning: the alert rate is 20.0x the expected rate, "
                                       "past 3x (binomial p ")
    assert not guard_scoring(_summary(20, 1000, 0.001)).failed  # a warning only


@pytest.fixture(scope="module")
def windows_run(datasets, tmp_path_factory):
    """Layers 1 and 3 (host windows of 10 s) trained on two OTRF Windows recordings."""
    work = tmp_path_factory.mktemp("guard") / "win"
    sources = [arg for path in RECORDINGS for arg in ("--source", f"windows:{datasets / path}")]
    code = main(["pipeline", *sources, "--layers", "layer1", "layer3", "--layer3-entity", "host",
                 "--layer3-bucket-seconds", "10", "--epochs", "1", "--workdir", str(work), "-q"])
    assert code == 0
    return work


def _score_with(work, model, source, capsys, *flags: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["score", "--workdir", str(work), "--model", model, "--input", source,
                 "--output", str(work.parent / "other.parquet"), "--top", "0", "-q", *flags])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_windows_model_on_zeek_flows_warns_of_the_score_shift(windows_run, datasets, capsys):
    """0 alerts on flows of another kind read as clean traffic: the KS distance warns."""
    code, out, err = _score_with(windows_run, "layer1_vae",
                                 f"zeek:{datasets / 'slips_portscan_zeek/vertical_conn.log'}",
                                 capsys)
    assert code == 0 and "alerts: 0 " in out
    (distance,) = re.findall(r"KS distance ([\d.]+) \(0 = ", out)
    assert float(distance) >= SHIFT_WARNING
    assert f"warning: the scores sit far from layer1_vae 1.0.0's benign validation scores (KS " \
           f"distance {distance}, past 0.5, on 50 units): this input is unlike what the model " \
           "was trained on (another kind of log, other hosts?), so its alert rate and " \
           "percentiles do not hold here; 0 alerts is no sign of clean traffic; check before " \
           "acting on its alerts\n" in err
    assert "warning: the alert rate" not in err


def test_a_host_window_model_on_flows_says_which_field_they_lack(windows_run, datasets,
                                                                 capsys):
    flows = datasets / "iot23/CTU-Honeypot-Capture-7-1-labeled.csv"  # no host: network flows
    code, out, err = _score_with(windows_run, "layer3_tcn", f"csv:{flows}", capsys,
                                 "--alias", "challenger")  # one validation window: not promoted
    assert code == 0 and "scored 130 events (0 layer3 units)" in out
    assert ("warning: 130 events built no layer3 unit: no event has `host`, and layer3_tcn "
            "1.0.0 builds them from events with `timestamp` and `host`; score input that carries "
            "them, or a model trained on this kind of data\n") in err


def test_the_shift_warns_from_0_5_when_significant_for_the_counts():
    def shifted(shift: float, units: int, reference: int, alerts: int = 0):
        summary = _summary(alerts, units, 0.05)
        summary.score_shift, summary.reference_scores = shift, reference
        return guard_scoring(summary).warnings()

    assert shifted(0.5, 1000, 1000) and not shifted(0.499, 1000, 1000)  # the cutoff's edges
    # 0.6 on 10 units against 20 reference scores is within chance (critical value 0.63)
    assert not shifted(0.6, 10, 20) and shifted(0.6, 100, 20)
    assert shifted(0.9, 100, 1000, alerts=3)[0].endswith(
        "(another kind of log, other hosts?), so its alert rate and percentiles do not hold "
        "here; check before acting on its alerts")  # alerts: no word on clean traffic
    # the alert rate warned already: it says the traffic is unlike the validation data
    (only,) = shifted(0.9, 100, 1000, alerts=50)
    assert only.startswith("warning: the alert rate is 10.0x the expected rate")


def _no_units(events: int, lacking: dict[str, int]) -> list[str]:
    summary = _summary(0, 0, 0.01)
    summary.events, summary.layer, summary.unit_fields = events, "layer2", lacking
    return guard_scoring(summary).warnings()


def test_no_units_names_the_fields_the_events_lack():
    assert _no_units(10, {"timestamp": 0, "source_ip": 10, "dest_ip": 10}) == [
        "warning: 10 events built no layer2 unit: no event has `source_ip` or `dest_ip`, and m "
        "1.0.0 builds them from events with `timestamp` and `source_ip` and `dest_ip`; score "
        "input that carries them, or a model trained on this kind of data"]
    assert _no_units(0, {"timestamp": 0}) == []  # no event: nothing to build from (D8 says so)


def test_no_units_claims_no_lacking_field_the_counts_do_not_prove():
    """It said "no event has all of `timestamp` and `source_ip` and `dest_ip` ()" of events
    lacking none of them, and "no event has all of" when 4 lack one field and 6 another (the 4
    may be among the 6: 4 events with all three). Per-field counts prove that only when one
    field is lacking on every event; otherwise the generic line, the counts as facts."""
    assert _no_units(10, {"timestamp": 0, "source_ip": 0, "dest_ip": 0}) == [
        "warning: 10 events built no layer2 unit: none of them makes one for m 1.0.0; is this "
        "the input it was trained for?"]
    assert _no_units(10, {"timestamp": 4, "source_ip": 6, "dest_ip": 0}) == [
        "warning: 10 events built no layer2 unit: none of them makes one for m 1.0.0 (4 lack "
        "`timestamp`, 6 lack `source_ip`); is this the input it was trained for?"]
    assert _no_units(10, {}) == _no_units(10, {"timestamp": 0})  # no field named: the same
    assert _no_units(10, {"timestamp": 0, "source_ip": 10}) == [  # proven: one lacks it
        "warning: 10 events built no layer2 unit: no event has `source_ip`, and m 1.0.0 builds "
        "them from events with `timestamp` and `source_ip`; score input that carries them, or a "
        "model trained on this kind of data"]
