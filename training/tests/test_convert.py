"""training.sources.coerce: each converter on small hand-made arrays, exact values and bad-row masks."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from training.sources.coerce import (
    TIMESTAMP, Converted, direction_from_locality, map_distinct, plain, to_bool, to_direction,
    to_float, to_int, to_ip, to_protocol, to_severity, to_string, to_timestamp,
)

T0 = 1_704_164_645  # 2024-01-02T03:04:05Z
T0_US = T0 * 1_000_000
TS_REASON = "is not a timestamp (ISO 8601 or Unix epoch) between 1970 and 2199"
PORT_REASON = "is not a port in 0..65535"


def micros(converted: Converted) -> list[int | None]:
    """Timestamps as epoch microseconds (exact, independent of tz objects)."""
    assert converted.values.type == TIMESTAMP
    return converted.values.cast(pa.int64()).to_pylist()


def bad(converted: Converted) -> list[bool] | None:
    return None if converted.bad is None else converted.bad.tolist()


def port(array: pa.Array | pa.ChunkedArray) -> Converted:
    return to_int(array, 0, 65535, pa.int32(), "a port")


def duration(array: pa.Array | pa.ChunkedArray) -> Converted:
    return to_float(array, 0.0, "a duration")


# -- to_timestamp ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected_us", [
    ("2024-01-02T03:04:05Z", T0_US),
    ("2024-01-02T03:04:05+0200", T0_US - 2 * 3600 * 1_000_000),
    ("2024-01-02T03:04:05+02:00", T0_US - 2 * 3600 * 1_000_000),
    ("2024-01-02T03:04:05-05:30", T0_US + 5 * 3600 * 1_000_000 + 30 * 60 * 1_000_000),
    ("2024-01-02T03:04:05", T0_US),  # naive text is UTC
    ("2024-01-02 03:04:05", T0_US),  # space separator
    ("2024-01-02T03:04:05.123456Z", T0_US + 123_456),
    ("2024-01-02T03:04:05.1234567Z", T0_US + 123_456),  # Windows' 7-digit fractions
    ("2024-01-02T03:04:05.1234567+02:00", T0_US - 2 * 3600 * 1_000_000 + 123_456),
    ("2024-01-02T03:04:05.123+0000", T0_US + 123_000),  # Suricata
    (str(T0), T0_US),  # epoch seconds as text
    (f"{T0}.5", T0_US + 500_000),
    (f"{T0}123", T0_US + 123_000),  # epoch milliseconds as text
])
def test_to_timestamp_reads_iso_text_and_epoch_text(text, expected_us):
    converted = to_timestamp(pa.array([text]))
    assert micros(converted) == [expected_us]
    assert converted.bad is None


def test_to_timestamp_text_mixing_formats_in_one_array():
    converted = to_timestamp(pa.array(["2024-01-02T03:04:05Z", "2024-01-02T03:04:05+0100",
                                       str(T0), "2024-01-02 03:04:05"]))
    assert micros(converted) == [T0_US, T0_US - 3600 * 1_000_000, T0_US, T0_US]
    assert converted.bad is None


def test_to_timestamp_missing_text_is_null_not_bad():
    converted = to_timestamp(pa.array(["2024-01-02T03:04:05Z", None, "", "-"]))
    assert micros(converted) == [T0_US, None, None, None]
    assert converted.bad is None


def test_to_timestamp_bad_text_is_reported_with_the_rule():
    converted = to_timestamp(pa.array(["2024-01-02T03:04:05Z", "garbage", None,
                                       "2024-13-01T00:00:00", "-"]))
    assert micros(converted) == [T0_US, None, None, None, None]
    assert bad(converted) == [False, True, False, True, False]
    assert converted.reason == TS_REASON


@pytest.mark.parametrize("text", ["2300-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01"])
def test_to_timestamp_refuses_years_outside_1970_to_2199(text):
    converted = to_timestamp(pa.array([text, "2024-01-02T03:04:05Z"]))
    assert micros(converted) == [None, T0_US]
    assert bad(converted) == [True, False]
    assert converted.reason == TS_REASON


def test_to_timestamp_epoch_integers_in_every_unit():
    converted = to_timestamp(pa.array([T0, T0 * 1000 + 123, T0 * 1_000_000 + 123_456, None]))
    assert micros(converted) == [T0_US, T0_US + 123_000, T0_US + 123_456, None]
    assert converted.bad is None


def test_to_timestamp_epoch_nanosecond_integers():
    # int64 nanoseconds are past 2**53, where an exact int -> float cast refuses them.
    converted = to_timestamp(pa.array([T0 * 1_000_000_000 + 123_456_000, None], pa.int64()))
    assert micros(converted) == [T0_US + 123_456, None]
    assert converted.bad is None


def test_to_timestamp_epoch_floats_in_every_unit():
    converted = to_timestamp(pa.array([T0 + 0.25, T0 * 1000.0 + 5, T0 * 1e6 + 7, T0 * 1e9, None]))
    assert micros(converted) == [T0_US + 250_000, T0_US + 5000, T0_US + 7, T0_US, None]
    assert converted.bad is None


def test_to_timestamp_epoch_numbers_out_of_range_or_not_finite_are_bad():
    converted = to_timestamp(pa.array([-1.0, float("nan"), float("inf"), 0.0, 7_258_118_401.0]))
    assert micros(converted) == [None, None, None, 0, None]
    assert bad(converted) == [True, True, True, False, True]
    assert converted.reason == TS_REASON


def test_to_timestamp_from_arrow_timestamps_keeps_the_instant():
    berlin = pa.array([T0, None], pa.timestamp("s", tz="Europe/Berlin"))  # stored as UTC instants
    naive_ns = pa.array([T0 * 1_000_000_000 + 123_456_789], pa.timestamp("ns"))
    assert micros(to_timestamp(berlin)) == [T0_US, None]
    assert micros(to_timestamp(naive_ns)) == [T0_US + 123_456]
    aware = datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert micros(to_timestamp(pa.array([aware], pa.timestamp("us", tz="+02:00")))) == [T0_US]


def test_to_timestamp_from_arrow_dates_is_midnight_utc():
    midnight = int(datetime(2024, 1, 2, tzinfo=timezone.utc).timestamp()) * 1_000_000
    assert micros(to_timestamp(pa.array([date(2024, 1, 2), None], pa.date32()))) == [midnight, None]
    assert micros(to_timestamp(pa.array([date(2024, 1, 2)], pa.date64()))) == [midnight]


def test_to_timestamp_arrow_timestamp_out_of_range_is_bad():
    converted = to_timestamp(pa.array([datetime(2300, 1, 2), datetime(2024, 1, 2, 3, 4, 5)],
                                      pa.timestamp("us")))
    assert micros(converted) == [None, T0_US]
    assert bad(converted) == [True, False]


def test_to_timestamp_all_null_column():
    converted = to_timestamp(pa.nulls(3))
    assert micros(converted) == [None, None, None]
    assert converted.bad is None


# -- to_int ----------------------------------------------------------------------------------

def test_to_int_ports_from_ints_floats_and_text():
    for array in (pa.array([0, 80, 65535, None]), pa.array([0.0, 80.0, 65535.0, None]),
                  pa.array(["0", "80", "65535", None])):
        converted = port(array)
        assert converted.values.type == pa.int32()
        assert converted.values.to_pylist() == [0, 80, 65535, None]
        assert not (converted.bad is not None and converted.bad.any())


def test_to_int_text_80_point_0_is_a_whole_number_and_blanks_are_missing():
    converted = port(pa.array(["80.0", "", "-", "443"]))
    assert converted.values.to_pylist() == [80, None, None, 443]
    assert bad(converted) == [False, False, False, False]


def test_to_int_bad_text_fractions_and_out_of_range_values():
    converted = port(pa.array(["80.5", "abc", "70000", "-1", "443", None]))
    assert converted.values.to_pylist() == [None, None, None, None, 443, None]
    assert bad(converted) == [True, True, True, True, False, False]
    assert converted.reason == PORT_REASON


def test_to_int_out_of_range_ints_and_fractional_floats():
    ints = port(pa.array([70000, -1, 22, 65536]))
    assert ints.values.to_pylist() == [None, None, 22, None]
    assert bad(ints) == [True, True, False, True]
    floats = port(pa.array([80.5, 22.0, float("nan")]))
    assert floats.values.to_pylist() == [None, 22, None]
    assert bad(floats) == [True, False, True]


def test_to_int_out_type_and_bounds_in_the_reason():
    converted = to_int(pa.array(["5", "11"]), 0, 10, pa.int8(), "a level")
    assert converted.values.type == pa.int8()
    assert converted.values.to_pylist() == [5, None]
    assert bad(converted) == [False, True]
    assert converted.reason == "is not a level in 0..10"
    largest = to_int(pa.array([2**63 - 1]), 0, 2**63 - 1, pa.int64(), "a count")
    assert largest.values.to_pylist() == [2**63 - 1] and largest.bad is None


def test_to_int_all_null_column_takes_the_out_type():
    converted = port(pa.nulls(2))
    assert converted.values.type == pa.int32()
    assert converted.values.to_pylist() == [None, None]
    assert converted.bad is None


# -- to_float --------------------------------------------------------------------------------

def test_to_float_nan_inf_and_below_low_are_bad_nulls_are_not():
    converted = duration(pa.array([1.5, None, 0.0, float("nan"), float("inf"), float("-inf"),
                                   -0.5]))
    assert converted.values.to_pylist() == [1.5, None, 0.0, None, None, None, None]
    assert bad(converted) == [False, False, False, True, True, True, True]
    assert converted.reason == "is not a duration (a finite number >= 0.0)"


def test_to_float_text_and_ints():
    converted = duration(pa.array(["1.5", "nan", "inf", "-1", "x", "", "-", None, "2"]))
    assert converted.values.to_pylist() == [1.5, None, None, None, None, None, None, None, 2.0]
    assert bad(converted) == [False, True, True, True, True, False, False, False, False]
    ints = duration(pa.array([1, 2]))
    assert ints.values.type == pa.float64() and ints.values.to_pylist() == [1.0, 2.0]
    assert ints.bad is None


def test_to_float_negative_numbers_allowed_when_low_allows_them():
    converted = to_float(pa.array([-5, 3]), float("-inf"), "a number")
    assert converted.values.to_pylist() == [-5.0, 3.0]
    assert converted.bad is None


def test_to_float_all_null_column():
    converted = duration(pa.nulls(2))
    assert converted.values.type == pa.float64()
    assert converted.values.to_pylist() == [None, None] and converted.bad is None


# -- to_string -------------------------------------------------------------------------------

def test_to_string_binary_with_invalid_utf8_is_bad():
    converted = to_string(pa.array([b"abc", b"\xff\xfe", None, b"abc"], pa.binary()))
    assert converted.values.to_pylist() == ["abc", None, None, "abc"]
    assert bad(converted) == [False, True, False, False]
    assert converted.reason == "is not valid UTF-8"


def test_to_string_valid_binary_large_string_and_nulls():
    assert to_string(pa.array([b"h\xc3\xa9"], pa.large_binary())).values.to_pylist() == ["hé"]
    large = to_string(pa.array(["a", None], pa.large_string())).values
    assert large.type == pa.string() and large.to_pylist() == ["a", None]
    nulls = to_string(pa.nulls(2)).values
    assert nulls.type == pa.string() and nulls.to_pylist() == [None, None]


def test_to_string_bools_and_numbers():
    assert to_string(pa.array([True, False, None])).values.to_pylist() == ["true", "false", None]
    assert to_string(pa.array([1, -2, None])).values.to_pylist() == ["1", "-2", None]
    assert to_string(pa.array([1.5, 2.0])).values.to_pylist() == ["1.5", "2"]
    assert to_string(pa.array([1, 2])).bad is None


# -- to_ip -----------------------------------------------------------------------------------

def test_to_ip_valid_missing_and_invalid():
    converted = to_ip(pa.array(["10.0.0.1", "2001:db8::1", "-", "", None, "1.2.3", "999.1.1.1",
                                " 10.0.0.1"]))
    assert converted.values.to_pylist() == ["10.0.0.1", "2001:db8::1", None, None, None, None,
                                            None, None]
    assert bad(converted) == [False, False, False, False, False, True, True, True]
    assert converted.reason == "is not an IP address"
    assert converted.version.tolist() == [4, 6, 0, 0, 0, -1, -1, -1]
    assert converted.packed.shape == (8, 16)
    assert converted.packed[0].tolist() == [10, 0, 0, 1] + [0] * 12
    assert bytes(converted.packed[1]) == bytes.fromhex("20010db8000000000000000000000001")
    assert not converted.packed[2:].any()


def test_to_ip_all_good_has_no_bad_mask():
    converted = to_ip(pa.array(["10.0.0.1", None]))
    assert converted.bad is None
    assert converted.version.tolist() == [4, 0]


# -- to_protocol / to_direction / to_bool / to_severity ---------------------------------------

def test_to_protocol_numbers_become_names_unknown_numbers_stay_text():
    converted = to_protocol(pa.array([6, 17, 1, 58, 132, 99, None]))
    assert converted.values.to_pylist() == ["tcp", "udp", "icmp", "icmpv6", "sctp", "99", None]


def test_to_protocol_text_is_lower_cased_and_aliases_resolved():
    converted = to_protocol(pa.array(["TCP", " udp ", "IPv6-ICMP", "icmp6", "6", "-", "", None,
                                      "99", "GRE"]))
    assert converted.values.to_pylist() == ["tcp", "udp", "icmpv6", "icmpv6", "tcp", None, None,
                                            None, "99", "gre"]
    assert converted.bad is None


def test_to_protocol_whole_floats_are_numbers():
    # A pandas-written Parquet column with a NaN holds protocol numbers as floats.
    assert to_protocol(pa.array([6.0, 17.0, None, 99.0])).values.to_pylist() == [
        "tcp", "udp", None, "99"]


def test_to_direction_ecs_words_windows_codes_and_suricata():
    converted = to_direction(pa.array([
        "inbound", "Ingress", "to_server", "%%14592", "outbound", "egress", "to_client", "%%14593",
        "internal", "EXTERNAL", " outbound ", "sideways", None, ""]))
    assert converted.values.to_pylist() == [
        "inbound", "inbound", "inbound", "inbound", "outbound", "outbound", "outbound", "outbound",
        "internal", "external", "outbound", None, None, None]
    assert converted.bad is None


def test_direction_from_locality_bools_and_zeek_text():
    expected = ["internal", "outbound", "inbound", "external"]
    bools = direction_from_locality(pa.array([True, True, False, False]),
                                    pa.array([True, False, True, False]))
    assert bools.to_pylist() == expected
    text = direction_from_locality(pa.array(["T", "T", "F", "F"]), pa.array(["T", "F", "T", "F"]))
    assert text.to_pylist() == expected
    unknown = direction_from_locality(pa.array([None], pa.bool_()), pa.array([True]))
    assert unknown.to_pylist() == [None]


def test_to_bool_words_numbers_and_bad_text():
    converted = to_bool(pa.array(["T", "F", "true", "FALSE", "yes", "no", "1", "0", " t ", "", "-",
                                  None, "maybe"]))
    assert converted.values.to_pylist() == [True, False, True, False, True, False, True, False,
                                            True, None, None, None, None]
    assert bad(converted) == [False] * 12 + [True]
    assert converted.reason == "is not a boolean (T/F, true/false, 0/1)"
    ints = to_bool(pa.array([1, 0, None, 2]))
    assert ints.values.to_pylist() == [True, False, None, None]
    assert bad(ints) == [False, False, False, True]
    assert to_bool(pa.array([True, None])).values.to_pylist() == [True, None]
    assert to_bool(pa.array(["T", "F"])).bad is None


def test_to_severity_scales_numbers_and_words():
    converted = to_severity(pa.array([0.3, 7, 55, 0, 1, 10, 100]))
    assert converted.values.type == pa.float32()
    assert converted.values.to_pylist() == pytest.approx([0.3, 0.7, 0.55, 0.0, 1.0, 1.0, 1.0])
    assert converted.bad is None
    words = to_severity(pa.array(["high", "Low", "informational", "info", "medium", "moderate",
                                  "CRITICAL", "0.5", "7", None, "", "-"]))
    assert words.values.to_pylist() == pytest.approx([0.75, 0.25, 0.0, 0.0, 0.5, 0.5, 1.0, 0.5,
                                                      0.7, None, None, None])
    assert words.bad is None


def test_to_severity_negative_too_large_and_unknown_words_are_bad():
    converted = to_severity(pa.array(["-1", "x", "101", "nan", "0.3", None]))
    assert converted.values.to_pylist() == pytest.approx([None, None, None, None, 0.3, None])
    assert bad(converted) == [True, True, True, True, False, False]
    assert converted.reason == "is not a severity (0-1, 0-10, 0-100 or a word)"
    assert bad(to_severity(pa.array([-1, 5]))) == [True, False]


# -- plain and map_distinct ------------------------------------------------------------------

def test_plain_decodes_dictionaries_and_combines_chunks():
    decoded = plain(pa.array(["a", "b", None, "a"]).dictionary_encode())
    assert decoded.type == pa.string() and decoded.to_pylist() == ["a", "b", None, "a"]
    combined = plain(pa.chunked_array([pa.array([1, 2]), pa.array([3])]))
    assert isinstance(combined, pa.Array) and combined.to_pylist() == [1, 2, 3]
    assert plain(pa.chunked_array([], pa.int64())).to_pylist() == []
    two_dictionaries = pa.chunked_array([pa.array(["a"]).dictionary_encode(),
                                         pa.array(["b"]).dictionary_encode()])
    assert plain(two_dictionaries).to_pylist() == ["a", "b"]


def test_plain_reduces_lists_to_their_first_item():
    assert plain(pa.array([["x", "y"], [], None, ["z"]])).to_pylist() == ["x", None, None, "z"]
    large = pa.array([["x"], []], pa.large_list(pa.string()))
    assert plain(large).to_pylist() == ["x", None]


def test_map_distinct_calls_the_function_once_per_distinct_value_and_keeps_nulls():
    seen: list[object] = []

    def upper(value: str) -> str:
        seen.append(value)
        return value.upper()

    mapped = map_distinct(pa.array(["a", "b", None, "a", "b"]), upper, pa.string())
    assert mapped.to_pylist() == ["A", "B", None, "A", "B"]
    assert sorted(seen) == ["a", "b"]
    lengths = map_distinct(pa.array(["xy", "z", "xy"]), len, pa.int8())
    assert lengths.type == pa.int8() and lengths.to_pylist() == [2, 1, 2]


# -- every converter on chunked and sliced input ---------------------------------------------

CASES = {
    "timestamp": (to_timestamp, ["2024-01-02T03:04:05Z", "garbage", None, str(T0)],
                  [T0_US, None, None, T0_US], [False, True, False, False]),
    "timestamp_numbers": (to_timestamp, [T0, -5, None, T0 * 1000],
                          [T0_US, None, None, T0_US], [False, True, False, False]),
    "int": (port, ["80", "x", None, "70000"], [80, None, None, None], [False, True, False, True]),
    "float": (duration, [1.5, float("nan"), None, -1.0], [1.5, None, None, None],
              [False, True, False, True]),
    "string": (to_string, [b"a", b"\xff", None, b"b"], ["a", None, None, "b"],
               [False, True, False, False]),
    "ip": (to_ip, ["10.0.0.1", "1.2.3", None, "::1"], ["10.0.0.1", None, None, "::1"],
           [False, True, False, False]),
    "protocol": (to_protocol, ["TCP", "17", None, "IPv6-ICMP"], ["tcp", "udp", None, "icmpv6"],
                 None),
    "direction": (to_direction, ["to_server", "%%14593", None, "x"],
                  ["inbound", "outbound", None, None], None),
    "bool": (to_bool, ["T", "maybe", None, "F"], [True, None, None, False],
             [False, True, False, False]),
    "severity": (to_severity, ["high", "x", None, "7"], [0.75, None, None, 0.7],
                 [False, True, False, False]),
}


def _values(converted: Converted) -> list:
    if converted.values.type == TIMESTAMP:
        return micros(converted)
    values = converted.values.to_pylist()
    return pytest.approx(values) if converted.values.type == pa.float32() else values


def _array(values: list) -> pa.Array:
    return pa.array(values, pa.binary() if isinstance(values[0], bytes) else None)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_converter_gives_the_same_answer_for_plain_chunked_and_sliced_input(case):
    convert, values, expected, expected_bad = CASES[case]
    whole = _array(values)
    padded = _array([values[0], *values, values[0]]).slice(1, len(values))
    chunked = pa.chunked_array([whole.slice(0, 1), whole.slice(1, 2), padded.slice(3, 1)])
    for array in (whole, padded, chunked):
        converted = convert(array)
        assert _values(converted) == expected, type(array)
        assert bad(converted) == expected_bad, type(array)
        if case == "ip":
            assert converted.version.tolist() == [4, -1, 0, 6]
