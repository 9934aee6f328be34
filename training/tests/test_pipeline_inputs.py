"""The pipeline's inputs and settings for real data: the same source settings from flags and
TOML, header-less CSV, missing timestamps, the grace period, too few units, and summaries with
missing figures. Errors are checked on their messages, which say what to do."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from training.cli.options import parse_pairs, parse_source, source_options
from training.datasets.strategies import Ratios
from training.datasets.temporal import temporal_split
from training.errors import ConfigError, SchemaError, TooFewError
from training.pipeline.config import config_from_dict, load_config, parse_train_until
from training.pipeline.outcome import LayerOutcome
from training.sources.presets import NSL_KDD_COLUMNS
from training.tests.conftest import DATASETS, REPO, collect


def _logged_times(path, folder):
    """A copy of an EVE file whose flows are timed when they were logged, as every record of
    it then is: its flow records without `flow.start` (what the source times flows by). The
    sensor flushed them together, so the capture bunches at few times."""
    import json

    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/datasets)")
    copy = folder / path.name
    with path.open() as lines, copy.open("w") as out:
        for line in lines:
            record = json.loads(line)
            record.get("flow", {}).pop("start", None)
            out.write(json.dumps(record) + "\n")
    return copy

KDD = "nsl_kdd/KDDTrain+_20Percent.txt"


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.cli", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=300)


# -- sources: the same settings on the command line and in TOML -----------------------------


def test_column_names_field_and_label_maps_read_the_same_from_flags_and_toml():
    toml = config_from_dict({"sources": [{"type": "csv", "path": "kdd.txt",
                                          "column_names": "nsl_kdd",
                                          "field_map": {"service": "service"},
                                          "label_map": {"neptune": 1}}]})
    (source,) = toml.sources
    flags = source_options([parse_source("csv:kdd.txt", 0, None)], column_names="nsl-kdd",
                           field_map=["service=service"], label_map=["neptune=1"])
    for s in (source, flags[0]):
        assert s.source_type.value == "csv_file"
        assert s.connection_params == {"path": "kdd.txt", "has_header": False,
                                       "column_names": list(NSL_KDD_COLUMNS)}
        assert s.field_map == {"protocol": "protocol_type", "conn_state": "flag",
                               "bytes_sent": "src_bytes", "bytes_received": "dst_bytes",
                               "service": "service"}
        assert s.label_map.overrides == {"neptune": 1}
    listed = source_options([parse_source("csv:x.csv", 0, None)], column_names="a,b,c")
    assert listed[0].connection_params["column_names"] == ["a", "b", "c"]


@pytest.mark.parametrize("call, message", [
    (lambda: source_options([parse_source("zeek:/logs", 0, None)], column_names="nsl_kdd"),
     r"--column-names names the columns of header-less CSV files; none of the --source inputs "
     r"is csv:"),
    (lambda: source_options([parse_source("csv:x", 0, None)], column_names="kdd"),
     r"'kdd' is neither a preset \(nsl_kdd\) nor a comma-separated list of names \(a,b,c\)"),
    (lambda: parse_pairs(["source_ip"], "--field-map"),
     r"--field-map takes NAME=VALUE pairs \(e.g. source_ip=src,dest_ip=dst\), got 'source_ip'"),
    (lambda: source_options([parse_source("csv:x", 0, None)], label_map=["Background=2"]),
     r"--label-map maps label text to -1 \(unknown\), 0 \(benign\) or 1 \(threat\), got '2'"),
    (lambda: config_from_dict({"sources": [{"type": "csv", "path": "x"}],
                               "train": {"keep_unknown": True}}),
     r"keep_unknown keeps unknown units beside the benign ones; it needs train.benign_only = "
     r"true \(--benign-only\)"),
    (lambda: config_from_dict({"sources": [{"type": "csv", "path": "x"}],
                               "train": {"threshold": "top-10"}}),
     r"threshold rule must be one of quantile\[:Q\], alerts-per-day:N, best-f1 or auto"),
    (lambda: config_from_dict({"sources": [{"type": "csv", "path": "x"}],
                               "split": {"strategy": "random", "train_until": 0.5}}),
     r"config \[split\]: train_until needs strategy temporal, got 'random'"),
    (lambda: parse_train_until("yesterday"),
     r"train_until must be an ISO 8601 time \(2024-06-01T12:00:00Z\) or a share of the units in "
     r"\(0, 1\), got 'yesterday'"),
    (lambda: parse_train_until(1.5), r"as a share of the units must be in \(0, 1\), got 1.5"),
])
def test_bad_settings_are_refused_with_what_to_do(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_a_config_that_is_not_text_is_a_usage_error_naming_it(tmp_path):
    """`pipeline --config /bin/ls` said "unexpected UnicodeDecodeError (a bug)" (trial M,
    D10); it is the user's file that is wrong, named with the fix."""
    from training.cli.main import main

    binary = tmp_path / "run.toml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe")
    with pytest.raises(ConfigError, match=rf"{binary}: cannot read the pipeline config: it is "
                                          r"not UTF-8 text \(byte 8\); give a TOML file"):
        load_config(binary)
    assert main(["pipeline", "--config", str(binary)]) == 2


def test_toml_sets_the_training_filter_threshold_grace_period_and_test_sources():
    config = config_from_dict({
        "sources": [{"type": "zeek", "path": "/logs/day1"}],
        "test_sources": [{"type": "zeek", "path": "/logs/day2"}],
        "split": {"train_until": "2024-06-01T12:00:00+02:00"},
        "train": {"benign_only": True, "keep_unknown": True, "threshold": "alerts_per_day:10",
                  "layer3": {"threshold": "best-f1"}}})
    assert [s.connection_params["path"] for s in config.test_sources] == ["/logs/day2"]
    assert config.split.grace == np.datetime64("2024-06-01T10:00:00", "us")
    assert config.train["layer1"].training_filter == "benign (is_threat 0) and unknown units"
    assert config.train["layer1"].trainer_changes()["threshold_rule"] == "alerts-per-day:10"
    assert config.train["layer3"].trainer_changes()["threshold_rule"] == "best-f1"
    plain = config_from_dict({"sources": [{"type": "zeek", "path": "/logs"}]})
    assert plain.train["layer2"].training_filter == (
        "every training unit, assumed benign (labels not used)")
    assert plain.train["layer2"].threshold == "quantile:0.999" and plain.test_sources == ()


def test_the_cli_refuses_bad_flags_with_a_message_and_exit_2(tmp_path):
    run = _cli("pipeline", "--source", "zeek:/nowhere", "--keep-unknown", cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "error: --keep-unknown keeps unknown units beside the benign ones" in run.stderr
    run = _cli("evaluate", "--model", "m.pt", cwd=tmp_path)
    assert run.returncode == 2 and run.stderr.strip() == (
        "error: evaluate needs --data FILE (a split or features file) or --source TYPE:PATH "
        "(events to featurize), not both")


# -- header-less CSV -------------------------------------------------------------------------


def test_a_csv_whose_first_line_is_data_is_refused_with_the_fix(datasets, tmp_path):
    with pytest.raises(SchemaError) as caught:
        collect("csv_file", datasets / KDD)
    assert str(caught.value) == (
        f"{datasets / KDD}: line 1 looks like data, not a header: 39 of its 43 fields are "
        "numbers or addresses ('0', '28', '3', '80', ...). If the file has no header line, "
        "give its 43 column names: --column-names NAME,NAME,... on the command line, "
        "column_names = [...] in its [[sources]] entry, or in Python "
        'connection_params["column_names"] = [...] with "has_header": False (a preset for '
        "NSL-KDD files: --column-names nsl_kdd, or in Python its names and field map "
        "training.sources.presets.NSL_KDD_COLUMNS and NSL_KDD_FIELDS; see "
        "training/sources/presets.py)")
    run = _cli("collect", "--source", f"csv:{datasets / KDD}", "--output", "c", cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "line 1 looks like data, not a header" in run.stderr
    # a real header (IoT-23) is read as one, and the preset reads the file
    table, _ = collect("csv_file", datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv")
    assert table.num_rows == 237 and table["source_ip"].null_count == 0
    table, _ = collect("csv_file", datasets / KDD, connection_params={
        "has_header": False, "column_names": list(NSL_KDD_COLUMNS)})
    assert table.num_rows == 25_192
    # a preset's name where Python takes the names is refused, not read as 7 one-letter names
    with pytest.raises(ConfigError) as caught:
        collect("csv_file", datasets / KDD, connection_params={"column_names": "nsl_kdd"})
    assert str(caught.value) == (
        "column_names must be a non-empty list of strings, got 'nsl_kdd' (a preset's names "
        "are in training.sources.presets, e.g. NSL_KDD_COLUMNS)")


# -- the grace period and too few distinct times ---------------------------------------------


def test_the_grace_period_cuts_at_a_time_or_a_leading_share():
    times = np.datetime64("2024-06-01T00:00", "us") + np.array(
        [5, 0, 1, 9, 2, 3, 8, 4, 6, 7]) * np.timedelta64(1, "h")
    ratios = Ratios(0.75, 0.25, 0.0)
    rows = temporal_split(times, ratios, train_until=np.datetime64("2024-06-01T08:00", "us"))
    # hours 0..7 train and val (3 : 1 of 8 -> 6 and 2), hours 8 and 9 test
    assert [sorted(times[rows[p]].astype("datetime64[h]").astype(int) % 24) for p in
            ("train", "val", "test")] == [[0, 1, 2, 3, 4, 5], [6, 7], [8, 9]]
    share = temporal_split(times, Ratios(0.6, 0.2, 0.2), train_until=0.5)
    assert [len(share[p]) for p in ("train", "val", "test")] == [4, 1, 5]
    with pytest.raises(ConfigError, match=r"train_until 2024-06-02T00:00:00.000000 leaves no row "
                                          r"after it: the 10 rows span 2024-06-01T00:00:00"):
        temporal_split(times, ratios, train_until=np.datetime64("2024-06-02T00:00", "us"))


def test_bursty_times_move_a_cut_rather_than_empty_a_part():
    # 9 units in one minute, then one each in three later minutes (an EVE file's first flows)
    times = np.array([0] * 9 + [1, 2, 3]) * np.timedelta64(60, "s") + np.datetime64(
        "2024-06-01", "us")
    rows = temporal_split(times, Ratios(0.6, 0.2, 0.2))
    assert [len(rows[p]) for p in ("train", "val", "test")] == [9, 1, 2]
    with pytest.raises(TooFewError, match="the temporal split leaves val empty.*the 10 rows "
                                          r"have 2 distinct time\(s\)"):
        temporal_split(times[:10], Ratios(0.6, 0.2, 0.2))


def test_a_grace_period_on_one_burst_skips_the_layers_it_cannot_cut_not_the_run(
        datasets, tmp_path):
    # The EVE file's first minute holds 3,571 of its 5,000 events, at one time, when its flows
    # are timed as logged: half of them cannot be cut into train and val. The run used to stop
    # at the drift check.
    from training.pipeline.run import run_pipeline

    path = _logged_times(datasets / "suricata" / "slips_test6-malicious.suricata.json", tmp_path)
    config = config_from_dict({"workdir": str(tmp_path / "run"), "layers": ["layer1"],
                               "sources": [{"type": "suricata_logs", "path": str(path)}],
                               "split": {"train_until": 0.5}, "train": {"epochs": 1}})
    result = run_pipeline(config)
    (layer1,) = result.layers
    assert layer1.skipped == (
        "5,000 events: the temporal split leaves val empty: the timestamps have too few "
        "distinct values for these ratios: the 3,571 rows before train_until have 1 distinct "
        "time(s)")
    assert any(issue.startswith("warning: drift: not checked") for issue in
               result.validation["issues"])


def test_a_grace_period_just_after_the_data_starts_skips_the_layers_it_leaves_too_little(
        datasets, tmp_path):
    # 3,209 events, but train_until 0.005 leaves layer 1 a dozen to learn from: it used to train
    # on them (the minimum was checked on all units, not on the training part).
    from training.pipeline.run import run_pipeline

    path = datasets / "iot23" / "CTU-Malware-Capture-20-1-labeled.csv"
    config = config_from_dict({"workdir": str(tmp_path / "run"), "layers": ["layer1", "layer3"],
                               "sources": [{"type": "csv", "path": str(path)}],
                               "split": {"train_until": 0.005}, "train": {"epochs": 1}})
    skipped = {layer.layer: layer.skipped for layer in run_pipeline(config).layers}
    assert skipped == {
        "layer1": "3,209 events, but its training part holds 9 events, fewer than the 50 it "
                  "needs to learn from (set train_until later)",
        "layer3": "1,382 windows, but its training part holds 4 windows, fewer than the 10 it "
                  "needs to learn from (set train_until later)"}


def test_benign_only_counts_the_training_units_it_learns_from(datasets, tmp_path):
    """CTU-SME-11's conn log: 719 of its 766 flows are one attack, so the training part of a
    benign-only run holds a handful of benign flows; the minimum was checked on every unit of
    the part, and layer 1 learnt from 17 events (trial W)."""
    from training.pipeline.run import run_pipeline

    path = datasets / "slips_ctu_sme_11_labeled_zeek" / "zeek-labeled" / "conn.log.labeled"
    config = config_from_dict({"workdir": str(tmp_path / "run"), "layers": ["layer1"],
                               "sources": [{"type": "zeek", "path": str(path)}],
                               "train": {"epochs": 1, "benign_only": True}})
    (layer,) = run_pipeline(config).layers
    assert re.fullmatch(r"766 events, but its training part holds \d+ events it learns from "
                        r"\(of [\d,]+\), fewer than the 50 it needs to learn from",
                        layer.skipped), layer.skipped


def test_a_layer_with_too_few_units_or_times_says_what_it_has_and_needs(datasets):
    from training.layers.registry import get_layer

    events, _ = collect("zeek_logs", datasets / "slips_portscan_zeek")
    shortfalls = {name: get_layer(name)().shortfall(get_layer(name)().featurize(events))
                  for name in ("layer1", "layer2", "layer3")}
    assert shortfalls == {
        "layer1": "91 events, fewer than the 100 it needs",
        "layer2": "32 edges at 2 distinct time(s), fewer than the 3 a temporal train/val/test "
                  "split needs",
        "layer3": "3 windows, fewer than the 20 it needs"}
    layer1 = get_layer("layer1")()
    units = layer1.featurize(pa.concat_tables([events] * 2))  # 182 events at 91 times
    assert layer1.shortfall(units) is None
    units.columns["timestamps"][:] = units.columns["timestamps"][0]
    assert layer1.shortfall(units) == ("182 events at 1 distinct time(s), fewer than the 3 a "
                                       "temporal train/val/test split needs")
    assert layer1.shortfall(units, "random") is None


def test_benign_only_on_unlabeled_units_says_what_to_do(datasets):
    from training.layers.layer1 import Layer1

    events, _ = collect("zeek_logs", datasets / "zeek_zat/tsv/conn.log")
    with pytest.raises(ConfigError, match=r"benign_only=True but the training events have no "
                                          r"benign \(is_threat 0\) event \(\d+ unknown, 0 threat\); "
                                          r"learn from every event, assumed benign \(leave out "
                                          r"--benign-only / train.benign_only\), or label the data"):
        Layer1().fit(Layer1().featurize(events), benign_only=True)


# -- summaries with missing figures ----------------------------------------------------------


@pytest.mark.parametrize("metrics, figures", [
    ({}, "not evaluated"),
    ({"n_units": 8, "n_samples": 0, "n_alerts": 1, "alert_rate": 0.125, "roc_auc": None},
     "no labels, 1 alert (12.50%) on 8 test edges"),
    ({"n_units": 90, "n_samples": 90, "roc_auc": None, "pr_auc": None, "n_alerts": 0,
      "alert_rate": 0.0, "per_class_metrics": {"benign": {"support": 90},
                                               "threat": {"support": 0}}},
     "one class: 90 benign, 0 threat, 0 alerts (0.00%) on 90 test edges"),
    ({"n_units": 10, "n_samples": 10, "roc_auc": 0.5, "pr_auc": 0.25,
      "per_class_metrics": {"benign": {"support": 5}, "threat": {"support": 5}}},
     "ROC-AUC 0.500, PR-AUC 0.250 on 10 test edges"),
])
def test_a_summary_line_says_which_figures_exist(metrics, figures):
    outcome = LayerOutcome("layer2", "layer2_gnn", "edge", "1.0.0", "production",
                           {"reason": "first"}, metrics, threshold_rule="a rule")
    line = (f"layer2: layer2_gnn 1.0.0 -> production ({figures}; threshold: a rule; first)"
            if metrics else "layer2: layer2_gnn 1.0.0 -> production (not evaluated; threshold: "
                            "a rule; first)")
    assert outcome.summary() == line
    assert LayerOutcome("layer2", "layer2_gnn", "edge", skipped="0 edges").summary() == (
        "layer2: skipped: 0 edges")


# -- one split for every layer ------------------------------------------------------------------


def test_the_events_are_cut_on_the_layers_window_boundaries_and_a_bunched_capture_says_so(
        tmp_path):
    from training.pipeline.config import SplitConfig
    from training.pipeline.splits import event_cut_times

    path = _logged_times(DATASETS / "suricata" / "magnc_server_eve.json", tmp_path)
    events, _ = collect("suricata_logs", path)  # 253 events in four minutes: 15, 9, 32, 197
    notes: list[str] = []
    by_share = event_cut_times(events, "temporal", SplitConfig(), False, [], notes)
    assert not notes and by_share[0].astype("datetime64[m]") == np.datetime64("2023-02-28T11:57")
    # Layer 3's one-minute buckets: the cuts move to whole minutes, and the run says how far.
    at = event_cut_times(events, "temporal", SplitConfig(), False, [60.0], notes)
    assert at == (np.datetime64("2023-02-28T11:56"), np.datetime64("2023-02-28T11:57"))
    assert notes == ["the events bunch at few times, so the split, cut where no unit "
                     "straddles it, holds 24 / 32 / 197 events (asked 60% / 20% / 20%)"]
    # A grace period ending inside a minute ends with that minute, in every layer.
    notes.clear()
    grace = SplitConfig(train_until="2023-02-28T11:56:30")
    assert event_cut_times(events, "temporal", grace, False, [60.0], notes)[1] \
        == np.datetime64("2023-02-28T11:57")
    assert notes == ["train_until 2023-02-28T11:56:30 falls inside a 60-second window: every "
                     "layer's test part starts where that window ends, 2023-02-28T11:57:00Z"]
    # One ending in the last minute would leave no unit to test in layer 3: refused, and why.
    with pytest.raises(ConfigError, match=r"train_until 2023-02-28T11:57:01 falls inside the "
                                          r"events' last 60-second window \(from "
                                          r"2023-02-28T11:57:00Z\): no unit would be left"):
        event_cut_times(events, "temporal", SplitConfig(train_until="2023-02-28T11:57:01"),
                        False, [60.0], notes)
    # With five-minute windows too there are two distinct windows: no three parts to cut, so
    # each layer is cut by its own shares, and the run says so.
    notes.clear()
    assert event_cut_times(events, "temporal", SplitConfig(), False, [60.0, 300.0], notes) is None
    assert notes[0].startswith("the events cannot be cut on boundaries of 300-second windows")
    assert event_cut_times(events, "random", SplitConfig(), False, [60.0], []) is None


def test_a_layer_the_shared_cut_would_starve_is_cut_by_its_own_shares(tmp_path):
    from training.layers.layer1 import Layer1
    from training.pipeline.config import SplitConfig
    from training.pipeline.splits import event_cut_times, layer_parts

    path = _logged_times(DATASETS / "suricata" / "magnc_server_eve.json", tmp_path)
    events, _ = collect("suricata_logs", path)  # 253 events in four minutes: 15, 9, 32, 197
    layer, split = Layer1(), SplitConfig()
    units = layer.featurize(events)
    at = event_cut_times(events, "temporal", split, False, [60.0], [])
    parts, notes = layer_parts(layer, units, None, split, "temporal", 0, at)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [152, 51, 50]
    assert notes == ["the events are cut by the shares alone (24 to train on where the events "
                     "are cut, 152 by the shares); the fused detector's threshold then rests on "
                     "fewer validation events"]
    # Where they cannot be cut at all (nothing after the first cut), the same, saying why.
    late = (np.datetime64("2023-03-01T00:00", "us"), None)
    parts, notes = layer_parts(layer, units, None, split, "temporal", 0, late)
    assert len(parts["train"]) == 152
    assert notes[0].startswith("the events are cut by the shares alone (they cannot be cut where "
                               "the events are: the temporal split leaves val empty")
    # Cut where the events are when that trains on as many: the shared cut stands, unsaid.
    parts, notes = layer_parts(layer, units, None, split, "temporal", 0,
                               event_cut_times(events, "temporal", split, False, [], []))
    assert len(parts["train"]) == 152 and notes == []


def test_test_events_of_types_no_validation_event_has_are_named_in_a_note(datasets):
    # zeek_zat holds captures of 2011 to 2021: the validation part is 40 seconds of ssl, the
    # test part a later capture with every log type (layer 1 alerts on 79% of it).
    import pyarrow.compute as pc

    from training.pipeline.config import SplitConfig
    from training.pipeline.splits import event_cut_times

    def notes_of(folder):
        events, _ = collect("zeek_logs", folder)
        events = events.filter(pc.is_valid(events["timestamp"]))  # as the pipeline does
        notes: list[str] = []
        event_cut_times(events, "temporal", SplitConfig(), False, [60.0], notes)
        return notes

    assert notes_of(datasets / "zeek_zat") == [
        "273 of the 324 test events are of event types no validation event has (conn 50, dns "
        "50, files 50, x509 50, http 28, kerberos 14, stats 7, dce_rpc 7, smb_mapping 7, "
        "smb_files 2, weird 2, capture_loss 2, ntp 2, dhcp 1, packet_filter 1): the thresholds "
        "are set on validation scores, so expect those to alert more than they promise; a "
        "larger val_ratio, or sources that hold them before the test time, cover them"]
    assert notes_of(datasets / "zeek_zat" / "tsv") == []  # one capture, one mix of logs


def test_sensor_records_are_left_out_of_runs_and_scoring_and_counted(datasets, tmp_path):
    # The magnc EVE file holds 13 Suricata stats records: counters of the sensor, which the
    # layers learnt from and scored as events.
    from training.pipeline.inputs import collect_events
    from training.scoring.batch import TrafficOnly
    from training.sources.config import DataSource

    path = datasets / "suricata" / "magnc_server_eve.json"
    collected, _ = collect("suricata_logs", path)
    assert pa.compute.sum(pa.compute.equal(collected["event_type"], "stats")).as_py() == 13
    notes: list[str] = []
    events, _ = collect_events((DataSource("eve", "suricata_logs", {"path": str(path)}),),
                               tmp_path / "events.parquet", None, notes)
    assert events.num_rows == collected.num_rows - 13
    assert "stats" not in events["event_type"].to_pylist()
    assert "13 sensor records of the sources (stats, capture loss, ...) left out: they " \
           "describe the sensor, not traffic" in notes
    traffic = TrafficOnly()  # what `score` applies to each batch it reads
    assert traffic(collected).num_rows == events.num_rows and traffic.left_out == 13


def test_untimed_sensor_logs_are_sensor_records_and_untimed_traffic_is_named(datasets,
                                                                              tmp_path):
    """Slips' test10 folder: its 403 loaded_scripts.log lines (no time) were "events without a
    timestamp" to the pipeline and sensor records to `score` (trial H, D10); now sensor records
    to both. A traffic file without times is still named as such."""
    from training.pipeline.inputs import collect_events
    from training.scoring.batch import TrafficOnly
    from training.sources.config import DataSource

    folder = datasets / "slips_zeek_tsv_test10"
    untimed = tmp_path / "untimed.jsonl"
    untimed.write_text("".join(f'{{"source_ip": "10.0.0.1", "dest_ip": "10.0.0.2", '
                               f'"dest_port": {port}}}\n' for port in (80, 443, 22)))
    notes: list[str] = []
    events, _ = collect_events((DataSource("z", "zeek", {"path": str(folder)}),
                                DataSource("j", "json", {"path": str(untimed)})),
                               tmp_path / "events.parquet", None, notes)
    collected, _ = collect("zeek", folder)
    traffic = TrafficOnly()
    traffic(collected)
    assert traffic.left_out == 407
    assert notes[-2:] == [
        "407 sensor records of the sources (stats, capture loss, ...) left out: they describe "
        "the sensor, not traffic",
        f"skipped 3 events without a timestamp (the layers place events in time): {untimed} (3)"]
    assert events.num_rows == traffic(collected).num_rows


def test_sources_that_give_no_event_are_refused_counting_their_quarantined_record(tmp_path):
    from training.pipeline.inputs import collect_events
    from training.sources.config import DataSource

    broken = tmp_path / "one.jsonl"
    broken.write_text('{"timestamp": "2024-01-01T00:00:00Z", "source_ip": \n')
    source = DataSource("one", "json_file", {"path": str(broken)})
    with pytest.raises(SchemaError, match=r"gave no event: every record \(1\) was quarantined, "
                                          r"by reason: .*; the reason of each is in .*events"
                                          r"\.quarantine\.jsonl$"):
        collect_events((source,), tmp_path / "events.parquet", None, [])
