"""Pack b-bit codes (b in 1..8) into a dense MSB-first bit stream and back, vectorized with numpy.

The stream is the codes written one after another, most significant bit first, the last byte padded
with zero bits: exactly `np.packbits` of each code's low b bits. Three vectorized paths give the same
bytes: b = 1 and 8 map to numpy directly; for b = 2 and 4 one integer multiply gathers the k = 8/b codes
of a little-endian k-byte word into one byte (and spreads a byte back into k lanes), the shifted copies
never overlapping so no carry disturbs them; b = 3, 5, 6, 7 take eight codes (= b bytes) at a time as a
big-endian 64-bit word and squeeze out the unused high bits of every byte with three SWAR steps
(8 -> 16 -> 32 -> 64-bit lanes).
"""

from __future__ import annotations

import numpy as np

from planner.errors import CodecError
from planner.types import check_bits as _check_bits

_U8 = np.uint8
_U64 = np.uint64


def check_bits(bits: int) -> int:
    """`bits` as an int, or CodecError unless it is an integer in 1..8."""
    return _check_bits(bits, error=CodecError)


def packed_size(count: int, bits: int) -> int:
    """Bytes taken by `count` codes of `bits` bits: ceil(count * bits / 8)."""
    check_bits(bits)
    return (count * bits + 7) // 8


class _Gather:
    """Multiply constants for b in (2, 4): code i of a k-code word sits at bit 8i and goes to 8k - b(i+1)."""

    def __init__(self, bits: int) -> None:
        per = 8 // bits
        self.per, self.word = per, np.dtype(f"<u{per}")
        self.wide = np.dtype(np.uint64 if bits == 2 else np.uint32)
        wide = self.wide.type
        self.pack_mul = wide(sum(1 << (8 * per - bits - (8 + bits) * i) for i in range(per)))
        self.pack_shift = wide(8 * (per - 1))
        self.unpack_mul = wide(sum(1 << ((8 + bits) * i) for i in range(per)))
        self.unpack_shift = wide(8 - bits)
        self.lanes = wide(sum(((1 << bits) - 1) << (8 * i) for i in range(per)))


_GATHER = {2: _Gather(2), 4: _Gather(4)}


def _lanes(width: int, ones: int) -> np.uint64:
    """A 64-bit mask with the low `ones` bits set in every `width`-bit lane."""
    return _U64(sum(((1 << ones) - 1) << s for s in range(0, 64, width)))


def _padded(flat: np.ndarray, multiple: int) -> np.ndarray:
    if flat.size % multiple == 0:
        return flat
    out = np.zeros(-(-flat.size // multiple) * multiple, _U8)
    out[: flat.size] = flat
    return out


def pack(codes: np.ndarray, bits: int) -> bytes:
    """Pack uint8 codes (each < 2**bits, any shape, C order) into ceil(n*bits/8) bytes."""
    check_bits(bits)
    codes = np.asarray(codes)
    if codes.dtype != _U8:
        raise CodecError(f"pack needs uint8 codes, got dtype {codes.dtype}")
    flat = np.ascontiguousarray(codes).reshape(-1)
    n = flat.size
    if n == 0:
        return b""
    top = int(flat.max())
    if top >> bits:
        raise CodecError(f"code {top} does not fit in {bits} bits (max {(1 << bits) - 1})")
    if bits == 8:
        return flat.tobytes()
    if bits == 1:
        return np.packbits(flat).tobytes()
    if bits in _GATHER:
        g = _GATHER[bits]
        words = _padded(flat, g.per).view(g.word)
        return (np.multiply(words, g.pack_mul, dtype=g.wide) >> g.pack_shift).astype(_U8).tobytes()
    v = _padded(flat, 8).view(">u8").astype(_U64)
    m = _lanes(16, 8)
    v = (((v >> _U64(8)) & m) << _U64(bits)) | (v & m)
    m = _lanes(32, 16)
    v = (((v >> _U64(16)) & m) << _U64(2 * bits)) | (v & m)
    v = ((v >> _U64(32)) << _U64(4 * bits)) | (v & _U64(0xFFFFFFFF))
    words = v.astype(">u8").view(_U8).reshape(-1, 8)[:, 8 - bits:]
    return np.ascontiguousarray(words).reshape(-1)[: packed_size(n, bits)].tobytes()


def unpack(buf: bytes | bytearray | memoryview, bits: int, count: int) -> np.ndarray:
    """Inverse of `pack`: a flat uint8 array of `count` codes; `buf` must be exactly packed_size long
    and its padding bits zero."""
    need = packed_size(count, bits)
    data = np.frombuffer(buf, _U8)
    if data.size != need:
        raise CodecError(f"packed codes: {data.size} bytes for {count} codes of {bits} bits, expected {need}")
    if count == 0:
        return np.zeros(0, _U8)
    pad = need * 8 - count * bits
    if pad and int(data[-1]) & ((1 << pad) - 1):
        raise CodecError("packed codes: the padding bits of the last byte are not zero")
    if bits == 8:
        return data.copy()
    if bits == 1:
        return np.unpackbits(data, count=count)
    if bits in _GATHER:
        g = _GATHER[bits]
        spread = (np.multiply(data, g.unpack_mul, dtype=g.wide) >> g.unpack_shift) & g.lanes
        return spread.astype(g.word).view(_U8)[:count]
    groups = -(-count // 8)
    grid = np.zeros((groups, 8), _U8)
    grid[:, 8 - bits:] = _padded(data, bits).reshape(groups, bits)
    v = grid.reshape(-1).view(">u8").astype(_U64)
    v = ((v >> _U64(4 * bits)) << _U64(32)) | (v & _U64((1 << (4 * bits)) - 1))
    m = _lanes(32, 2 * bits)
    v = (((v >> _U64(2 * bits)) & m) << _U64(16)) | (v & m)
    m = _lanes(16, bits)
    v = (((v >> _U64(bits)) & m) << _U64(8)) | (v & m)
    return v.astype(">u8").view(_U8)[:count]
