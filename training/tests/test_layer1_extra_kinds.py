"""Layer 1's extra block leaves out the fields and text that say when or which one rather than
what (`training.features.layer1_extra_kinds`): what each rule leaves out of the real datasets,
what stays a feature, the per-event path and the alert reasons, and that a spec written before
`behaviour_only_extras` existed still gives the vectors it gave."""

from __future__ import annotations

import itertools
import zipfile

import numpy as np
import orjson
import pyarrow as pa
import pytest
import torch

from training.collection.event_dicts import events_table
from training.collection.schema import LABEL_SOURCE_FIELDS
from training.collection.schema_union import concat_tables
from training.data_preprocessor import DataPreprocessor, LayerType
from training.detectors.vae import Layer1VAE
from training.errors import ConfigError
from training.features.encoding import FeatureSpec
from training.features.layer1 import EXTRA, Layer1Featurizer
from training.features.layer1_extra_kinds import (
    FREE_TEXT, IDENTIFIER, TIME, name_kind, reads_text_shapes, text_kind,
)
from training.features.layer1_extras import extra_columns, extra_dims
from training.layers.layer1 import Layer1
from training.tests.conftest import collect

WINDOWS = "windows_otrf_security_datasets"
SOURCES = {
    "windows": ("windows_events", WINDOWS),
    "suricata": ("suricata_logs", "suricata"),
    "zeek port scan": ("zeek_logs", "slips_portscan_zeek"),
    "zeek zat json": ("zeek_logs", "zeek_zat/json"),
    "zeek slips json": ("zeek_logs", "slips_zeek_json_test9"),
    "zeek slips tsv": ("zeek_logs", "slips_zeek_tsv_test10"),
    "zeek sme 11": ("zeek_logs", "slips_ctu_sme_11_labeled_zeek/zeek-labeled"),
    "zeek ssh 006": ("zeek_logs", "stratosphere/006-zeek-scenario-ssh"),
    "stratosphere 008": ("zeek_logs", *(f"stratosphere/008-zeek-mixed/data/{log}.log.labeled"
                                        for log in ("http", "notice", "sip", "ssl"))),
}
# What each rule leaves out of each source: every value of these fields (by name, or every
# value by its text), of the fields the transform before `behaviour_only_extras` encoded.
LEFT_OUT = {
    "windows": {
        TIME: ["CreationUtcTime", "TimeCreated", "UtcTime"],
        IDENTIFIER: ["ExecutionProcessID", "FilterRTID", "HandleId", "LayerRTID", "LogonId",
                     "NewProcessId", "ParentProcessId", "ProcessID", "ProcessId",
                     "ProviderGuid", "RemoteMachineID", "RemoteUserID", "ServiceSid",
                     "SourceHandleId", "SourceProcessId", "SourceThreadId", "SubjectLogonId",
                     "SubjectUserSid", "TargetHandleId", "TargetLinkedLogonId",
                     "TargetLogonId", "TargetProcessId", "TargetUserSid",
                     "TerminalSessionId", "ThreadID", "TransactionId", "UserID"],
        FREE_TEXT: ["Message"]},
    "suricata": {TIME: ["flow.end", "flow.start"],
                 IDENTIFIER: ["dns.id", "dns.tx_id", "fileinfo.tx_id", "tls.fingerprint",
                              "tls.serial"]},
    "zeek port scan": {IDENTIFIER: ["orig_l2_addr", "resp_l2_addr"]},
    "zeek zat json": {
        TIME: ["certificate.not_valid_after", "certificate.not_valid_before", "org_time",
               "rec_time", "ref_time", "till", "times.accessed", "times.changed",
               "times.created", "times.modified", "ts_delta", "xmt_time"],
        IDENTIFIER: ["certificate.serial", "client_addr", "mac", "md5", "ref_id", "sha1"]},
    "zeek slips json": {
        TIME: ["certificate.not_valid_after", "certificate.not_valid_before", "compile_ts",
               "date", "lease_time"],
        IDENTIFIER: ["assigned_addr", "certificate.serial", "client_addr", "dst_mac", "mac",
                     "md5", "orig_h", "orig_hw", "orig_l2_addr", "requested_addr", "resp_h",
                     "resp_hw", "resp_l2_addr", "server_addr", "src_mac"],
        FREE_TEXT: ["msg"]},
    "zeek slips tsv": {
        TIME: ["certificate.not_valid_after", "certificate.not_valid_before", "ts_delta"],
        IDENTIFIER: ["certificate.serial", "md5", "sha1"],
        FREE_TEXT: ["message", "msg"]},
    "zeek sme 11": {
        TIME: ["lease_time"],
        IDENTIFIER: ["assigned_addr", "client_addr", "client_initial_dcid", "client_scid",
                     "mac", "server_addr", "server_scid"],
        FREE_TEXT: ["msg"]},
    "zeek ssh 006": {IDENTIFIER: ["host_key"]},
    "stratosphere 008": {TIME: ["date", "notary.first_seen", "notary.last_seen"],
                         IDENTIFIER: ["call_id", "dst", "src"], FREE_TEXT: ["msg"]},
}
# Fields that describe what happened: still features (a sample per source).
KEPT = {
    "windows": ["EventID", "LogonType", "Task", "GrantedAccess", "AccessMask", "Keywords",
                "Category", "EnabledPrivilegeList"],
    "suricata": ["tcp.tcp_flags_ts", "tcp.tcp_flags_tc", "dns.rrtype", "http.http_method",
                 "tls.ja3.hash", "tls.version"],
    "stratosphere 008": ["method", "status_code", "user_agent", "note"],
    "zeek sme 11": ["qtype", "qtype_name", "history"],
}
OLD = Layer1Featurizer(behaviour_only_extras=False)  # the transform before the setting


@pytest.fixture(scope="module")
def tables(datasets) -> dict[str, pa.Table]:
    return {name: concat_tables([collect(kind, datasets / path)[0] for path in paths])
            for name, (kind, *paths) in SOURCES.items()}


@pytest.fixture(scope="module")
def vectors(tables) -> dict[str, np.ndarray]:
    """Each source's vectors with the default featurizer."""
    return {name: Layer1Featurizer().featurize(table) for name, table in tables.items()}


def left_out(table: pa.Table) -> dict[str, list[str]]:
    """Per rule, the fields of `table` the old transform encoded and the rules leave out: by
    name, or every value by its text (a field with only some values left out is named so)."""
    found: dict[str, list[str]] = {}
    for name, column in extra_columns(table, LABEL_SOURCE_FIELDS):
        if extra_dims(name, column, True) is None:
            continue
        kind = name_kind(name)
        if kind is None and pa.types.is_string(column.type) and reads_text_shapes(name):
            kinds = {text_kind(v) for v in column.drop_null().unique().to_pylist()} - {None}
            if kinds:
                kind = (kinds.pop() if len(kinds) == 1 and None not in kinds
                        else f"some values: {sorted(map(str, kinds))}")
        if kind is not None:
            found.setdefault(kind, []).append(name)
    return {kind: sorted(names) for kind, names in found.items()}


def test_each_rule_leaves_out_these_fields_of_the_real_datasets(tables):
    assert {name: left_out(table) for name, table in tables.items()} == LEFT_OUT


def test_the_left_out_fields_set_no_dim_and_the_others_encode_as_before(tables, vectors):
    for name, table in tables.items():
        gone = [f for fields in LEFT_OUT[name].values() for f in fields]
        assert np.array_equal(vectors[name], OLD.featurize(table.drop_columns(gone))), name
    # What changes (a left-out value can share its bucket with a kept one that sets it too):
    # the MACs, in 50 of the 51 port-scan events that have them; times and ids, in 926 of the
    # 958 Windows events.
    changed = {name: (vectors[name] != OLD.featurize(tables[name])).any(axis=1).sum()
               for name in ("zeek port scan", "windows")}
    assert changed["zeek port scan"] == 50
    assert changed["windows"] > 0.9 * tables["windows"].num_rows


def test_fields_that_describe_behaviour_stay_features(tables, vectors):
    for name, fields in KEPT.items():
        table = tables[name]
        encoded = dict(extra_columns(table, LABEL_SOURCE_FIELDS, behaviour_only=True))
        for field in fields:
            dims, values = extra_dims(field, encoded[field], True, behaviour_only=True)
            present = encoded[field].is_valid().to_numpy(zero_copy_only=False)
            assert present.any() and (dims[present] >= 0).all(), f"{name}: {field}"
        # and they reach the vectors: without them, some bucket of the extra block changes
        without = table.drop_columns(fields)
        assert (vectors[name] != Layer1Featurizer().featurize(without)).any(), name


def test_no_alert_reason_names_a_time_an_identifier_or_a_message(datasets):
    # The trial's lsass run: reasons said TimeCreated=2020-10-18 07:50:06.010 and Message=...
    # Which fields a reason can name is the featurizer's doing, whatever the weights: a VAE
    # as built (seeded) picks some set bucket of each event as its costliest.
    torch.manual_seed(0)
    layer, model = Layer1(), Layer1VAE(hidden_dim=32, latent_dim=8, dropout=0.0).eval()
    lsass, _ = collect("windows_events", datasets / WINDOWS / "psh_lsass_memory_dump_comsvcs.zip")
    reasons = layer.explain(model, layer.featurize(lsass), np.arange(lsass.num_rows),
                            events=lsass)
    extra = [r.observed or "" for unit in reasons for r in unit if r.field == "extra fields"]
    assert len(extra) == lsass.num_rows == 175
    gone = [f for fields in LEFT_OUT["windows"].values() for f in fields]
    named = [text for text in extra if any(f"{field}=" in text for field in gone)]
    assert named == []
    assert all("=" in text for text in extra)  # each names the kept fields in its bucket


def _lsass_dicts(datasets, n: int) -> list[dict]:
    with zipfile.ZipFile(datasets / WINDOWS / "psh_lsass_memory_dump_comsvcs.zip") as archive:
        with archive.open(archive.namelist()[0]) as lines:
            return [orjson.loads(line) for line in itertools.islice(lines, n) if line.strip()]


HAND_MADE = [
    {"event_id": "w1", "event_type": "sysmon:10", "host": "WORKSTATION5", "EventID": 10,
     "TimeCreated": "2020-10-18 07:50:06.010", "SourceProcessId": "0x1c58",
     "SourceThreadId": "1388", "GrantedAccess": "0x1410", "Task": "10",
     "Message": "Process accessed:\r\nRuleName: -\r\nUtcTime: 2020-10-18 11:50:05.910"},
    {"event_id": "z1", "event_type": "conn", "protocol": "tcp",
     "orig_l2_addr": "08:00:07:f8:3d:02", "resp_l2_addr": "d8:58:d7:00:67:11", "history": "S",
     "flow.start": "2023-02-28T11:34:02.010070+0000"},
]


def test_the_per_event_path_leaves_out_what_the_batch_path_does(datasets):
    for featurizer in (Layer1Featurizer(), OLD):
        layer = Layer1(featurizer)
        preprocessor = DataPreprocessor(layers=[layer])
        for event in HAND_MADE + _lsass_dicts(datasets, 12):
            one = preprocessor.preprocess_event(event, layers=[LayerType.LAYER1_SENSORY])
            batch = layer.featurize(events_table([event])).features[0]
            assert np.array_equal(one.features, batch), event.get("EventID")
    new = Layer1Featurizer().featurize(events_table(HAND_MADE))
    # EventID, GrantedAccess and Task's buckets; the history's
    assert [list(np.flatnonzero(row[EXTRA:]) + EXTRA) for row in new] == [[115, 117, 118], [112]]


# Written by the code before `behaviour_only_extras` (commit 20a70a8): Layer1Featurizer().spec.
OLD_SPEC = (
    '{"config":{"dim":128,"extra_buckets":16,"id_fields":["uid","uids","fuid","fuids",'
    '"conn_uids","parent_fuid","id","trans_id","flow_id","tx_id","pcap_cnt","RecordNumber",'
    '"ProcessGuid","ParentProcessGuid","SourceProcessGUID","TargetProcessGUID","LogonGuid",'
    '"ActivityID"],"label_fields":["label","Label","detailedlabel","detailed-label",'
    '"detailed_label","is_threat","attack_type","raw.label","raw.is_threat","raw.attack_type",'
    '"difficulty","difficulty_level","attack_cat","mitre_technique","alert.*","flow.alerted",'
    '"suricata.eve.alert.*","suricata.eve.flow.alerted","rule.*"],"numbers_in_text":true,'
    '"robust":false,"volume_caps":{"bytes_received":10000000000.0,"bytes_sent":10000000000.0,'
    '"duration":86400.0,"packets_received":10000000.0,"packets_sent":10000000.0}},'
    '"fingerprint":"59ed9ad496efaec2a14397d621fb82a784eba0cdf186ebc97a0c66c479b328be",'
    '"fitted":null,"layer":"layer1","version":"l1.v3"}')
# Its extra block (dims 112-127) for HAND_MADE, as that code wrote it.
OLD_EXTRA = [[0.0, 0.0, 0.3491891324520111, 0.1157102957367897, 0.0, 1.0, 0.1157102957367897,
              1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0],
             [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]]


def test_a_spec_written_before_the_setting_gives_the_same_vectors(tables):
    spec = FeatureSpec.from_json(OLD_SPEC)
    featurizer = Layer1Featurizer.from_spec(spec)
    assert featurizer.behaviour_only_extras is False
    assert featurizer.spec.fingerprint == spec.fingerprint  # the model's spec still matches
    vectors = featurizer.featurize(events_table(HAND_MADE))
    assert np.array_equal(vectors[:, EXTRA:], np.array(OLD_EXTRA, np.float32))
    windows = tables["windows"]
    assert np.array_equal(featurizer.featurize(windows), OLD.featurize(windows))
    new = Layer1Featurizer().spec
    assert new.config["behaviour_only_extras"] is True and new.fingerprint != spec.fingerprint
    assert Layer1Featurizer.from_spec(new).behaviour_only_extras is True


def test_behaviour_only_extras_must_be_a_bool():
    with pytest.raises(ConfigError, match="behaviour_only_extras must be True or False, got 'no'"):
        Layer1Featurizer(behaviour_only_extras="no")


@pytest.mark.parametrize("name,kind", [
    ("TimeCreated", TIME), ("compile_ts", TIME), ("times.created", TIME), ("till", TIME),
    ("tcp.tcp_flags_ts", None), ("notary.times_seen", None), ("timedout", None),
    ("ThreadID", IDENTIFIER), ("dns.id", IDENTIFIER), ("SubjectUserSid", IDENTIFIER),
    ("EventID", None), ("signature_id", None), ("EventIdx", None), ("seen_bytes", None),
    ("Message", FREE_TEXT), ("msg", FREE_TEXT), ("status_msg", None), ("error_msg", None)])
def test_a_field_name_says_time_identifier_or_free_text(name, kind):
    assert name_kind(name) == kind


@pytest.mark.parametrize("text,kind", [
    ("2020-10-18 07:50:06.010", TIME), ("2023-02-28T11:34:02.304590+0000", TIME),
    ("Tue, 11 Jan 2022 16:32:50 +0000", TIME), ("9/22/2020 2:53:04 PM", TIME),
    ("08:00:07:f8:3d:02", IDENTIFIER), ("{5770385F-C22A-43E0-BF4C-06F5698FFBD9}", IDENTIFIER),
    ("b20996efc49d181769db184aeea375a2", IDENTIFIER), ("771413362934034335154792", IDENTIFIER),
    ("10.0.2.15", IDENTIFIER), ("fe80::90e:17af:263c:5209", IDENTIFIER),
    ("The audit log was cleared.\r\nSubject:\r\n\tAccount Name:\twardog", FREE_TEXT),
    ("%%1538\n\t\t\t\t%%4432\n\t\t\t\t", None), ("10.0.18362.959", None), ("GET", None),
    ("ShADadFr", None), ("deadbeefdeadbeefdead", None), ("0x3e7", None), ("277", None),
    ("S-1-16-12288", None), ("The System log file was cleared.", None)])
def test_a_text_is_shaped_as_a_time_an_identifier_or_free_text(text, kind):
    assert text_kind(text) == kind
