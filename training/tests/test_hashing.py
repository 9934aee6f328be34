"""Tests for training.kernels.hashing: pinned values, a reference implementation, type coverage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pytest

from training.errors import ConfigError, SchemaError
from training.kernels.hashing import DEFAULT_KEY, hash_array, hash_rows, to_hex

# A wrapping multiply or a float cast that warns would mean arithmetic we did not intend.
pytestmark = pytest.mark.filterwarnings("error")

REPO = Path(__file__).resolve().parents[2]
SAMPLE = ["", "a", "a\x00", "\x00", "event-0001", "0123456789abcdef0123", None, "é中🙂"]


def distinct(hashes: np.ndarray) -> int:
    """Number of distinct values (np.unique is far slower on a million uint64)."""
    ordered = np.sort(hashes)
    return int(ordered.size and 1 + np.count_nonzero(ordered[1:] != ordered[:-1]))


# --- A plain-Python reference of the algorithm in the module docstring -----------------------
M64 = (1 << 64) - 1
STRING, BINARY, INT, LIST, BLOCK, NULL = 2, 3, 4, 9, 11, 1


def fmix(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M64
    x ^= x >> 33
    x = (x * 0xC4CEB93FE53EC889) & M64
    return x ^ (x >> 33)


def seed(key: int, domain: int) -> int:
    return fmix(key ^ fmix(domain * 0x9E3779B97F4A7C15 & M64))


def ref_words(h: int, words: list[int], key: int) -> int:
    if len(words) > 64:  # blocks of 64 words, then their digests as the words
        blocks = [words[i : i + 64] for i in range(0, len(words), 64)]
        digests = [ref_words(fmix(seed(key, BLOCK) ^ len(b)), b, key) for b in blocks]
        return ref_words(h, digests, key)
    for word in words:
        h = fmix(h ^ word)
    return h


def ref_bytes(value: bytes, key: int = DEFAULT_KEY, domain: int = STRING) -> int:
    chunks = [value[i : i + 8].ljust(8, b"\x00") for i in range(0, len(value), 8)]
    words = [int.from_bytes(chunk, "little") for chunk in chunks]
    return ref_words(fmix(seed(key, domain) ^ len(value)), words, key)


# --- Pinned values ---------------------------------------------------------------------------
# These pin the algorithm: stored dedup state and feature encodings depend on these exact
# numbers, so a change here is a data-format break, never a test to update casually.
KNOWN_STRINGS = [
    0x6C549F8317C7D028,  # ""
    0x0D986E932DAAC887,  # "a"
    0xC5DBC0A01130E8D6,  # "a\x00"
    0x38B4DD977E8BA5FD,  # "\x00"
    0x94D5854087EC785C,  # "event-0001"
    0x4601ABDA47209567,  # "0123456789abcdef0123"
    0x6DADAC69A61E8757,  # None
    0x5BF80527012C0C14,  # "é中🙂"
]


def test_known_answers_strings() -> None:
    assert hash_array(pa.array(SAMPLE)).tolist() == KNOWN_STRINGS


def test_known_answers_other_types() -> None:
    assert hash_array(pa.array([0, 1, -1])).tolist() == [
        0xD0D9866883B6BF33,
        0x2B5B510B0348C713,
        0x70F8199AB985183B,
    ]
    assert hash_array(pa.array([0.0, 1.5, float("nan")])).tolist() == [
        0x45DE9F5152ED955A,
        0x09E004577DA32420,
        0x24744485BE4FE0E2,
    ]
    assert hash_array(pa.array([[1, 2], []])).tolist() == [0x6269DF69B8EDCB8F, 0x55E0A494CABA2F47]
    table = pa.table({"id": ["e1", "e2"], "port": [22, 443]})
    assert hash_rows(table).tolist() == [0xBE22DCC9BFC0FB82, 0xC08BFAA279A97642]
    assert hash_array(pa.array(["a"]), key=1).tolist() == [0xFA1B0B385BE8DAFB]


def test_matches_reference_implementation() -> None:
    values = [bytes(range(1, n + 1)) for n in range(41)] + [b"x" * n for n in (511, 512, 513)]
    for prefix in range(8):  # every alignment of the value inside the data buffer
        array = pa.array([b"p" * prefix] + values, pa.binary())
        expected = [ref_bytes(v, domain=BINARY) for v in values]
        assert hash_array(array)[1:].tolist() == expected
    assert hash_array(pa.array(SAMPLE[:6])).tolist() == [ref_bytes(s.encode()) for s in SAMPLE[:6]]
    assert hash_array(pa.array([None])).tolist() == [seed(DEFAULT_KEY, NULL)]
    assert hash_array(pa.array([7, -7])).tolist() == [
        fmix(seed(DEFAULT_KEY, INT) ^ 7),
        fmix(seed(DEFAULT_KEY, INT) ^ (-7 & M64)),
    ]


def test_deterministic_across_processes() -> None:
    code = (
        "import pyarrow as pa; from training.kernels.hashing import hash_array, hash_rows;"
        f"print(hash_array(pa.array({SAMPLE!r})).tolist());"
        "print(hash_rows(pa.table({'b': [1, 2], 'a': ['x', None]})).tolist())"
    )
    for hash_seed in ("1", "987654"):  # builtin hash() would differ between these
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        command = [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        strings, rows = done.stdout.splitlines()
        assert strings == str(hash_array(pa.array(SAMPLE)).tolist())
        assert rows == str(hash_rows(pa.table({"a": ["x", None], "b": [1, 2]})).tolist())


# --- Strings ---------------------------------------------------------------------------------
def test_million_distinct_short_strings_do_not_collide() -> None:
    ids = pc.cast(pa.array(np.arange(1_000_000)), pa.string())  # "0" .. "999999"
    assert distinct(hash_array(ids)) == 1_000_000


def test_null_empty_and_zero_byte_are_distinct() -> None:
    hashes = hash_array(pa.array([None, "", "\x00", "\x00\x00", "a", "a\x00"]))
    assert distinct(hashes) == 6
    assert hash_array(pa.array([0]))[0] != hashes[0]


def test_lengths_around_word_boundaries() -> None:
    values = ["x" * n for n in range(41)] + ["y" * n for n in range(41)]
    hashes = hash_array(pa.array(values))
    assert distinct(hashes) == 81  # "x" * 0 == "y" * 0
    assert hashes.tolist() == [ref_bytes(v.encode()) for v in values]


def test_equal_strings_hash_equal_at_any_position() -> None:
    value = "host-17.corp.example/var/log/auth.log"
    values = [value if i % 3 == 0 else "z" * (i % 11) for i in range(60)]
    hashes = hash_array(pa.array(values))
    assert distinct(hashes[::3]) == 1
    assert hash_array(pa.array(values).slice(3, 40))[0] == hashes[0]


def test_chunking_does_not_change_hashes() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 120, 40_000)
    lengths[::9_000] = 400_000  # a few long values force byte-bounded chunks
    data = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    array = pa.BinaryArray.from_buffers(pa.binary(), 40_000, buffers)
    pieces = [hash_array(array.slice(i, 777)) for i in range(0, len(array), 777)]
    assert (hash_array(array) == np.concatenate(pieces)).all()
    assert hash_array(array)[9_000] == ref_bytes(array[9_000].as_py(), domain=BINARY)


def test_one_megabyte_string_among_short_ones() -> None:
    big = bytes(np.random.default_rng(7).integers(0, 256, 1 << 20, dtype=np.uint8))
    changed = big[:-1] + bytes([big[-1] ^ 1])
    hashes = hash_array(pa.array([b"a", big, b"b", changed, big[: 1 << 19]], pa.binary()))
    assert hashes[1] == ref_bytes(big, domain=BINARY)
    assert distinct(hashes) == 5
    assert hashes[0] == hash_array(pa.array([b"a"], pa.binary()))[0]


def test_string_types() -> None:
    values = ["abc", None, "x" * 70]
    expected = hash_array(pa.array(values, pa.string()))
    assert (hash_array(pa.array(values, pa.large_string())) == expected).all()
    as_binary = hash_array(pa.array([v and v.encode() for v in values], pa.large_binary()))
    assert as_binary[0] != expected[0]  # bytes and text are different values
    assert as_binary[1] == expected[1]  # null is null


def test_key_changes_every_hash() -> None:
    array = pa.array(SAMPLE)
    one, two = hash_array(array, key=1), hash_array(array, key=2)
    assert (one != two).all()
    assert (hash_array(array, key=1) == one).all()
    assert (hash_array(array) == hash_array(array, key=DEFAULT_KEY)).all()


# --- Every supported type --------------------------------------------------------------------
TYPED = {
    "string": pa.array(["a", None, "bc", "a", ""]),
    "large_binary": pa.array([b"a", None, b"bc", b"a", b""], pa.large_binary()),
    "int8": pa.array([1, None, -2, 1, 0], pa.int8()),
    "uint16": pa.array([1, None, 2, 1, 0], pa.uint16()),
    "int32": pa.array([1, None, -2, 1, 0], pa.int32()),
    "uint64": pa.array([1, None, 2**64 - 1, 1, 0], pa.uint64()),
    "float16": pa.array(np.array([1, np.nan, 2, 1, 0], np.float16), from_pandas=True),
    "float32": pa.array([1.5, None, -2.5, 1.5, 0.0], pa.float32()),
    "bool": pa.array([True, None, False, True, False]),
    "timestamp": pa.array([1, None, 2, 1, 0], pa.timestamp("ms", tz="UTC")),
    "date32": pa.array([1, None, 2, 1, 0], pa.date32()),
    "date64": pa.array([86_400_000, None, 0, 86_400_000, 2 * 86_400_000], pa.date64()),
    "time64": pa.array([1, None, 2, 1, 0], pa.time64("us")),
    "duration": pa.array([1, None, 2, 1, 0], pa.duration("s")),
    "dictionary": pa.array(["a", None, "b", "a", "c"]).dictionary_encode(),
    "list": pa.array([[1, 2], None, [], [1, 2], [None]]),
    "large_list": pa.array([["a"], None, [], ["a"], ["a", "a"]], pa.large_list(pa.string())),
    "struct": pa.array([{"x": 1, "y": "a"}, None, {"x": 2}, {"x": 1, "y": "a"}, {}]),
    "list<struct>": pa.array([[{"k": "a"}], None, [], [{"k": "a"}], [None]]),
}


@pytest.mark.parametrize("name", TYPED)
def test_type_contract(name: str) -> None:
    array = TYPED[name]
    hashes = hash_array(array)
    assert hashes.dtype == np.uint64 and hashes.shape == (5,)
    values = array.to_pylist()
    for i in range(5):  # equal hashes exactly for equal values
        assert [hashes[i] == hashes[j] for j in range(5)] == [values[i] == v for v in values]
    assert hashes[1] == hash_array(pa.array([None]))[0]  # one null hash for all types
    assert (hash_array(array.slice(2, 3)) == hashes[2:]).all()
    chunked = pa.chunked_array([array.slice(0, 1), array.slice(1, 0), array.slice(1)])
    assert (hash_array(chunked) == hashes).all()


def test_empty_and_null_type() -> None:
    assert hash_array(pa.array([], pa.string())).shape == (0,)
    assert hash_array(pa.chunked_array([], pa.list_(pa.int64()))).shape == (0,)
    nulls = hash_array(pa.array([None, None]))
    assert (nulls == hash_array(pa.array([None], pa.string()))[0]).all()


def test_ints_hash_by_value_whatever_the_width() -> None:
    expected = hash_array(pa.array([0, 5, 127], pa.int64()))
    for int_type in (pa.int8(), pa.int16(), pa.uint8(), pa.uint32(), pa.uint64()):
        assert (hash_array(pa.array([0, 5, 127], int_type)) == expected).all()
    minus_one = hash_array(pa.array([-1], pa.int64()))[0]
    assert hash_array(pa.array([2**64 - 1], pa.uint64()))[0] != minus_one


def test_float_normalization() -> None:
    nans = np.array([0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001], np.uint64)
    hashes = hash_array(pa.array(np.concatenate([[0.0, -0.0], nans.view(np.float64)])))
    assert hashes[0] == hashes[1]
    assert hashes[2] == hashes[3] == hashes[4]
    assert hashes[0] != hashes[2]
    signalling = np.array([0x7F800001], np.uint32).view(np.float32)[0]
    as_float32 = hash_array(pa.array(np.array([0.5, -0.0, signalling], np.float32)))
    assert (as_float32 == hash_array(pa.array([0.5, 0.0, float("nan")], pa.float64()))).all()


def test_temporal_types_hash_by_integer_value_and_unit() -> None:
    in_ms = hash_array(pa.array([5], pa.timestamp("ms")))[0]
    assert hash_array(pa.array([5], pa.timestamp("ms", tz="Europe/Paris")))[0] == in_ms
    assert hash_array(pa.array([5], pa.timestamp("s")))[0] != in_ms
    assert hash_array(pa.array([5], pa.int64()))[0] != in_ms


def test_dictionary_hashes_decoded_values() -> None:
    values = pa.array(["b", None, "a", "b"])
    encoded = pa.DictionaryArray.from_arrays(pa.array([1, None, 0, 1], pa.int8()), ["a", "b"])
    assert (hash_array(encoded) == hash_array(values)).all()
    no_values = pa.array([], pa.string())
    all_null = pa.DictionaryArray.from_arrays(pa.array([None, None], pa.int32()), no_values)
    assert (hash_array(all_null) == hash_array(pa.array([None, None]))).all()


def test_list_order_nesting_and_long_lists() -> None:
    hashes = hash_array(pa.array([[1, 2], [2, 1], [1], [], None, [None]]))
    assert distinct(hashes) == 6
    nested = hash_array(pa.array([[[1], [2]], [[1, 2]], [[1, 2], []]]))
    assert distinct(nested) == 3
    long = list(range(200))  # over 64 elements: hashed as a tree of blocks
    element_hashes = hash_array(pa.array(long)).tolist()
    expected = ref_words(fmix(seed(DEFAULT_KEY, LIST) ^ 200), element_hashes, DEFAULT_KEY)
    assert hash_array(pa.array([long, long[:-1]])).tolist()[0] == expected


def test_struct_fields_keyed_by_name_not_position() -> None:
    xy = pa.StructArray.from_arrays([pa.array([1, 2]), pa.array(["a", "b"])], names=["x", "y"])
    yx = pa.StructArray.from_arrays([pa.array(["a", "b"]), pa.array([1, 2])], names=["y", "x"])
    assert (hash_array(xy) == hash_array(yx)).all()
    records = [{"x": 1, "y": 2}, {"x": 2, "y": 1}, {"x": 1, "z": 2}, {"x": 1}, {"x": 1, "y": None}]
    hashes = hash_array(pa.array(records[:3]))  # values swapped between fields; a field renamed
    assert distinct(hashes) == 3
    absent, null = hash_array(pa.array(records[3:4])), hash_array(pa.array(records[4:]))
    assert absent[0] != null[0]  # a missing field differs from a null one


# --- hash_rows -------------------------------------------------------------------------------
ROWS = pa.table({"id": ["e1", "e2", "e3"], "port": [22, 443, 22], "ok": [True, False, None]})


def test_rows_ignore_column_order() -> None:
    assert (hash_rows(ROWS.select(["ok", "id", "port"])) == hash_rows(ROWS)).all()
    assert distinct(hash_rows(ROWS)) == 3


def test_rows_change_with_one_value() -> None:
    changed = ROWS.set_column(1, "port", pa.array([22, 444, 22]))
    before, after = hash_rows(ROWS), hash_rows(changed)
    assert (before == after).tolist() == [True, False, True]


def test_rows_subset_and_struct_equivalence() -> None:
    subset = hash_rows(ROWS, columns=["port", "id"])
    assert (subset == hash_rows(ROWS.select(["id", "port"]))).all()
    columns = [column.combine_chunks() for column in ROWS.columns]
    struct = pa.StructArray.from_arrays(columns, names=ROWS.column_names)
    assert (hash_rows(ROWS) == hash_array(struct)).all()


def test_rows_same_record_from_json_and_csv(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("port,id,score\n22,e1,0.5\n443,e2,1.25\n")
    (tmp_path / "a.json").write_text(
        '{"id": "e1", "score": 0.5, "port": 22}\n{"id": "e2", "score": 1.25, "port": 443}\n'
    )
    from_csv = pa_csv.read_csv(tmp_path / "a.csv")
    from_json = pa_json.read_json(tmp_path / "a.json")
    assert from_csv.column_names != from_json.column_names
    assert (hash_rows(from_csv) == hash_rows(from_json)).all()


def test_rows_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        hash_rows(ROWS, columns=[])
    with pytest.raises(ConfigError, match="sequence of names"):
        hash_rows(ROWS, columns="id")
    with pytest.raises(ConfigError, match=r"duplicates \['id'\]"):
        hash_rows(ROWS, columns=["id", "id"])
    with pytest.raises(SchemaError, match="host"):
        hash_rows(ROWS, columns=["id", "host"])
    with pytest.raises(ConfigError, match="pyarrow Table"):
        hash_rows(ROWS.to_batches()[0])


# --- to_hex and errors -----------------------------------------------------------------------
def test_to_hex_format() -> None:
    values = [0, 1, 0x0123456789ABCDEF, 2**64 - 1]
    text = to_hex(np.array(values, np.uint64))
    assert text.type == pa.string()
    assert text.to_pylist() == ["0" * 16, "0" * 15 + "1", "0123456789abcdef", "f" * 16]
    assert to_hex(np.array([], np.uint64)).to_pylist() == []
    hashes = hash_array(pa.array(SAMPLE))
    assert to_hex(hashes).to_pylist() == [f"{h:016x}" for h in hashes.tolist()]
    with pytest.raises(ConfigError, match="1-D uint64"):
        to_hex(np.array([1, 2], np.int64))


@pytest.mark.parametrize(
    ("array", "named"),
    [
        (pa.array([1], pa.decimal128(5, 2)), "decimal128(5, 2)"),
        (pa.array([[1]], pa.list_(pa.decimal128(5, 2))), "inside list<item: decimal128"),
        (pa.array([], pa.binary(4)), "fixed_size_binary[4]"),
        (pa.array([], pa.struct([("m", pa.map_(pa.string(), pa.int8()))])), "map<string, int8>"),
    ],
)
def test_unsupported_type_is_named(array: pa.Array, named: str) -> None:
    with pytest.raises(ConfigError, match="cannot hash Arrow type") as caught:
        hash_array(array)
    assert named in str(caught.value)


@pytest.mark.parametrize("key", [-1, 2**64, True, "1", 1.0])
def test_bad_key(key: object) -> None:
    with pytest.raises(ConfigError, match=r"key must be an int in \[0, 2\*\*64\)"):
        hash_array(pa.array(["a"]), key=key)


def test_not_an_arrow_array() -> None:
    with pytest.raises(ConfigError, match="got list"):
        hash_array(["a"])
