"""training.collection.canonical: hand-made raw batches mapped onto the canonical schema by real sources."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest

from training.collection.canonical import canonicalize, expand_raw_data
from training.collection.schema import CANONICAL_FIELDS
from training.kernels.community_id import community_id_v1
from training.kernels.netaddr import pack_ips
from training.sources import DataSource, RawBatch, Reject, Source, create_source

T0 = 1_704_164_645  # 2024-01-02T03:04:05Z
T0_US = T0 * 1_000_000
HEX16 = re.compile(r"[0-9a-f]{16}")
# 10.0.0.1:1234 -> 10.0.0.2:80 over TCP
TCP_10_0_0_1_TO_2_PORT_80 = "1:LzRJKgjvUJlC/VQLtISlfACcEzA="


def source(kind: str = "json_file", **kwargs) -> Source:
    """A real source; canonicalize never reads its path."""
    return create_source(DataSource("src", kind, {"path": "/no/such/file"}, **kwargs))


def batch(columns: dict | pa.Table, *, lines: Sequence[int] | None = None,
          records: Sequence[int] | None = None, rejects: Sequence[Reject] = (),
          texts: Sequence[str] | None = None, **fields) -> RawBatch:
    table = columns if isinstance(columns, pa.Table) else pa.table(columns)
    n = table.num_rows
    return RawBatch(
        table=table, stream="in.jsonl",
        lines=np.asarray(lines if lines is not None else np.arange(n) + 1, dtype=np.int64),
        records=np.asarray(records if records is not None else np.arange(n), dtype=np.int64),
        start={"offset": 0, "line": 1, "record": 0}, end={"offset": 0, "line": n + 1, "record": n},
        rejects=list(rejects), spans=_spans(texts) if texts is not None else None, **fields,
    )


def _spans(texts: Sequence[str]):
    """The rows' raw text as a reader hands it over: one buffer and a range per row."""
    encoded = [t.encode() for t in texts]
    ends = np.cumsum([len(t) + 1 for t in encoded]) - 1
    starts = ends - np.array([len(t) for t in encoded])
    return lambda: (b"\n".join(encoded), starts, ends)


def column(result, name: str) -> list:
    return result.table[name].to_pylist()


def ids_of(columns: dict, src: Source | None = None) -> list[str]:
    return column(canonicalize(batch(columns), src or source()), "event_id")


# -- columns: coalescing, consumed and extra -------------------------------------------------

def test_first_non_null_candidate_wins_and_the_candidates_stay_as_extras():
    result = canonicalize(batch({
        "source_ip": [None, "10.0.0.2", "10.0.0.9", None],
        "src_ip": ["10.0.0.1", None, "10.0.0.3", None],
    }), source())
    assert column(result, "source_ip") == ["10.0.0.1", "10.0.0.2", "10.0.0.9", None]
    # Every source_ip value is in the canonical column, so it is consumed; src_ip lost row 2
    # (10.0.0.3) to it, so src_ip stays as an extra column and nothing is lost.
    assert result.table.column_names == [*CANONICAL_FIELDS, "src_ip"]
    assert column(result, "src_ip") == ["10.0.0.1", None, "10.0.0.3", None]


def test_candidates_that_never_overlap_are_all_consumed():
    # e.g. Elasticsearch documents of two shippers in one page: ECS source.ip and Suricata src_ip
    result = canonicalize(batch({
        "source_ip": [None, "10.0.0.2", None],
        "src_ip": ["10.0.0.1", None, None],
    }), source())
    assert column(result, "source_ip") == ["10.0.0.1", "10.0.0.2", None]
    assert result.table.column_names == list(CANONICAL_FIELDS)


def test_single_candidates_are_consumed_and_unknown_fields_kept_unchanged():
    result = canonicalize(batch({
        "ts": [float(T0)], "dport": ["443"], "proto": [6], "Label": ["benign"],
        "note": ["hello"], "score": [0.5],
    }), source())
    assert result.table.column_names == [*CANONICAL_FIELDS, "note", "score"]
    row = result.table.to_pylist()[0]
    assert result.table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert result.table["timestamp"].cast(pa.int64()).to_pylist() == [T0_US]
    assert (row["dest_port"], row["protocol"], row["label"], row["is_threat"]) == (
        443, "tcp", "benign", 0)
    assert (row["note"], row["score"], row["source"], row["event_type"]) == (
        "hello", 0.5, "src", "event")
    assert result.table.schema.field("dest_port").type == pa.int32()


def test_an_extra_named_like_a_canonical_column_is_kept_as_raw_name():
    # Zeek files.log: `source` says which protocol carried the file (HTTP), a field like any.
    result = canonicalize(batch({"source": ["HTTP"], "user": ["bob"]}), source("zeek"))
    assert column(result, "source") == ["src"]  # the DataSource's name
    assert column(result, "raw.source") == ["HTTP"]
    assert column(result, "user") == ["bob"]
    assert "raw.user" not in result.table.column_names


def test_our_own_event_files_source_column_is_the_events_source_not_an_extra():
    # What `collect` writes: the source the events were first collected from, bookkeeping.
    result = canonicalize(batch({"source": ["sensor-7", None], "user": ["bob", "ann"]}), source())
    assert column(result, "source") == ["sensor-7", "src"]  # unset: the DataSource's name
    assert "raw.source" not in result.table.column_names


def test_a_list_candidate_gives_its_first_item_and_stays_as_an_extra():
    # Zeek files.log: tx_hosts is a set[addr].
    result = canonicalize(batch({"tx_hosts": [["10.0.0.1", "10.0.0.2"], [], None]}),
                          source("zeek_logs"))
    assert column(result, "source_ip") == ["10.0.0.1", None, None]
    assert column(result, "tx_hosts") == [["10.0.0.1", "10.0.0.2"], [], None]


def test_event_type_from_the_field_else_the_batch_else_event():
    zeek = source("zeek_logs")
    typed = canonicalize(batch({"_path": ["dns", None]}, event_type="conn"), zeek)
    assert column(typed, "event_type") == ["dns", "conn"]
    assert column(canonicalize(batch({"x": [1]}), zeek), "event_type") == ["event"]


def test_zeek_direction_is_derived_from_local_orig_and_local_resp():
    result = canonicalize(batch({"local_orig": [True, True, False, False],
                                 "local_resp": [True, False, True, False]}), source("zeek_logs"))
    assert column(result, "direction") == ["internal", "outbound", "inbound", "external"]


# -- bad values and rejects ------------------------------------------------------------------

def test_a_bad_value_rejects_its_row_with_file_line_field_reason_and_text():
    result = canonicalize(batch(
        {"timestamp": ["2024-01-02T03:04:05Z", "nope", "2024-01-02T03:04:06Z",
                       "2024-01-02T03:04:07Z"],
         "dest_port": [80, 443, 70000, 22],
         "src_ip": ["10.0.0.1", "10.0.0.1", "10.0.0.1", "1.2.3"]},
        lines=[2, 4, 5, 7], records=[0, 2, 3, 5], texts=["L2", "L4", "L5", "L7"]), source())
    assert column(result, "dest_port") == [80]
    assert result.records.tolist() == [0]
    assert result.rejects == [
        Reject("in.jsonl", 4, 2, "timestamp",
               "timestamp = 'nope' is not a timestamp (ISO 8601 or Unix epoch) between 1970 "
               "and 2199", "L4"),
        Reject("in.jsonl", 5, 3, "dest_port", "dest_port = 70000 is not a port in 0..65535", "L5"),
        Reject("in.jsonl", 7, 5, "src_ip", "src_ip = '1.2.3' is not an IP address", "L7"),
    ]


def test_a_row_with_two_bad_values_is_rejected_once_for_the_first_field():
    result = canonicalize(batch({"timestamp": ["nope", "2024-01-02T03:04:05Z"],
                                 "dest_port": [70000, 80]}), source())
    assert [(r.record, r.field) for r in result.rejects] == [(0, "timestamp")]
    assert column(result, "dest_port") == [80]
    assert result.records.tolist() == [1]


def test_rows_without_a_line_number_are_rejected_with_line_none():
    result = canonicalize(batch({"dest_port": [-1, 1]}, lines=[-1, -1]), source())
    # A columnar batch has no raw text: the record is shown as the JSON of its values.
    assert result.rejects == [Reject("in.jsonl", None, 0, "dest_port",
                                     "dest_port = -1 is not a port in 0..65535",
                                     '{"dest_port":-1}')]


def test_reader_rejects_and_value_rejects_are_merged_in_record_order():
    reader_rejects = [Reject("in.jsonl", 1, 0, None, "malformed JSON", "{"),
                      Reject("in.jsonl", 4, 3, None, "malformed JSON", "}")]
    result = canonicalize(batch({"dest_port": [1, 99999, 3]}, lines=[2, 3, 5], records=[1, 2, 4],
                                rejects=reader_rejects), source())
    assert [(r.record, r.line, r.field) for r in result.rejects] == [
        (0, 1, None), (2, 3, "dest_port"), (3, 4, None)]
    assert result.records.tolist() == [1, 4]
    assert column(result, "dest_port") == [1, 3]


# -- labels ----------------------------------------------------------------------------------

LABELS = {"label": ["benign", "Malicious", None, "background", "neptune"],
          "detailed_label": [None, "C&C", "-", None, "DDoS"]}


def test_labels_through_the_default_label_map_and_attack_type():
    result = canonicalize(batch(LABELS), source())
    assert column(result, "label") == ["benign", "Malicious", None, "background", "neptune"]
    assert column(result, "is_threat") == [0, 1, -1, -1, 1]
    # The detailed label where there is one, else the label of a threat; "-" is no detail.
    assert column(result, "attack_type") == [None, "C&C", None, None, "DDoS"]
    assert "detailed_label" not in result.table.column_names  # consumed as attack_type


def test_label_map_overrides_and_default_label_for_unlabelled_records():
    result = canonicalize(batch(LABELS),
                          source(label_map={"Background": 0}, default_label="Botnet"))
    assert column(result, "label") == ["benign", "Malicious", "Botnet", "background", "neptune"]
    assert column(result, "is_threat") == [0, 1, 1, 0, 1]
    assert column(result, "attack_type") == [None, "C&C", "Botnet", None, "DDoS"]


def test_default_label_without_a_label_column():
    result = canonicalize(batch({"x": [1, 2]}), source(default_label="benign"))
    assert column(result, "label") == ["benign", "benign"]
    assert column(result, "is_threat") == [0, 0]
    assert column(result, "attack_type") == [None, None]
    unlabelled = canonicalize(batch({"x": [1]}), source())
    assert (column(unlabelled, "label"), column(unlabelled, "is_threat")) == ([None], [-1])


def test_a_given_is_threat_column_wins_over_the_label_map():
    result = canonicalize(batch({"label": ["benign", "Malicious", "normal"],
                                 "is_threat": ["1", "0", None]}), source())
    assert column(result, "is_threat") == [1, 0, 0]
    assert column(result, "attack_type") == ["benign", None, None]


def test_an_is_threat_outside_minus_one_to_one_rejects_the_row():
    result = canonicalize(batch({"is_threat": [1, 2, -1]}), source())
    assert column(result, "is_threat") == [1, -1]
    assert [(r.record, r.field, r.reason) for r in result.rejects] == [
        (1, "is_threat", "is_threat = 2 is not an is_threat value in -1..1")]


def test_numeric_labels_are_text():
    result = canonicalize(batch({"label": [0, 1, None]}), source())
    assert column(result, "label") == ["0", "1", None]
    assert column(result, "is_threat") == [0, 1, -1]


# -- event ids -------------------------------------------------------------------------------

def test_a_mapped_event_id_is_used_and_rows_without_one_get_a_content_hash():
    ids = ids_of({"event_id": ["E1", None], "a": [1, 2]})
    assert ids[0] == "E1"
    assert HEX16.fullmatch(ids[1])
    assert ids_of({"_id": [5, 6]}) == ["5", "6"]  # numbers become text


def test_zeek_conn_rows_get_conn_uid_ids():
    result = canonicalize(batch({"uid": ["C1", "C2"], "ts": [float(T0), float(T0)]},
                                event_type="conn", id_columns=("uid",)), source("zeek_logs"))
    assert column(result, "event_id") == ["conn:C1", "conn:C2"]
    assert column(result, "event_type") == ["conn", "conn"]
    assert column(result, "uid") == ["C1", "C2"]  # still kept as an extra


def test_id_columns_missing_from_the_table_fall_back_to_content_hashes():
    result = canonicalize(batch({"ts": [float(T0)]}, event_type="conn", id_columns=("uid",)),
                          source("zeek_logs"))
    assert HEX16.fullmatch(column(result, "event_id")[0])


def test_content_hash_is_32_hex_the_same_for_the_same_record_in_any_column_order():
    first = ids_of({"a": [1, 1, 1], "b": ["x", "x", "y"], "c": [2.5, 2.5, 2.5]})
    reordered = ids_of({"c": [2.5], "b": ["x"], "a": [1]})
    assert all(HEX16.fullmatch(i) for i in first)
    assert first[0] == first[1] == reordered[0]
    assert first[2] != first[0]  # one value changed
    assert ids_of({"a": [2], "b": ["x"], "c": [2.5]})[0] != first[0]
    assert ids_of({"a": [1], "b": ["x"], "d": [2.5]})[0] != first[0]  # same value, other field


def test_content_hash_does_not_depend_on_the_source_name_or_type():
    other = create_source(DataSource("other", "csv_file", {"path": "/no/such/file"}))
    assert ids_of({"a": [1]}, source()) == ids_of({"a": [1]}, other)


def test_content_hash_does_not_depend_on_the_other_records_of_the_batch():
    alone = ids_of({"a": [1], "b": ["x"]})
    with_other = ids_of({"a": [1, 2], "b": ["x", "y"], "c": [None, 5]})
    assert with_other[0] == alone[0]


def test_content_hash_of_raw_lines_ignores_the_batch_and_the_parse():
    first = canonicalize(batch({"a": [1]}, texts=['{"a": 1}']), source())
    other = canonicalize(batch({"a": [1.0, 2.5], "c": [None, 1]},
                               texts=['{"a": 1}', '{"a": 2.5, "c": 1}']), source())
    assert column(other, "event_id")[0] == column(first, "event_id")[0]
    assert column(other, "event_id")[1] != column(first, "event_id")[0]


# -- Community ID ----------------------------------------------------------------------------

def _expected_community_ids(src: list[str], dst: list[str], proto: list[int], sport: list[int],
                            dport: list[int]) -> list[str | None]:
    sp, sv = pack_ips(pa.array(src))
    dp, dv = pack_ips(pa.array(dst))
    return community_id_v1(sp, sv, dp, dv, np.array(proto), np.array(sport),
                           np.array(dport)).to_pylist()


def test_community_id_is_computed_for_flows_that_lack_one():
    result = canonicalize(batch({
        "src_ip": ["10.0.0.1", "2001:db8::1", "10.0.0.1"],
        "dst_ip": ["10.0.0.2", "2001:db8::2", "10.0.0.2"],
        "src_port": [1234, 5353, 1234], "dst_port": [80, 53, 80],
        "proto": ["tcp", "UDP", "6"],
    }), source())
    expected = _expected_community_ids(["10.0.0.1", "2001:db8::1", "10.0.0.1"],
                                       ["10.0.0.2", "2001:db8::2", "10.0.0.2"],
                                       [6, 17, 6], [1234, 5353, 1234], [80, 53, 80])
    assert column(result, "community_id") == expected
    # sha1 of seed 0, 10.0.0.1, 10.0.0.2, proto 6, pad 0, ports 1234 and 80, checked with hashlib
    assert expected[0] == TCP_10_0_0_1_TO_2_PORT_80
    assert expected[0] == expected[2]


def test_community_id_is_direction_free_and_null_without_a_port_for_tcp():
    result = canonicalize(batch({
        "src_ip": ["10.0.0.1", "10.0.0.2", "10.0.0.1"],
        "dst_ip": ["10.0.0.2", "10.0.0.1", "10.0.0.2"],
        "src_port": [1234, 80, None], "dst_port": [80, 1234, 80], "proto": ["tcp"] * 3,
    }), source())
    ids = column(result, "community_id")
    assert ids[0] == ids[1] == TCP_10_0_0_1_TO_2_PORT_80
    assert ids[2] is None


def test_a_given_community_id_is_kept_and_missing_ones_filled():
    result = canonicalize(batch({
        "src_ip": ["10.0.0.1", "10.0.0.1"], "dest_ip": ["10.0.0.2", "10.0.0.2"],
        "src_port": [1234, 1234], "dest_port": [80, 80], "proto": ["TCP", "TCP"],
        "community_id": ["1:given-by-the-sensor", None],
    }), source("suricata_logs"))
    assert column(result, "community_id") == ["1:given-by-the-sensor",
                                              TCP_10_0_0_1_TO_2_PORT_80]


def test_zeek_icmp_over_ipv6_uses_protocol_58():
    result = canonicalize(batch({
        "id.orig_h": ["fe80::1", "10.0.0.1"], "id.orig_p": [135, 8],
        "id.resp_h": ["ff02::1", "10.0.0.2"], "id.resp_p": [0, 0], "proto": ["icmp", "icmp"],
    }), source("zeek_logs"))
    expected = _expected_community_ids(["fe80::1", "10.0.0.1"], ["ff02::1", "10.0.0.2"],
                                       [58, 1], [135, 8], [0, 0])
    as_icmp4 = _expected_community_ids(["fe80::1"], ["ff02::1"], [1], [135], [0])
    assert column(result, "community_id") == expected
    assert expected[0] != as_icmp4[0]
    assert column(result, "protocol") == ["icmp", "icmp"]  # the text stays as Zeek wrote it


def test_no_community_id_without_addresses():
    result = canonicalize(batch({"proto": ["tcp"], "dst_port": [80]}), source())
    assert column(result, "community_id") == [None]


# -- raw_data written by our own save_to_file ------------------------------------------------

def test_expand_raw_data_flattens_nested_columns_unless_the_name_is_taken():
    table = pa.table({"timestamp": ["2024-01-02T03:04:05Z"], "raw_data.user": ["bob"],
                      "raw_data.timestamp": ["orig"], "raw_data.x.y": [3]})
    assert expand_raw_data(table).column_names == ["timestamp", "user", "raw_data.timestamp", "x.y"]
    result = canonicalize(batch(table), source())
    assert column(result, "user") == ["bob"]
    assert column(result, "raw_data.timestamp") == ["orig"]
    assert column(result, "x.y") == [3]


def test_expand_raw_data_parses_a_json_text_column():
    table = pa.table({"event_id": ["E1", "E2", "E3"],
                      "raw_data": ['{"user": "bob", "x": {"y": 1}, "event_id": "other"}', None,
                                   "{}"]})
    expanded = expand_raw_data(table)
    assert expanded.to_pylist() == [{"event_id": "E1", "user": "bob", "x.y": 1},
                                    {"event_id": "E2", "user": None, "x.y": None},
                                    {"event_id": "E3", "user": None, "x.y": None}]
    assert table.column_names == ["event_id", "raw_data"]  # the input is not changed
    result = canonicalize(batch(table), source())
    assert column(result, "user") == ["bob", None, None]
    assert column(result, "event_id") == ["E1", "E2", "E3"]
    assert result.table.column_names == [*CANONICAL_FIELDS, "x.y"]


def test_expand_raw_data_leaves_other_tables_alone():
    table = pa.table({"a": [1], "raw": ["x"]})
    assert expand_raw_data(table).equals(table)


@pytest.mark.parametrize("text", ["not json", "[1, 2]"])
def test_a_raw_data_text_that_is_not_our_json_object_stays_an_ordinary_field(text):
    # A CSV export whose raw_data column holds raw log lines is not our format: keep the text.
    result = canonicalize(batch({"event_id": ["E1", "E2"],
                                 "raw_data": ['{"user": "bob"}', text]}), source())
    assert column(result, "event_id") == ["E1", "E2"]
    assert column(result, "raw_data") == ['{"user": "bob"}', text]
    assert column(result, "user") == [None, None]


def test_row_ids_apply_only_to_rows_of_the_log_type_they_belong_to():
    # A file named conn.json whose records say they come from dns.log: DNS uids repeat across
    # rows, so those rows must be identified by content, not as "conn:<uid>".
    result = canonicalize(batch({"_path": ["conn", "dns", "dns"], "uid": ["C1", "C1", "C1"],
                                 "query": [None, "a.example", "b.example"]},
                                event_type="conn", id_columns=("uid",)), source("zeek_logs"))
    ids = column(result, "event_id")
    assert ids[0] == "conn:C1"
    assert HEX16.fullmatch(ids[1]) and HEX16.fullmatch(ids[2]) and ids[1] != ids[2]
    assert column(result, "event_type") == ["conn", "dns", "dns"]


def test_community_id_uses_the_first_address_candidate_present_in_each_row():
    # Windows exports name addresses differently per event: SourceIp (Sysmon) or
    # SourceAddress (Security); each row takes whichever it has.
    result = canonicalize(batch({
        "SourceIp": ["10.0.0.1", None], "SourceAddress": [None, "10.0.0.1"],
        "DestinationIp": ["10.0.0.2", "10.0.0.2"], "Protocol": ["6", "6"],
        "SourcePort": [1234, 1234], "DestinationPort": [80, 80],
    }), source("windows_events"))
    assert column(result, "community_id") == [TCP_10_0_0_1_TO_2_PORT_80] * 2


def test_times_out_of_int64_and_missing_times_reject_their_rows_only():
    times = ["2024-01-02T03:04:05Z", "1e30", "12345678901234567890123", None, "", "9999-01-01"]
    out = canonicalize(batch({"timestamp": times, "n": list(range(6))}), source(),
                       require_time=True)
    assert out.table["n"].to_pylist() == [0]
    assert [(r.record, r.field, r.reason) for r in out.rejects] == [
        (1, "timestamp", "timestamp = '1e30' is not a timestamp (ISO 8601 or Unix epoch) "
                         "between 1970 and 2199"),
        (2, "timestamp", "timestamp = '12345678901234567890123' is not a timestamp (ISO 8601 "
                         "or Unix epoch) between 1970 and 2199"),
        (3, "timestamp", "timestamp = None is missing; every record of a source with a time "
                         "field needs a time"),
        (4, "timestamp", "timestamp = '' is missing; every record of a source with a time field "
                         "needs a time"),
        (5, "timestamp", "timestamp = '9999-01-01' is not a timestamp (ISO 8601 or Unix epoch) "
                         "between 1970 and 2199"),
    ]
    # No time field at all (an NSL-KDD export): collected without a time.
    timeless = canonicalize(batch({"n": [1, 2]}), source(), require_time=True)
    assert timeless.table["timestamp"].null_count == 2 and not timeless.rejects
    # Event dicts for the featurizers may lack a time (its dims stay empty).
    assert canonicalize(batch({"timestamp": [None]}), source()).rejects == []


def test_only_ascii_digits_are_protocol_numbers():
    out = canonicalize(batch({"protocol": ["6", "17", "²", "١٧", "TCP", "-"]}), source())
    assert out.table["protocol"].to_pylist() == ["tcp", "udp", "²", "١٧", "tcp", None]


def test_ipv6_addresses_are_stored_in_their_compressed_form(datasets, tmp_path):
    # Sysmon of the OTRF psexec recording writes fe80:0:0:0:90e:17af:263c:5209; entities, alert
    # rows and incidents printed it so, beside fe80::... of other sensors for the same host.
    import json

    from training.collection.canonical_record import canonical_record
    from training.collection.collector import DataCollector
    from training.collection.event_dicts import EVENT_SOURCE
    from training.errors import CheckpointError
    from training.tests.conftest import collect

    events, _ = collect("windows_events",
                        datasets / "windows_otrf_security_datasets/cmd_psexec_lsa_secrets_dump.zip")
    ipv6 = {v for c in ("source_ip", "dest_ip") for v in events[c].to_pylist() if v and ":" in v}
    assert ipv6 == {"::", "fe80::90e:17af:263c:5209"}
    # the per-event path as the batch path; a zone is kept, upper case is lowered
    record = canonical_record({"source_ip": "FE80:0:0:0:0:0:0:1%eth0", "dest_ip": "10.0.0.1",
                               "timestamp": "2024-01-01T00:00:00Z"}, EVENT_SOURCE)
    assert record.values["source_ip"] == "fe80::1%eth0"
    # A collection written before (addresses as read) is not resumed: it would mix spellings.
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"UtcTime": "2024-01-01 00:00:00", "EventID": 3,
                                "SourceIp": "fe80:0:0:0:0:0:0:1"}) + "\n")
    source = [DataSource("w", "windows_events", {"path": str(path)})]
    out = tmp_path / "out"
    DataCollector(source, output_dir=out, progress=False).collect_table()
    checkpoint = out / "checkpoint.json"
    state = json.loads(checkpoint.read_text())
    del state["recipe"]["ip_text"]  # as written before it
    checkpoint.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"made with other settings \(ip_text differ\)"):
        DataCollector(source, output_dir=out, progress=False).collect_table(
            resume_from_checkpoint=True)
