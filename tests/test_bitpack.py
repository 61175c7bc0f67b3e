"""Bit packing of b-bit codes: exact round trip, the documented MSB-first layout, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner.compress.bitpack import pack, packed_size, unpack
from planner.errors import CodecError


def reference_pack(codes: np.ndarray, bits: int) -> bytes:
    """The layout of docs/codec.md written out bit by bit: each code MSB first, zero-padded to a byte."""
    stream = "".join(format(int(c), f"0{bits}b") for c in codes.reshape(-1))
    stream += "0" * (-len(stream) % 8)
    return bytes(int(stream[i:i + 8], 2) for i in range(0, len(stream), 8))


@st.composite
def codes_and_bits(draw, max_size: int = 300):
    bits = draw(st.integers(1, 8))
    values = draw(st.lists(st.integers(0, (1 << bits) - 1), max_size=max_size))
    return np.array(values, dtype=np.uint8), bits


@given(codes_and_bits())
def test_round_trip_matches_reference_layout(case):
    codes, bits = case
    packed = pack(codes, bits)
    assert packed == reference_pack(codes, bits)
    assert len(packed) == packed_size(codes.size, bits)
    out = unpack(packed, bits, codes.size)
    assert out.dtype == np.uint8 and np.array_equal(out, codes)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("count", [1, 7, 8, 9, 63, 64, 65, 12544])
def test_round_trip_every_bitwidth_and_group_boundary(bits, count):
    codes = np.random.default_rng(bits * 1000 + count).integers(0, 1 << bits, count, dtype=np.uint8)
    out = unpack(pack(codes, bits), bits, count)
    assert np.array_equal(out, codes)
    out[0] ^= 1  # the result is a writable array of its own
    assert len(pack(codes.reshape(1, -1), bits)) == (count * bits + 7) // 8


def test_known_bytes():
    assert pack(np.array([1, 0, 1, 1, 0, 0, 0, 0, 1], np.uint8), 1) == b"\xb0\x80"
    assert pack(np.array([0xA, 0x5, 0xF], np.uint8), 4) == b"\xa5\xf0"
    assert pack(np.array([5, 3], np.uint8), 3) == bytes([0b10101100])
    assert pack(np.array([1, 2, 3, 4, 5, 6, 7, 0], np.uint8), 3) == bytes([0b00101001, 0b11001011, 0b10111000])


@pytest.mark.parametrize("bits", [0, 9, -1, 2.0, True, None])
def test_bad_bits(bits):
    with pytest.raises(CodecError, match="bits"):
        pack(np.zeros(3, np.uint8), bits)


def test_refuses_codes_out_of_range_and_wrong_dtype():
    with pytest.raises(CodecError, match="does not fit in 3 bits"):
        pack(np.array([0, 8], np.uint8), 3)
    with pytest.raises(CodecError, match="uint8"):
        pack(np.array([0, 1], np.int64), 3)


def test_unpack_checks_length_and_padding():
    packed = pack(np.array([1, 2, 3], np.uint8), 2)  # 6 bits used, 2 padding bits
    with pytest.raises(CodecError, match="expected 1"):
        unpack(packed + b"\x00", 2, 3)
    with pytest.raises(CodecError, match="expected 2"):
        unpack(packed, 2, 5)
    with pytest.raises(CodecError, match="padding"):
        unpack(bytes([packed[0] | 1]), 2, 3)


def test_empty():
    assert pack(np.zeros(0, np.uint8), 5) == b""
    assert unpack(b"", 5, 0).size == 0
