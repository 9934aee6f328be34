"""SHA-1 of single-block messages and base64 of the digests, vectorized with numpy.

A message that fits one 64-byte SHA-1 block (at most 55 bytes; the caller writes the padding)
is hashed as 80 rounds of numpy ops over uint32 word arrays, one message per column; base64 is
two 12-bit table lookups per 4 symbols. Used by `training.kernels.community_id`, whose messages are at
most 40 bytes.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["Sha1Block", "base64_quads"]

# Below this many messages hashlib per message is faster than 80 rounds of numpy calls (whose
# fixed cost is about 1 ms); both paths give the same digests (tests run both).
SMALL_ROWS = 48

_SHA1_H = tuple(np.uint32(h) for h in (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0))
_SHA1_K = tuple(np.uint32(k) for k in (0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6))
_U32 = {k: np.uint32(k) for k in (1, 2, 5, 12, 16, 27, 30, 31, 0xFFF, 0xFFFFFF)}  # no op casts

# Base64 of 12 bits -> its two symbols as little-endian bytes of a uint32 (first symbol low).
_B64_ALPHABET = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", dtype=np.uint8
).astype(np.uint32)
_B64_PAIRS = _B64_ALPHABET[np.arange(4096) >> 6] | (_B64_ALPHABET[np.arange(4096) & 63] << 8)


class Sha1Block:
    """SHA-1 of single-block messages, one message per column, with reusable buffers.

    The 80-word message schedule is expanded in a 16-row ring (row t % 16), which keeps the
    working set at 23 uint32 rows per column instead of 85.

    Shapes:
        words: (16, rows) uint32; the caller writes each column's big-endian block words.
    """

    def __init__(self, rows: int) -> None:
        self.words = np.empty((16, rows), dtype=np.uint32)
        self._state = np.empty((5, rows), dtype=np.uint32)
        self._f = np.empty(rows, dtype=np.uint32)
        self._tmp = np.empty(rows, dtype=np.uint32)

    def digest(self, rows: int) -> list[np.ndarray]:
        """Hash the first `rows` columns (overwriting `words`); return five (rows,) words."""
        if rows < SMALL_ROWS:
            return self._digest_each(rows)
        w = self.words[:, :rows]
        f, tmp = self._f[:rows], self._tmp[:rows]
        one, two, five, s27, s30, s31 = (_U32[k] for k in (1, 2, 5, 27, 30, 31))
        state = self._state[:, :rows]
        for i, h in enumerate(_SHA1_H):
            state[i] = h
        a, b, c, d, e = state
        for t in range(80):
            wt = w[t & 15]
            if t >= 16:  # W[t] = rotl(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16], 1); W[t-16] is wt
                wt ^= w[(t - 3) & 15]
                wt ^= w[(t - 8) & 15]
                wt ^= w[(t - 14) & 15]
                np.right_shift(wt, s31, out=tmp)
                wt <<= one
                wt |= tmp
            if t < 20:  # Ch(b, c, d) = d ^ (b & (c ^ d))
                np.bitwise_xor(c, d, out=f)
                f &= b
                f ^= d
            elif 40 <= t < 60:  # Maj(b, c, d) = (b & c) | (d & (b | c))
                np.bitwise_or(b, c, out=f)
                f &= d
                np.bitwise_and(b, c, out=tmp)
                f |= tmp
            else:  # Parity
                np.bitwise_xor(b, c, out=f)
                f ^= d
            f += _SHA1_K[t // 20]
            # The new `a` is built in e's buffer, which this round frees. rotl(a, 5) is added as
            # its two non-overlapping halves, so no OR is needed.
            e += f
            e += wt
            np.left_shift(a, five, out=tmp)
            e += tmp
            np.right_shift(a, s27, out=tmp)
            e += tmp
            np.left_shift(b, s30, out=tmp)  # b = rotl(b, 30), in place
            b >>= two
            b |= tmp
            a, b, c, d, e = e, a, b, c, d
        out = [a, b, c, d, e]
        for word, h in zip(out, _SHA1_H):
            word += h
        return out

    def _digest_each(self, rows: int) -> list[np.ndarray]:
        """hashlib per message: the message is the block up to the bit length in word 15."""
        blocks = self.words[:, :rows].T.astype(">u4")
        out = np.empty((5, rows), dtype=np.uint32)
        for i, block in enumerate(blocks):
            message = block.tobytes()[: int(block[15]) // 8]
            out[:, i] = np.frombuffer(hashlib.sha1(message).digest(), dtype=">u4")
        return list(out)


def base64_quads(digest: list[np.ndarray], out: np.ndarray) -> None:
    """Base64-encode 160-bit digests as 7 uint32 per column, each 4 ASCII symbols.

    Each 24-bit group becomes two 12-bit table lookups; the last group has 16 digest bits, so
    its fourth symbol is the "=" pad.

    Shapes:
        digest: 5 x (rows,) uint32 -> out: (7, rows) uint32
    """
    group = np.empty_like(digest[0])
    scratch = np.empty_like(digest[0])
    for j in range(7):
        word, offset = divmod(24 * j, 32)
        if offset <= 8:  # the 24 bits sit inside one word
            np.right_shift(digest[word], np.uint32(8 - offset), out=group)
        else:  # they straddle two words (the last group takes 8 zero bits instead)
            np.left_shift(digest[word], np.uint32(offset - 8), out=group)
            if word + 1 < 5:
                np.right_shift(digest[word + 1], np.uint32(40 - offset), out=scratch)
                group |= scratch
        group &= _U32[0xFFFFFF]
        quad = out[j]
        np.right_shift(group, _U32[12], out=scratch)
        np.take(_B64_PAIRS, scratch, out=quad)
        group &= _U32[0xFFF]
        np.take(_B64_PAIRS, group, out=scratch)
        scratch <<= _U32[16]
        quad |= scratch
    out[6] &= _U32[0xFFFFFF]
    out[6] |= np.uint32(ord("=") << 24)
