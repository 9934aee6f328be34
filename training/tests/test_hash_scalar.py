"""`training.kernels.hash_scalar` gives `hash_array`'s hash for every value it takes."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from training.kernels.hash_scalar import (
    hash_bool, hash_float, hash_int, hash_list, hash_null, hash_text, hash_timestamp_us,
)
from training.kernels.hashing import DEFAULT_KEY, hash_array

KEYS = (DEFAULT_KEY, 0, 0x6D61_7869_6D75_7331, 2**64 - 1)
_rng = random.Random(7)
TEXTS = (["", "a", "1234567", "12345678", "123456789", "é", "例え.jp", "\x00", "a\nb", "-"]
         + ["x" * n for n in (15, 16, 17, 63, 64, 65, 511, 512)]
         + ["é" * 256]  # 512 bytes: the longest one block holds
         + ["".join(chr(_rng.randrange(32, 0x2FFF)) for _ in range(_rng.randrange(40)))
            for _ in range(40)])
INTS = [0, 1, -1, 2**63 - 1, -2**63, 80, 65535] + [_rng.randrange(-2**63, 2**63) for _ in range(40)]
FLOATS = [0.0, -0.0, 1.0, -1.5, float("nan"), -float("nan"), float("inf"), -float("inf"), 5e-324,
          1.7976931348623157e308, 1e-300] + [_rng.uniform(-1e12, 1e12) for _ in range(40)]


@pytest.mark.parametrize("key", KEYS)
def test_one_value_hashes_as_hash_array_hashes_it(key):
    assert [hash_text(t, key) for t in TEXTS] == hash_array(pa.array(TEXTS, pa.string()),
                                                             key).tolist()
    assert [hash_int(v, key) for v in INTS] == hash_array(pa.array(INTS, pa.int64()), key).tolist()
    assert [hash_float(v, key) for v in FLOATS] == hash_array(pa.array(FLOATS, pa.float64()),
                                                              key).tolist()
    assert [hash_bool(v, key) for v in (True, False)] == hash_array(pa.array([True, False]),
                                                                    key).tolist()
    micros = [0, 1_700_000_000_123_456, 7_258_118_399_999_999, -1]
    for tz in (None, "UTC", "Europe/Prague"):
        assert [hash_timestamp_us(us, key) for us in micros] == hash_array(
            pa.array(micros, pa.timestamp("us", tz=tz)), key).tolist()


LISTS = [([], pa.list_(pa.null())), ([None], pa.list_(pa.null())), (["a", None, ""], None),
         ([1, -2, None], None), ([0.5, float("nan")], None), ([True], None),
         (["x"] * 64, None)]


@pytest.mark.parametrize("key", KEYS)
def test_a_list_hashes_as_hash_array_hashes_it(key):
    scalar = {str: hash_text, int: hash_int, float: hash_float, bool: hash_bool}
    for values, type_ in LISTS:
        elements = [hash_null(key) if v is None else scalar[type(v)](v, key) for v in values]
        array = pa.array([values], type_)
        assert hash_list(elements, key) == int(hash_array(array, key)[0]), (values, array.type)
    assert hash_list([0] * 65, key) is None


def test_text_over_one_block_is_left_to_hash_array():
    assert hash_text("x" * 513, DEFAULT_KEY) is None
    assert hash_text("é" * 257, DEFAULT_KEY) is None  # 514 bytes
