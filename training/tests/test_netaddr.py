"""Tests for training.kernels.netaddr.pack_ips."""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pytest

from training.errors import SchemaError
from training.kernels.netaddr import VERSION_INVALID, VERSION_MISSING, pack_ips


def _bytes16(text: str) -> list[int]:
    return list(ipaddress.ip_address(text).packed.ljust(16, b"\0"))


CASES = [
    # (text, version, expected 16 bytes or None for all-zero)
    ("192.168.1.10", 4, [192, 168, 1, 10] + [0] * 12),
    ("0.0.0.0", 4, [0] * 16),
    ("255.255.255.255", 4, [255] * 4 + [0] * 12),
    ("2001:db8::1", 6, [0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [1]),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", 6, [0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [1]),
    ("FE80::A", 6, [0xFE, 0x80] + [0] * 13 + [0x0A]),
    ("::", 6, [0] * 16),
    ("::1", 6, [0] * 15 + [1]),
    ("::ffff:10.0.0.1", 6, [0] * 10 + [0xFF, 0xFF, 10, 0, 0, 1]),  # v4-mapped stays IPv6
    ("fe80::1%eth0", 6, [0xFE, 0x80] + [0] * 13 + [1]),  # zone id dropped
    ("fe80::1%25", 6, [0xFE, 0x80] + [0] * 13 + [1]),
    (None, VERSION_MISSING, [0] * 16),
    ("", VERSION_MISSING, [0] * 16),
    ("-", VERSION_MISSING, [0] * 16),
    ("999.1.1.1", VERSION_INVALID, [0] * 16),
    ("1.2.3", VERSION_INVALID, [0] * 16),
    ("abc", VERSION_INVALID, [0] * 16),
    ("01.2.3.4", VERSION_INVALID, [0] * 16),  # leading zero: ambiguous (octal), refused
    (" 1.2.3.4", VERSION_INVALID, [0] * 16),  # no silent stripping
    ("1.2.3.4%eth0", VERSION_INVALID, [0] * 16),  # zones are IPv6-only
    ("fe80::1%", VERSION_INVALID, [0] * 16),
    ("1::2::3", VERSION_INVALID, [0] * 16),
    ("1.2.3.4\x00", VERSION_INVALID, [0] * 16),
    ("--", VERSION_INVALID, [0] * 16),
]


def test_exact_bytes_and_versions() -> None:
    packed, version = pack_ips(pa.array([c[0] for c in CASES], type=pa.string()))
    assert packed.dtype == np.uint8 and packed.shape == (len(CASES), 16)
    assert version.dtype == np.int8
    for row, (text, want_version, want_bytes) in enumerate(CASES):
        assert version[row] == want_version, text
        assert packed[row].tolist() == want_bytes, text


def test_valid_rows_match_ipaddress() -> None:
    valid = [c[0] for c in CASES if c[1] in (4, 6)]
    packed, _ = pack_ips(pa.array(valid))
    assert packed.tolist() == [_bytes16(text) for text in valid]


def test_repeated_values_and_large_string() -> None:
    texts = ["10.0.0.1", "10.0.0.2", None, "10.0.0.1", "bad", "10.0.0.2", "10.0.0.1"]
    packed, version = pack_ips(pa.array(texts, type=pa.large_string()))
    assert version.tolist() == [4, 4, 0, 4, -1, 4, 4]
    assert packed[:, 3].tolist() == [1, 2, 0, 1, 0, 2, 1]


def test_sliced_array() -> None:
    base = pa.array(["1.1.1.1", None, "2.2.2.2", "::2", "x", "3.3.3.3"])
    sliced = base.slice(2, 3)
    assert sliced.offset == 2
    packed, version = pack_ips(sliced)
    assert version.tolist() == [4, 6, -1]
    assert packed[0, :4].tolist() == [2, 2, 2, 2]
    assert packed[1, 15] == 2


def test_chunked_array() -> None:
    chunked = pa.chunked_array([["1.1.1.1", None], [], ["::1", "1.1.1.1", "-"]], type=pa.string())
    packed, version = pack_ips(chunked)
    assert version.tolist() == [4, 0, 6, 4, 0]
    assert packed[3, :4].tolist() == [1, 1, 1, 1]
    # Chunks whose dictionaries differ are decoded, not mis-indexed.
    dict_chunks = pa.chunked_array(
        [pa.array(["9.9.9.9", "8.8.8.8"]).dictionary_encode(), pa.array(["8.8.8.8"]).dictionary_encode()]
    )
    packed, version = pack_ips(dict_chunks)
    assert packed[:, 0].tolist() == [9, 8, 8]


def test_dictionary_array() -> None:
    packed, version = pack_ips(pa.array(["1.2.3.4", None, "::1", "1.2.3.4"]).dictionary_encode())
    assert version.tolist() == [4, 0, 6, 4]
    assert packed[3, :4].tolist() == [1, 2, 3, 4]
    # A null may also sit in the dictionary itself rather than in the indices.
    with_null_value = pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 0], type=pa.int8()), pa.array([None, "10.0.0.1"])
    )
    assert pack_ips(with_null_value)[1].tolist() == [0, 4, 0]


def test_empty_inputs() -> None:
    for empty in (pa.array([], type=pa.string()), pa.chunked_array([], type=pa.string())):
        packed, version = pack_ips(empty)
        assert packed.shape == (0, 16) and version.shape == (0,)
    packed, version = pack_ips(pa.array([None, None], type=pa.string()))
    assert version.tolist() == [0, 0] and not packed.any()


@pytest.mark.parametrize("bad", [pa.array([1, 2]), pa.array([b"1.2.3.4"]), ["1.2.3.4"]])
def test_rejects_non_string_input(bad: object) -> None:
    with pytest.raises(SchemaError, match="ips must"):
        pack_ips(bad)  # type: ignore[arg-type]


def test_random_addresses_round_trip() -> None:
    rng = np.random.default_rng(7)
    v4 = [str(ipaddress.IPv4Address(int(x))) for x in rng.integers(0, 2**32, 300)]
    v6 = [str(ipaddress.IPv6Address(bytes(rng.integers(0, 256, 16, dtype=np.uint8)))) for _ in range(300)]
    texts = v4 + v6
    packed, version = pack_ips(pa.array(texts))
    assert version.tolist() == [4] * 300 + [6] * 300
    assert packed.tolist() == [_bytes16(t) for t in texts]


TRICKY = [
    "1.2.3.4.", "1.2.3.04", "0x1.2.3.4", "1.2.3.4/24", "1.2.3.4 ", "\u0661.2.3.4", "256.0.0.1",
    "::1:2:3:4:5:6:7", "1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8", "::ffff:1.2.3.256",
    "::ffff:1.2.3.4", "::1.2.3.4", "12345::", "g::", ":::", "1::", "::", "FFFF::ffff", "fe80::1%1",
]  # fmt: skip


@pytest.mark.parametrize("text", TRICKY)
def test_accepts_exactly_what_ipaddress_accepts(text: str) -> None:
    # The inet_pton fast path must not widen or narrow what `ipaddress` calls an address.
    try:
        want = ipaddress.ip_address(text)
    except ValueError:
        want = None
    packed, version = pack_ips(pa.array([text]))
    if want is None:
        assert version[0] == VERSION_INVALID
    else:
        assert version[0] == want.version
        assert bytes(packed[0]) == want.packed.ljust(16, b"\0")
